// WorkerThreads: the threads of one scheduler, one per model instance, joined once.
#pragma once

#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace modeld::batching {

// Thread-safe.
class WorkerThreads {
 public:
  // Starts one thread per call of `body` (the caller passes one per instance).
  void Start(std::function<void()> body);

  // Joins every thread; idempotent and safe to call concurrently. A request's callback may
  // drop the last reference to its scheduler on a worker thread, which cannot join itself:
  // that thread is detached instead (it is already past its last request).
  void JoinAll();

  // Whether the calling thread is a worker started by some WorkerThreads. Code that would
  // destroy a scheduler there (the last handle to a version, held by a request's callback)
  // hands the destruction to another thread: the worker still runs the scheduler's loop.
  static bool OnWorkerThread();

 private:
  absl::Mutex mu_;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace modeld::batching
