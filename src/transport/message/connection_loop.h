// What the queue workers whose one thread owns the broker connection share (AMQP, Celery):
// StopRequests, the stop requests other threads make, and RunConnectionLoop, the thread's
// loop: connect with backoff, run turns, and reconnect after a failure, logging the outage
// once and the recovery once.
#pragma once

#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "metrics/registry.h"

namespace modeld::transport::message {

// Thread-safe.
class StopRequests {
 public:
  // Take no more messages (the consumer is cancelled on the loop's next turn).
  void StopReading() {
    absl::MutexLock lock(&mu_);
    stop_reading_ = true;
  }
  // StopReading, and end the loop once the worker is done or `deadline` passed (the earliest
  // deadline asked for counts).
  void Stop(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    stop_reading_ = true;
    stopping_ = true;
    deadline_ = std::min(deadline_, deadline);
  }
  bool reading_stopped() const {
    absl::MutexLock lock(&mu_);
    return stop_reading_;
  }
  // Whether Stop was called; if so, `*deadline` is its deadline.
  bool stopping(absl::Time* deadline) const {
    absl::MutexLock lock(&mu_);
    *deadline = deadline_;
    return stopping_;
  }
  // Sleeps until `until` (on `clock`), or until Stop is called.
  void SleepUntil(absl::Time until, const common::Clock& clock) {
    while (clock.Now() < until) {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      mu_.AwaitWithDeadline(absl::Condition(&stopping_), until);
    }
  }

 private:
  mutable absl::Mutex mu_;
  bool stop_reading_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
};

struct ConnectionLoop {
  std::string name;   // the log prefix: "amqp", "celery"
  std::string where;  // the broker's URL without its password
  absl::Duration min_backoff;
  absl::Duration max_backoff;
  // Whether a connection is open (after connect succeeded, until lost).
  std::function<bool()> connected;
  // Opens the connection and starts consuming. An error is logged and retried after a backoff
  // (lost() is called first).
  std::function<absl::Status()> connect;
  // The line logged once connected, the first time and after an outage.
  std::function<std::string()> consuming;
  // One turn on the open connection. An error means the connection is lost.
  std::function<absl::Status()> step;
  // Closes the connection (if any) and lets go of what it held.
  std::function<void()> lost;
  // Whether the loop is done (checked before every turn).
  std::function<bool()> done;
};

// Runs `loop` on the calling thread until loop.done(); the backoff sleeps end early on a Stop.
// Counts each connection opened again after a failure in `reconnects`.
void RunConnectionLoop(const ConnectionLoop& loop, StopRequests& stop, const common::Clock& clock,
                       metrics::Counter& reconnects);

}  // namespace modeld::transport::message
