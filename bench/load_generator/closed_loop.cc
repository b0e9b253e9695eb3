#include <atomic>
#include <chrono>

#include "absl/synchronization/mutex.h"
#include "load_generator/load.h"

namespace modeld::bench {
namespace {

class ClosedLoop {
 public:
  ClosedLoop(const Stubs& stubs, const PreparedRequest& request, int concurrency,
             const LoadOptions& options)
      : stubs_(stubs), request_(request), options_(options), slots_(concurrency) {}

  LevelResult Run() {
    const int64_t start = NowNs();
    measure_start_ = start + static_cast<int64_t>(options_.warmup_seconds * 1e9);
    measure_end_ = measure_start_ + static_cast<int64_t>(options_.seconds * 1e9);
    {
      absl::MutexLock lock(&mutex_);
      active_ = static_cast<int>(slots_.size());
    }
    for (size_t i = 0; i < slots_.size(); ++i) {
      slots_[i].index = i;
      Issue(slots_[i]);
    }
    SleepUntilNs(measure_start_);
    const double cpu_start = ProcessCpuSeconds();
    SleepUntilNs(measure_end_);
    const double cpu_end = ProcessCpuSeconds();
    {
      // Every request has a deadline, so this ends.
      absl::MutexLock lock(&mutex_);
      mutex_.Await(absl::Condition(
          +[](int* active) { return *active == 0; }, &active_));
    }

    LevelResult result;
    result.mode = "concurrency";
    result.level = static_cast<double>(slots_.size());
    result.seconds = options_.seconds;
    result.sent = sent_.load();
    result.successes = recorder_.successes();
    result.throughput = result.successes / options_.seconds;
    result.items_per_second = result.throughput * request_.batch;
    result.latency = recorder_.SuccessLatency();
    result.rejected_latency = recorder_.RejectedLatency();
    result.errors = recorder_.ErrorCounts();
    result.error_examples = recorder_.ErrorExamples();
    result.client_cpu_cores = (cpu_end - cpu_start) / options_.seconds;
    return result;
  }

 private:
  struct Slot {
    size_t index = 0;
    std::unique_ptr<grpc::ClientContext> context;
    inference::ModelInferResponse response;
    int64_t start_ns = 0;
  };

  void Issue(Slot& slot) {
    // A ClientContext serves one call only; the request message is shared and reused.
    slot.context = std::make_unique<grpc::ClientContext>();
    slot.context->set_deadline(
        std::chrono::system_clock::now() +
        std::chrono::microseconds(static_cast<int64_t>(options_.deadline_seconds * 1e6)));
    slot.response.Clear();
    slot.start_ns = NowNs();
    if (slot.start_ns >= measure_start_ && slot.start_ns < measure_end_) ++sent_;
    stubs_[slot.index % stubs_.size()]->async()->ModelInfer(
        slot.context.get(), &request_.request, &slot.response,
        [this, &slot](grpc::Status status) { OnDone(slot, status); });
  }

  // On a gRPC callback thread. The call no longer uses the slot's context or response here,
  // so the next request may replace them.
  void OnDone(Slot& slot, const grpc::Status& status) {
    const int64_t now = NowNs();
    if (now >= measure_start_ && now < measure_end_) {
      recorder_.Record(status, now - slot.start_ns);
    }
    if (now < measure_end_) {
      Issue(slot);
      return;
    }
    absl::MutexLock lock(&mutex_);
    --active_;
  }

  const Stubs& stubs_;
  const PreparedRequest& request_;
  const LoadOptions options_;
  std::vector<Slot> slots_;
  int64_t measure_start_ = 0;
  int64_t measure_end_ = 0;
  std::atomic<int64_t> sent_{0};
  OutcomeRecorder recorder_;
  absl::Mutex mutex_;
  int active_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace

LevelResult RunClosedLoop(const Stubs& stubs, const PreparedRequest& request, int concurrency,
                          const LoadOptions& options) {
  return ClosedLoop(stubs, request, concurrency, options).Run();
}

}  // namespace modeld::bench
