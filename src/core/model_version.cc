#include "core/model_version.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace modeld::core {

absl::StatusOr<std::optional<int64_t>> ParseModelVersion(absl::string_view version) {
  if (version.empty()) return std::nullopt;
  int64_t parsed = 0;
  const bool digits =
      std::all_of(version.begin(), version.end(), [](char c) { return absl::ascii_isdigit(c); });
  if (!digits || version.front() == '0' || !absl::SimpleAtoi(version, &parsed) || parsed < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model version '", version, "' is not a version number (a positive integer)"));
  }
  return parsed;
}

}  // namespace modeld::core
