// Latency samples and outcome counts of one load level.
//
// Thread-safe: gRPC completion callbacks record from several threads at once. Samples are
// kept whole (a few hundred thousand per level at most) so percentiles are exact.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/status.h"

namespace modeld::bench {

struct LatencySummary {
  int64_t count = 0;
  double mean_us = 0;
  double p50_us = 0;
  double p90_us = 0;
  double p99_us = 0;
  double max_us = 0;
};

// Nearest-rank percentiles of `samples_ns` (which it sorts).
LatencySummary Summarize(std::vector<int64_t>& samples_ns);

// "RESOURCE_EXHAUSTED" for gRPC's code.
std::string StatusCodeName(grpc::StatusCode code);

class OutcomeRecorder {
 public:
  // A finished request: successes and RESOURCE_EXHAUSTED rejections keep their latency
  // (separately); every other code is counted by name.
  void Record(const grpc::Status& status, int64_t latency_ns);

  int64_t successes() const;
  LatencySummary SuccessLatency();
  LatencySummary RejectedLatency();
  // Error counts by gRPC code name, RESOURCE_EXHAUSTED included.
  std::map<std::string, int64_t> ErrorCounts() const;
  // One message per code, to show what went wrong.
  std::map<std::string, std::string> ErrorExamples() const;

 private:
  mutable absl::Mutex mutex_;
  std::vector<int64_t> ok_ns_ ABSL_GUARDED_BY(mutex_);
  std::vector<int64_t> rejected_ns_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, int64_t> errors_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, std::string> examples_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace modeld::bench
