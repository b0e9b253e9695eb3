#include "backend/thread_counts.h"

#include <algorithm>
#include <optional>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace modeld::backend {

absl::StatusOr<int> ThreadCountParameter(const core::ModelConfig& config,
                                         absl::string_view parameter, int fallback) {
  const std::optional<std::string> text = config.Parameter(parameter);
  if (!text.has_value()) return fallback;
  int threads = 0;
  if (!absl::SimpleAtoi(*text, &threads) || threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter ", parameter, " '", *text, "' is not a positive integer"));
  }
  return threads;
}

absl::StatusOr<int> IntraOpThreads(const core::ModelConfig& config) {
  const int hardware = static_cast<int>(std::thread::hardware_concurrency());
  return ThreadCountParameter(config, kIntraOpThreadsParameter,
                              std::max(1, hardware / std::max(1, config.instance_count)));
}

}  // namespace modeld::backend
