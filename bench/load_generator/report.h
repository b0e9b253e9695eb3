// The result of one load level, and how it is written: JSON for bench/run.py, a markdown
// table for people.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "load_generator/latency.h"

namespace modeld::bench {

struct LevelResult {
  std::string mode;                       // "concurrency" (closed loop) or "rate" (open loop)
  double level = 0;                       // in-flight requests, or the target arrivals per second
  double seconds = 0;                     // length of the measurement window
  int64_t sent = 0;                       // requests started in the window
  int64_t successes = 0;                  // OK answers completed in the window
  double throughput = 0;                  // successes per second
  double items_per_second = 0;            // throughput x items per request
  LatencySummary latency;                 // of the successes, from the (scheduled) send time
  LatencySummary rejected_latency;        // of RESOURCE_EXHAUSTED answers (open loop)
  std::map<std::string, int64_t> errors;  // by gRPC code name
  std::map<std::string, std::string> error_examples;
  double offered_rate = 0;      // open loop: requests actually sent per second
  int64_t client_skipped = 0;   // open loop: arrivals not sent, the in-flight cap was reached
  double max_send_lag_us = 0;   // open loop: how late the client sent, at worst
  double client_cpu_cores = 0;  // this process's CPU time / wall time in the window
  // Answers that went to another request than the one they answer (modeld-bench-redis).
  int64_t misrouted = 0;
};

struct RunInfo {
  std::string target;  // host:port
  std::string model;
  std::string input;  // PreparedRequest::description
  int64_t batch = 1;
  int64_t payload_bytes = 0;
  int channels = 0;
  double warmup_seconds = 0;
};

absl::Status WriteJson(const std::string& path, const RunInfo& info,
                       const std::vector<LevelResult>& levels);

std::string MarkdownTable(const std::vector<LevelResult>& levels);

// Process CPU time (user + system) in seconds; used for LevelResult::client_cpu_cores.
double ProcessCpuSeconds();

}  // namespace modeld::bench
