// Log lines that frameworks print straight to stderr, re-emitted in modeld's log format.
//
// TensorFlow logs through its own copies of Abseil and tsl logging, which write to file
// descriptor 2 in their own formats, at levels that neither --log-level nor
// TF_CPP_MIN_LOG_LEVEL fully govern:
//   I0000 00:00:1796636996.963283   28845 mlir_graph_optimization_pass.cc:401] MLIR V1 ...
//   2026-12-07 09:49:56.963283: W tensorflow/core/framework/op_kernel.cc:1840] ...
// RouteStderrThroughLog makes fd 2 a pipe read by one thread. Each line in those formats is
// logged through spdlog at its own level (their INFO as debug), naming its source file; every
// other byte is copied to the original stderr unchanged. modeld's own logger writes to the
// original stderr directly (SetLogFileDescriptor), and a fatal signal or exit copies what is
// still in the pipe to the original stderr first, so a crash message is never lost.
//
// Sanitizer builds never route: their reports end the process without a signal handler or
// exit handler running, and would be lost in the pipe.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "spdlog/common.h"

namespace modeld::common {

// One framework log line, as parsed from either format above.
struct ForeignLogLine {
  spdlog::level::level_enum level;  // I: debug, W: warn, E: error, F: critical
  std::string where;                // "file.cc:401", the path as the framework gave it
  std::string message;
};

// The line (without its newline) parsed, or nullopt when it is in neither format.
std::optional<ForeignLogLine> ParseForeignLogLine(absl::string_view line);

// Whether `line` is Abseil's one-time notice that it writes to stderr before being set up,
// which says nothing to modeld's users and is dropped.
bool IsAbseilStartupNotice(absl::string_view line);

// False in sanitizer builds, where RouteStderrThroughLog does nothing.
bool StderrRoutingAvailable();

// Starts routing (once per process; later calls do nothing). Call it before loading the
// framework. An error (no pipe, no thread) leaves stderr as it was.
absl::Status RouteStderrThroughLog();

}  // namespace modeld::common
