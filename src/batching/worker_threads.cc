#include "batching/worker_threads.h"

#include "common/thread_priority.h"

namespace modeld::batching {
namespace {

thread_local bool on_worker_thread = false;

}  // namespace

void WorkerThreads::Start(std::function<void()> body) {
  absl::MutexLock lock(&mu_);
  threads_.emplace_back([body = std::move(body)] {
    on_worker_thread = true;
    common::EnterModelThread();
    body();
  });
}

bool WorkerThreads::OnWorkerThread() { return on_worker_thread; }

void WorkerThreads::JoinAll() {
  absl::MutexLock lock(&mu_);
  for (std::thread& thread : threads_) {
    if (thread.get_id() == std::this_thread::get_id()) {
      thread.detach();
    } else if (thread.joinable()) {
      thread.join();
    }
  }
  threads_.clear();
}

}  // namespace modeld::batching
