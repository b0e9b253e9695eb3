// SharedInstance: one model instance used by both its version's scheduler (inference) and its
// trainer (online learning). Every call runs on the instance's own thread, one at a time and
// in the order they came, so an inference sees the weights before or after a training step,
// never half-updated.
//
// One thread, rather than a lock taken by each caller's thread: a framework's intra-op thread
// pool (OpenMP for LibTorch) belongs to the thread that calls it, and two callers of one
// instance alternating would each keep a pool of their own spinning against the other's.
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "backend/backend.h"

namespace modeld::backend {

// Thread-safe.
class SharedInstance {
 public:
  // Starts the instance's thread.
  explicit SharedInstance(std::unique_ptr<Model> model);
  // Runs the calls already queued, joins the thread and frees the model. Must not run on the
  // instance's thread (a call never holds the SharedInstance itself).
  ~SharedInstance();
  SharedInstance(const SharedInstance&) = delete;
  SharedInstance& operator=(const SharedInstance&) = delete;

  // Runs fn(Model&) on the instance's thread, after the calls queued before it, and returns
  // what it returns. Blocks the caller until then.
  template <typename Fn>
  auto Call(Fn&& fn) {
    using Result = std::invoke_result_t<Fn&, Model&>;
    std::optional<Result> result;
    absl::Notification done;
    Post([&] {
      result.emplace(fn(*model_));
      done.Notify();
    });
    done.WaitForNotification();
    return *std::move(result);
  }

 private:
  void Post(absl::AnyInvocable<void()> task);
  void Loop();

  const std::unique_ptr<Model> model_;
  absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// The scheduler's view of a SharedInstance: Run() as one of its calls.
class LockedModel : public Model {
 public:
  explicit LockedModel(std::shared_ptr<SharedInstance> instance) : instance_(std::move(instance)) {}

  absl::StatusOr<core::TensorMap> Run(const core::TensorMap& inputs) override {
    return instance_->Call([&](Model& model) { return model.Run(inputs); });
  }

 private:
  const std::shared_ptr<SharedInstance> instance_;
};

}  // namespace modeld::backend
