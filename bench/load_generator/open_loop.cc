#include <algorithm>
#include <atomic>
#include <chrono>

#include "absl/synchronization/mutex.h"
#include "load_generator/load.h"

namespace modeld::bench {
namespace {

class OpenLoop {
 public:
  OpenLoop(const Stubs& stubs, const PreparedRequest& request, double rate,
           const LoadOptions& options)
      : stubs_(stubs), request_(request), rate_(rate), options_(options) {}

  LevelResult Run() {
    const int64_t start = NowNs();
    measure_start_ = start + static_cast<int64_t>(options_.warmup_seconds * 1e9);
    measure_end_ = measure_start_ + static_cast<int64_t>(options_.seconds * 1e9);
    double cpu_start = -1;
    int64_t sent = 0, skipped = 0, max_lag_ns = 0;
    // Arrival i is due at start + i / rate. The pacer sleeps until the next one is due, then
    // sends every arrival that is due: sleeps are coarser than the gaps at high rates, so
    // arrivals go out in small bursts, each timed from its own due time.
    for (int64_t i = 0;; ++i) {
      const int64_t due = start + static_cast<int64_t>(i * 1e9 / rate_);
      if (due >= measure_end_) break;
      int64_t now = NowNs();
      if (due > now) {
        SleepUntilNs(due);
        now = NowNs();
      }
      const bool in_window = due >= measure_start_;
      if (in_window && cpu_start < 0) cpu_start = ProcessCpuSeconds();
      if (in_flight_.load() >= options_.max_in_flight) {
        if (in_window) ++skipped;
        continue;
      }
      if (in_window) {
        ++sent;
        max_lag_ns = std::max(max_lag_ns, now - due);
      }
      Issue(due);
    }
    SleepUntilNs(measure_end_);
    const double cpu_end = ProcessCpuSeconds();
    {
      // Every request has a deadline, so this ends.
      absl::MutexLock lock(&mutex_);
      mutex_.Await(absl::Condition(
          +[](std::atomic<int64_t>* in_flight) { return in_flight->load() == 0; }, &in_flight_));
    }

    LevelResult result;
    result.mode = "rate";
    result.level = rate_;
    result.seconds = options_.seconds;
    result.sent = sent;
    result.successes = completed_in_window_.load();
    result.throughput = result.successes / options_.seconds;
    result.items_per_second = result.throughput * request_.batch;
    result.latency = recorder_.SuccessLatency();
    result.rejected_latency = recorder_.RejectedLatency();
    result.errors = recorder_.ErrorCounts();
    result.error_examples = recorder_.ErrorExamples();
    result.offered_rate = sent / options_.seconds;
    result.client_skipped = skipped;
    result.max_send_lag_us = max_lag_ns / 1e3;
    result.client_cpu_cores = (cpu_end - std::max(cpu_start, 0.0)) / options_.seconds;
    return result;
  }

 private:
  struct Call {
    grpc::ClientContext context;
    inference::ModelInferResponse response;
    int64_t due_ns = 0;
  };

  void Issue(int64_t due_ns) {
    auto* call = new Call;
    call->due_ns = due_ns;
    call->context.set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::microseconds(static_cast<int64_t>(options_.deadline_seconds * 1e6)));
    ++in_flight_;
    stubs_[next_stub_++ % stubs_.size()]->async()->ModelInfer(
        &call->context, &request_.request, &call->response,
        [this, call](grpc::Status status) { OnDone(call, status); });
  }

  // On a gRPC callback thread. Outcomes are kept for the requests due inside the window
  // (all of them, however late they finish); throughput counts successes finished inside it.
  void OnDone(Call* call, const grpc::Status& status) {
    const int64_t now = NowNs();
    if (call->due_ns >= measure_start_ && call->due_ns < measure_end_) {
      recorder_.Record(status, now - call->due_ns);
    }
    if (status.ok() && now >= measure_start_ && now < measure_end_) ++completed_in_window_;
    delete call;
    if (--in_flight_ == 0) {
      absl::MutexLock lock(&mutex_);  // Run()'s Await() re-checks in_flight_ on release
    }
  }

  const Stubs& stubs_;
  const PreparedRequest& request_;
  const double rate_;
  const LoadOptions options_;
  int64_t measure_start_ = 0;
  int64_t measure_end_ = 0;
  size_t next_stub_ = 0;  // the pacer thread only
  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> completed_in_window_{0};
  OutcomeRecorder recorder_;
  absl::Mutex mutex_;
};

}  // namespace

LevelResult RunOpenLoop(const Stubs& stubs, const PreparedRequest& request, double rate,
                        const LoadOptions& options) {
  return OpenLoop(stubs, request, rate, options).Run();
}

}  // namespace modeld::bench
