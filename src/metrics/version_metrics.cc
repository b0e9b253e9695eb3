#include "metrics/version_metrics.h"

#include "absl/strings/ascii.h"

namespace modeld::metrics {
namespace {

// 50 us .. ~13 s: model calls on a CPU and whole requests alike.
const std::vector<double>& LatencyBounds() {
  static const auto* bounds = new std::vector<double>(ExponentialBounds(50e-6, 2, 19));
  return *bounds;
}

const std::vector<double>& RowBounds() {
  static const auto* bounds = new std::vector<double>(ExponentialBounds(1, 2, 11));  // 1..1024
  return *bounds;
}

}  // namespace

std::string OutcomeName(absl::StatusCode code) {
  return absl::AsciiStrToLower(absl::StatusCodeToString(code));
}

VersionMetrics::VersionMetrics(Registry& registry, absl::string_view model,
                               absl::string_view version)
    : registry_(&registry),
      labels_{{"model", std::string(model)}, {"version", std::string(version)}} {
  request_seconds_ = &registry.GetHistogram(
      "modeld_request_duration_seconds",
      "Time from a request's arrival at the inference service to its answer.", labels_,
      LatencyBounds());
  queue_seconds_ = &registry.GetHistogram("modeld_queue_duration_seconds",
                                          "Time a request waited in the queue before its batch "
                                          "started.",
                                          labels_, LatencyBounds());
  compute_seconds_ =
      &registry.GetHistogram("modeld_compute_duration_seconds",
                             "Time of one model run (one batch).", labels_, LatencyBounds());
  batch_rows_ = &registry.GetHistogram("modeld_batch_size",
                                       "Rows (items along the batch dimension) per model run.",
                                       labels_, RowBounds());
  in_flight_ = &registry.GetGauge("modeld_inflight_requests",
                                  "Requests accepted and not yet answered.", labels_);
}

void VersionMetrics::RecordRequest(const absl::Status& outcome, absl::Duration latency) const {
  if (registry_ == nullptr) return;
  const int code = static_cast<int>(outcome.code());
  const int slot = code >= 0 && code < kCodes ? code : static_cast<int>(absl::StatusCode::kUnknown);
  Counter* counter = requests_[slot].load(std::memory_order_acquire);
  if (counter == nullptr) {
    Labels labels = labels_;
    labels.emplace_back("outcome", OutcomeName(static_cast<absl::StatusCode>(slot)));
    // Racing first uses get the same counter from the registry, so either store is right.
    counter = &registry_->GetCounter("modeld_requests_total",
                                     "Inference requests answered, by outcome.", labels);
    requests_[slot].store(counter, std::memory_order_release);
  }
  counter->Increment();
  request_seconds_->Observe(absl::ToDoubleSeconds(latency));
}

void VersionMetrics::RecordQueueTime(absl::Duration waited) const {
  if (registry_ == nullptr) return;
  queue_seconds_->Observe(absl::ToDoubleSeconds(waited));
}

void VersionMetrics::RecordBatch(int64_t rows, absl::Duration compute) const {
  if (registry_ == nullptr) return;
  batch_rows_->Observe(static_cast<double>(rows));
  compute_seconds_->Observe(absl::ToDoubleSeconds(compute));
}

void VersionMetrics::AddInFlight(int delta) const {
  if (registry_ == nullptr) return;
  in_flight_->Add(delta);
}

}  // namespace modeld::metrics
