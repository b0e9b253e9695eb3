// Process-wide logging set-up. Code logs through spdlog's free functions (spdlog::info, ...);
// this only chooses the level and the line format once at start.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "spdlog/spdlog.h"

// Debian's Abseil keeps its own string_view type (not std::string_view); let fmt print it,
// so a Status message can be logged as it is.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view text, FormatContext& context) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(text.data(), text.size()),
                                                    context);
  }
};

namespace modeld::common {

// Sets the log level from its name: trace, debug, info, warn, error, critical or off.
// Lines go to stderr as "<time> <level> <message>". INVALID_ARGUMENT names a bad level.
absl::Status InitLogging(absl::string_view level);

// Where modeld's log lines are written: file descriptor 2 until RouteStderrThroughLog
// (stderr_router.h) points it at a copy of the original stderr. Each line is one write(2),
// unbuffered, so nothing is lost when the process dies.
void SetLogFileDescriptor(int fd);

}  // namespace modeld::common
