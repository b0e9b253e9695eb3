// The one rule for a model version named on the wire: empty, or a positive decimal number.
#pragma once

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace modeld::core {

// "" -> nullopt (the newest ready version); "3" -> 3; anything else INVALID_ARGUMENT, "01"
// included (one version has one spelling, as its folder name has).
absl::StatusOr<std::optional<int64_t>> ParseModelVersion(absl::string_view version);

}  // namespace modeld::core
