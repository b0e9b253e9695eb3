#include "service/model_control.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "repository/model_manager.h"

namespace modeld::service {
absl::Status ModelControlOff() {
  return absl::UnavailableError(
      "model control is off (--model-control-mode=explicit turns on load and unload)");
}

ControlMode ControlModeFromFlag(absl::string_view flag) {
  if (flag == "poll") return ControlMode::kPoll;
  if (flag == "explicit") return ControlMode::kExplicit;
  return ControlMode::kNone;
}

ModelControl::ModelControl(repository::ModelManager& models, ControlMode mode,
                           absl::Duration poll_interval)
    : models_(models), mode_(mode), poll_interval_(poll_interval) {}

ModelControl::~ModelControl() { Stop(); }

void ModelControl::Stop() {
  std::deque<absl::AnyInvocable<void()>> dropped;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    dropped.swap(queue_);
  }
  if (thread_.joinable()) thread_.join();
  // Work that never ran still answers: its closures hold the callbacks (see Load/Unload).
  for (auto& work : dropped) work();
}

void ModelControl::Start() {
  if (mode_ == ControlMode::kNone) return;
  thread_ = std::thread([this] { Loop(); });
}

void ModelControl::Enqueue(absl::AnyInvocable<void()> work) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.push_back(std::move(work));
      return;
    }
  }
  work();  // stopped: no thread will take it, and it answers UNAVAILABLE
}

void ModelControl::Load(std::string name, absl::AnyInvocable<void(absl::Status)> done) {
  Change(std::move(name), std::move(done), &repository::ModelManager::LoadModel);
}

void ModelControl::Unload(std::string name, absl::AnyInvocable<void(absl::Status)> done) {
  Change(std::move(name), std::move(done), &repository::ModelManager::UnloadModel);
}

void ModelControl::Change(std::string name, absl::AnyInvocable<void(absl::Status)> done,
                          absl::Status (repository::ModelManager::*change)(absl::string_view)) {
  if (mode_ != ControlMode::kExplicit) return done(ModelControlOff());
  Enqueue([this, name = std::move(name), done = std::move(done), change]() mutable {
    bool stopping = false;
    {
      absl::MutexLock lock(&mu_);
      stopping = stopping_;
    }
    done(stopping ? absl::UnavailableError("modeld is shutting down") : (models_.*change)(name));
  });
}

void ModelControl::Rescan() {
  if (mode_ != ControlMode::kPoll) {
    spdlog::info("rescan asked for, but --model-control-mode is not poll; nothing to do");
    return;
  }
  absl::MutexLock lock(&mu_);
  rescan_requested_ = true;
}

void ModelControl::Loop() {
  absl::Time next_poll = absl::Now() + poll_interval_;
  while (true) {
    absl::AnyInvocable<void()> work;
    bool rescan = false;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this, next_poll]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return stopping_ || !queue_.empty() || rescan_requested_ ||
               (mode_ == ControlMode::kPoll && absl::Now() >= next_poll);
      };
      // Woken by the condition or at the next poll (the condition is re-checked then).
      mu_.AwaitWithDeadline(absl::Condition(&ready),
                            mode_ == ControlMode::kPoll ? next_poll : absl::InfiniteFuture());
      if (stopping_) return;
      if (!queue_.empty()) {
        work = std::move(queue_.front());
        queue_.pop_front();
      } else if (rescan_requested_ || (mode_ == ControlMode::kPoll && absl::Now() >= next_poll)) {
        rescan = true;
        rescan_requested_ = false;
      }
    }
    if (work) work();
    if (rescan) {
      models_.Rescan();
      next_poll = absl::Now() + poll_interval_;
    }
  }
}

}  // namespace modeld::service
