#include "repository/load_waiters.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace modeld::repository {

LoadWaiters::LoadWaiters(OnAnswered on_answered)
    : on_answered_(std::move(on_answered)), timer_([this] { Expire(); }) {}

LoadWaiters::~LoadWaiters() { Close(); }

void LoadWaiters::Close() {
  absl::MutexLock closing(&close_mu_);
  std::vector<Waiter> left;
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    for (auto& [id, waiter] : waiters_) left.push_back(std::move(waiter));
    waiters_.clear();
    deadlines_.clear();
  }
  if (timer_.joinable()) timer_.join();
  for (Waiter& waiter : left) {
    std::move(waiter.done)(absl::UnavailableError("modeld is shutting down"));
  }
}

bool LoadWaiters::Add(const std::string& model, std::optional<int64_t> version,
                      absl::Time deadline, LoadedCallback done) {
  {
    absl::MutexLock lock(&mu_);
    if (!stop_) {
      const uint64_t id = ++next_id_;
      waiters_.emplace(id, Waiter{model, version, absl::Now(), deadline, std::move(done)});
      deadlines_.emplace(deadline, id);
      return loading_.insert(model).second;
    }
  }
  std::move(done)(absl::UnavailableError("modeld is shutting down"));
  return false;
}

void LoadWaiters::ResolveAll(const std::string& model, const Resolve& resolve) {
  std::vector<Waiter> answered;
  {
    absl::MutexLock lock(&mu_);
    loading_.erase(model);
    notes_.erase(model);
    for (auto it = deadlines_.begin(); it != deadlines_.end();) {
      auto waiter = waiters_.find(it->second);
      if (waiter != waiters_.end() && waiter->second.model == model) {
        answered.push_back(std::move(waiter->second));
        waiters_.erase(waiter);
        it = deadlines_.erase(it);
      } else {
        ++it;
      }
    }
  }
  const absl::Time now = absl::Now();
  for (Waiter& waiter : answered) {
    absl::StatusOr<ModelHandle> handle = resolve(waiter.version);
    if (on_answered_) on_answered_(model, now - waiter.since, handle.ok());
    std::move(waiter.done)(std::move(handle));
  }
}

void LoadWaiters::Note(const std::string& model, std::string why) {
  absl::MutexLock lock(&mu_);
  notes_[model] = std::move(why);
}

size_t LoadWaiters::Waiting(const std::string& model) const {
  absl::MutexLock lock(&mu_);
  size_t count = 0;
  for (const auto& [id, waiter] : waiters_) count += waiter.model == model ? 1 : 0;
  return count;
}

void LoadWaiters::Expire() {
  for (;;) {
    std::vector<std::pair<Waiter, std::string>> expired;  // with the model's note
    {
      absl::MutexLock lock(&mu_);
      // Sleeps until the earliest deadline, or a new one, or the stop.
      const absl::Time earliest =
          deadlines_.empty() ? absl::InfiniteFuture() : deadlines_.begin()->first;
      const size_t count = deadlines_.size();
      auto changed = [this, earliest, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || deadlines_.size() != count ||
               (!deadlines_.empty() && deadlines_.begin()->first != earliest);
      };
      mu_.AwaitWithDeadline(absl::Condition(&changed), earliest);
      if (stop_) return;
      const absl::Time now = absl::Now();
      while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
        auto waiter = waiters_.find(deadlines_.begin()->second);
        if (waiter != waiters_.end()) {
          auto note = notes_.find(waiter->second.model);
          expired.emplace_back(std::move(waiter->second),
                               note != notes_.end() ? note->second : std::string());
          waiters_.erase(waiter);
        }
        deadlines_.erase(deadlines_.begin());
      }
    }
    const absl::Time now = absl::Now();
    for (auto& [waiter, note] : expired) {
      const absl::Duration waited = now - waiter.since;
      if (on_answered_) on_answered_(waiter.model, waited, false);
      std::move(waiter.done)(absl::DeadlineExceededError(
          note.empty()
              ? absl::StrFormat("model '%s' is still loading (waited %.1f s, until the "
                                "request's deadline or --model-load-timeout); it goes on "
                                "loading for the next requests",
                                waiter.model, absl::ToDoubleSeconds(waited))
              : absl::StrFormat("model '%s' could not load in time (waited %.1f s, until the "
                                "request's deadline or --model-load-timeout): %s",
                                waiter.model, absl::ToDoubleSeconds(waited), note)));
    }
  }
}

}  // namespace modeld::repository
