#include "backend/shared_instance.h"

#include "common/thread_priority.h"

namespace modeld::backend {

SharedInstance::SharedInstance(std::unique_ptr<Model> model) : model_(std::move(model)) {
  thread_ = std::thread([this] {
    common::EnterModelThread();
    Loop();
  });
}

SharedInstance::~SharedInstance() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void SharedInstance::Post(absl::AnyInvocable<void()> task) {
  absl::MutexLock lock(&mu_);
  tasks_.push_back(std::move(task));
}

void SharedInstance::Loop() {
  for (;;) {
    absl::AnyInvocable<void()> task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](SharedInstance* self) { return self->stopping_ || !self->tasks_.empty(); }, this));
      if (tasks_.empty()) return;  // stopping, and nothing left
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace modeld::backend
