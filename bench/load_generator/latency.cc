#include "load_generator/latency.h"

#include <algorithm>
#include <cmath>

namespace modeld::bench {

LatencySummary Summarize(std::vector<int64_t>& samples_ns) {
  LatencySummary summary;
  summary.count = static_cast<int64_t>(samples_ns.size());
  if (samples_ns.empty()) return summary;
  std::sort(samples_ns.begin(), samples_ns.end());
  const auto at = [&](double quantile) {
    // Nearest rank: the smallest sample with at least `quantile` of the samples at or below.
    size_t rank = static_cast<size_t>(std::ceil(quantile * samples_ns.size()));
    rank = std::clamp<size_t>(rank, 1, samples_ns.size());
    return samples_ns[rank - 1] / 1e3;
  };
  double sum = 0;
  for (int64_t sample : samples_ns) sum += static_cast<double>(sample);
  summary.mean_us = sum / samples_ns.size() / 1e3;
  summary.p50_us = at(0.50);
  summary.p90_us = at(0.90);
  summary.p99_us = at(0.99);
  summary.max_us = samples_ns.back() / 1e3;
  return summary;
}

std::string StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "CODE_" + std::to_string(static_cast<int>(code));
  }
}

void OutcomeRecorder::Record(const grpc::Status& status, int64_t latency_ns) {
  absl::MutexLock lock(&mutex_);
  if (status.ok()) {
    ok_ns_.push_back(latency_ns);
    return;
  }
  if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
    rejected_ns_.push_back(latency_ns);
  }
  const std::string name = StatusCodeName(status.error_code());
  ++errors_[name];
  if (!examples_.contains(name)) examples_[name] = status.error_message();
}

int64_t OutcomeRecorder::successes() const {
  absl::MutexLock lock(&mutex_);
  return static_cast<int64_t>(ok_ns_.size());
}

LatencySummary OutcomeRecorder::SuccessLatency() {
  absl::MutexLock lock(&mutex_);
  return Summarize(ok_ns_);
}

LatencySummary OutcomeRecorder::RejectedLatency() {
  absl::MutexLock lock(&mutex_);
  return Summarize(rejected_ns_);
}

std::map<std::string, int64_t> OutcomeRecorder::ErrorCounts() const {
  absl::MutexLock lock(&mutex_);
  return errors_;
}

std::map<std::string, std::string> OutcomeRecorder::ErrorExamples() const {
  absl::MutexLock lock(&mutex_);
  return examples_;
}

}  // namespace modeld::bench
