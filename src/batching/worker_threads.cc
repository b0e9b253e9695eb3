#include "batching/worker_threads.h"

namespace modeld::batching {

void WorkerThreads::Start(std::function<void()> body) {
  absl::MutexLock lock(&mu_);
  threads_.emplace_back(std::move(body));
}

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
