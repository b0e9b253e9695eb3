// The config.pbtxt text of a fake-backend model with one FP32 [2] input "x" and one FP32 [2]
// output "y", batched up to 8, followed by `extra` (more fields: a version policy, warm-up,
// parameters). Test-only.
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace modeld::testing {

std::string FakeModelConfig(absl::string_view extra = "");

}  // namespace modeld::testing
