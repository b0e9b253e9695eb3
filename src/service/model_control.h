// ModelControl: changes to the served models while modeld runs (--model-control-mode), on a
// thread of their own, so a slow load never holds a transport thread and changes happen one
// at a time.
//
//   none      the repository is loaded once at start; Load and Unload answer UNAVAILABLE.
//   poll      the repository is rescanned every poll interval and on Rescan() (SIGHUP):
//             ModelManager::Rescan loads, reloads and unloads what changed.
//   explicit  Load and Unload (the repository extension of the KServe APIs) change one model.
#pragma once

#include <deque>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace modeld::repository {
class ModelManager;
}  // namespace modeld::repository

namespace modeld::service {

enum class ControlMode { kNone, kPoll, kExplicit };

// Thread-safe. `models` must outlive this object.
class ModelControl {
 public:
  ModelControl(repository::ModelManager& models, ControlMode mode, absl::Duration poll_interval);
  // Stop(), if it has not been called.
  ~ModelControl();
  ModelControl(const ModelControl&) = delete;
  ModelControl& operator=(const ModelControl&) = delete;

  ControlMode mode() const { return mode_; }

  // Starts the thread (and, in poll mode, the timer). Call once the first load is done.
  void Start();

  // Explicit mode: (re)loads or unloads one model; `done` runs on the control thread with
  // ModelManager's answer, or at once with UNAVAILABLE naming the flag in the other modes.
  void Load(std::string name, absl::AnyInvocable<void(absl::Status)> done);
  void Unload(std::string name, absl::AnyInvocable<void(absl::Status)> done);

  // Waits for the change in progress, drops the queued ones (their callbacks get UNAVAILABLE)
  // and joins the thread. The object stays usable: later changes are answered UNAVAILABLE at
  // once, so the transports may keep calling it until they close (Server::Shutdown stops it
  // before the models drain, and destroys it after the transports). Call from one thread.
  void Stop();

  // Poll mode: rescans now rather than at the next tick (SIGHUP). Ignored, with a log line, in
  // the other modes.
  void Rescan();

 private:
  void Enqueue(absl::AnyInvocable<void()> work);
  // Queues `change` (LoadModel or UnloadModel) of model `name`, answering `done`.
  void Change(std::string name, absl::AnyInvocable<void(absl::Status)> done,
              absl::Status (repository::ModelManager::*change)(absl::string_view));
  void Loop();

  repository::ModelManager& models_;
  const ControlMode mode_;
  const absl::Duration poll_interval_;
  absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool rescan_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// The answer to the repository API when --model-control-mode is not explicit: UNAVAILABLE
// naming the flag.
absl::Status ModelControlOff();

// "none", "poll", "explicit" (the flag's values); nullopt-like kNone for anything else is the
// caller's business: ServerOptions validates the flag.
ControlMode ControlModeFromFlag(absl::string_view flag);

}  // namespace modeld::service
