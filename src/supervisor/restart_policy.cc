#include "supervisor/restart_policy.h"

#include <sys/wait.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace modeld::supervisor {

ChildExit ChildExit::FromWaitStatus(int wait_status) {
  if (WIFSIGNALED(wait_status)) {
    ChildExit exit = Signaled(WTERMSIG(wait_status));
    exit.core_dumped = WCOREDUMP(wait_status);
    return exit;
  }
  return Exited(WEXITSTATUS(wait_status));
}

std::string ChildExit::Describe() const {
  if (kind == Kind::kExited) return absl::StrCat("exited with status ", value);
  std::string text;
  if (const char* abbreviation = sigabbrev_np(value); abbreviation != nullptr) {
    text = absl::StrCat("killed by signal SIG", abbreviation, " (", value, ")");
  } else {
    text = absl::StrCat("killed by signal ", value);
  }
  if (core_dumped) absl::StrAppend(&text, " (core dumped)");
  return text;
}

RestartPolicy::RestartPolicy(const RestartPolicyOptions& options)
    : options_(options), next_backoff_(options.backoff_initial) {}

void RestartPolicy::ChildStarted(absl::Time now) {
  if (started_once_) {
    ++restarts_;
    restart_times_.push_back(now);
  }
  started_once_ = true;
  last_start_ = now;
}

Decision RestartPolicy::ChildExited(const ChildExit& exit, absl::Time now) {
  Decision decision;
  const bool clean = exit.kind == ChildExit::Kind::kExited && exit.value == 0;
  if (stop_requested_) {
    decision.exit_code = clean ? 0 : 1;
    decision.reason = "stopped on request";
    return decision;
  }
  if (clean) {
    decision.exit_code = 0;
    decision.reason = "not restarted (a clean exit)";
    return decision;
  }
  if (exit.kind == ChildExit::Kind::kExited && exit.value == 2) {
    decision.exit_code = 2;
    decision.reason = "not restarted (status 2: bad flags or usage)";
    return decision;
  }

  while (!restart_times_.empty() && now - restart_times_.front() > options_.crash_loop_window) {
    restart_times_.pop_front();
  }
  if (static_cast<int>(restart_times_.size()) >= options_.crash_loop_restarts) {
    decision.exit_code = 1;
    decision.reason =
        absl::StrFormat("crash loop: %d restarts in %g s; giving up", restart_times_.size(),
                        absl::ToDoubleSeconds(options_.crash_loop_window));
    return decision;
  }

  if (now - last_start_ >= options_.crash_loop_window) next_backoff_ = options_.backoff_initial;
  decision.action = Decision::Action::kRestart;
  decision.delay = std::min(next_backoff_, options_.backoff_max);
  next_backoff_ = std::min(next_backoff_ * 2, options_.backoff_max);
  decision.reason = absl::StrCat("restarting in ", FormatDelay(decision.delay));
  return decision;
}

std::string FormatDelay(absl::Duration delay) {
  return absl::StrCat(absl::ToInt64Milliseconds(delay), " ms");
}

}  // namespace modeld::supervisor
