// The framework thread pools of one model instance, from its config's parameters; the same
// parameters for every backend (docs/operations.md, "Threads and cores").
#pragma once

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/model_config.h"

namespace modeld::backend {

inline constexpr char kIntraOpThreadsParameter[] = "intra_op_thread_count";
inline constexpr char kInterOpThreadsParameter[] = "inter_op_thread_count";

// The positive integer of parameter `parameter`, or `fallback` when the config has none.
// INVALID_ARGUMENT naming the parameter and its text otherwise.
absl::StatusOr<int> ThreadCountParameter(const core::ModelConfig& config,
                                         absl::string_view parameter, int fallback);

// Threads one instance uses inside an operator: intra_op_thread_count, by default the cores
// divided among the model's instances (at least 1).
absl::StatusOr<int> IntraOpThreads(const core::ModelConfig& config);

}  // namespace modeld::backend
