// VersionMetrics: what the request path records for one model version (docs/metrics.md).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "metrics/registry.h"

namespace modeld::metrics {

// Thread-safe. A default-constructed one records nothing (for tests that do not look).
class VersionMetrics {
 public:
  VersionMetrics() = default;
  // Labels {model, version}; an empty `model` stands for requests that named no servable
  // model (unknown model or version), so their count does not grow with the names sent.
  VersionMetrics(Registry& registry, absl::string_view model, absl::string_view version);

  // One request answered with `outcome` after `latency` end to end.
  void RecordRequest(const absl::Status& outcome, absl::Duration latency) const;
  // Time a request waited in the queue before its batch started.
  void RecordQueueTime(absl::Duration waited) const;
  // One Model::Run over `rows` rows that took `compute`.
  void RecordBatch(int64_t rows, absl::Duration compute) const;
  // Requests accepted and not yet answered.
  void AddInFlight(int delta) const;

 private:
  static constexpr int kCodes = 17;  // absl::StatusCode values 0..16

  Registry* registry_ = nullptr;
  Labels labels_;
  // Created on first use per outcome, so only outcomes that happened are rendered.
  mutable std::array<std::atomic<Counter*>, kCodes> requests_{};
  Histogram* request_seconds_ = nullptr;
  Histogram* queue_seconds_ = nullptr;
  Histogram* compute_seconds_ = nullptr;
  Histogram* batch_rows_ = nullptr;
  Gauge* in_flight_ = nullptr;
};

// "ok", "invalid_argument", "deadline_exceeded", ...
std::string OutcomeName(absl::StatusCode code);

}  // namespace modeld::metrics
