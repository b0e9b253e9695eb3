// Early-return helpers for absl::Status and absl::StatusOr.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define MODELD_CONCAT_INNER(a, b) a##b
#define MODELD_CONCAT(a, b) MODELD_CONCAT_INNER(a, b)

// Returns from the calling function when `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    ::absl::Status _modeld_status = (expr);          \
    if (!_modeld_status.ok()) return _modeld_status; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, MakeX());` declares x from an OK StatusOr, else returns its status.
#define ASSIGN_OR_RETURN(lhs, expr) \
  MODELD_ASSIGN_OR_RETURN_IMPL(MODELD_CONCAT(_modeld_statusor_, __LINE__), lhs, expr)

#define MODELD_ASSIGN_OR_RETURN_IMPL(statusor, lhs, expr)  \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = *std::move(statusor)
