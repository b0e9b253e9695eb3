// SharedInstance: one model instance used by both its version's scheduler (inference) and its
// trainer (online learning). Every call holds one lock, so an inference sees the weights
// before or after a training step, never half-updated.
#pragma once

#include <memory>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "backend/backend.h"

namespace modeld::backend {

class SharedInstance {
 public:
  explicit SharedInstance(std::unique_ptr<Model> model) : model_(std::move(model)) {}

  // Runs fn(Model&) under the lock and returns what it returns.
  template <typename Fn>
  auto Locked(Fn&& fn) {
    absl::MutexLock lock(&mu_);
    return std::forward<Fn>(fn)(*model_);
  }

 private:
  absl::Mutex mu_;
  const std::unique_ptr<Model> model_;
};

// The scheduler's view of a SharedInstance: Run() under its lock.
class LockedModel : public Model {
 public:
  explicit LockedModel(std::shared_ptr<SharedInstance> instance) : instance_(std::move(instance)) {}

  absl::StatusOr<core::TensorMap> Run(const core::TensorMap& inputs) override {
    return instance_->Locked([&](Model& model) { return model.Run(inputs); });
  }

 private:
  const std::shared_ptr<SharedInstance> instance_;
};

}  // namespace modeld::backend
