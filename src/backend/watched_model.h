// WatchedModel: a Model that records when each of its Run() calls began, so a watchdog can
// tell a stuck instance (a framework call that never returns) from a busy one.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>

#include "absl/time/time.h"
#include "backend/backend.h"

namespace modeld::backend {

// The run clocks of one version's instances, one slot each. Thread-safe.
class RunWatch {
 public:
  explicit RunWatch(size_t instances);

  // When the oldest Run() still in progress began; InfiniteFuture when none runs.
  absl::Time OldestRunStart() const;

  void Begin(size_t slot, absl::Time now);
  void End(size_t slot);

 private:
  const size_t size_;
  std::unique_ptr<std::atomic<int64_t>[]> started_ns_;  // 0: idle
};

class WatchedModel : public Model {
 public:
  WatchedModel(std::unique_ptr<Model> model, std::shared_ptr<RunWatch> watch, size_t slot)
      : model_(std::move(model)), watch_(std::move(watch)), slot_(slot) {}

  absl::StatusOr<core::TensorMap> Run(const core::TensorMap& inputs) override {
    watch_->Begin(slot_, absl::Now());
    absl::StatusOr<core::TensorMap> outputs = model_->Run(inputs);
    watch_->End(slot_);
    return outputs;
  }

 private:
  const std::unique_ptr<Model> model_;
  const std::shared_ptr<RunWatch> watch_;
  const size_t slot_;
};

}  // namespace modeld::backend
