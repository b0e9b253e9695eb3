// LoadWaiters: requests parked until their model has loaded on demand (the memory budget,
// docs/design/memory-budget.md), each with a deadline. The ModelManager starts one load per
// model however many requests wait for it, and resolves them all when it ends; a timer thread
// fails each request whose deadline comes first. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "repository/served_version.h"

namespace modeld::repository {

// What a parked request gets: the version to run, or why there is none.
using LoadedCallback = absl::AnyInvocable<void(absl::StatusOr<ModelHandle>) &&>;

class LoadWaiters {
 public:
  // How a model's waiters are answered once its load ended: Get(model, version).
  using Resolve = std::function<absl::StatusOr<ModelHandle>(std::optional<int64_t> version)>;
  // Called for each request that waited, when it is answered: how long it waited, and whether
  // it got a version (false: the load failed or its deadline came first). May be null.
  using OnAnswered = std::function<void(const std::string& model, absl::Duration waited, bool ok)>;

  explicit LoadWaiters(OnAnswered on_answered = nullptr);
  ~LoadWaiters();  // Close()

  // Answers every request still parked UNAVAILABLE "modeld is shutting down" (on the calling
  // thread), and every later Add the same at once. Idempotent.
  void Close();
  LoadWaiters(const LoadWaiters&) = delete;
  LoadWaiters& operator=(const LoadWaiters&) = delete;

  // Parks `done` for `model` until ResolveAll(model) or `deadline`. Returns true when no load
  // of `model` is pending: the caller starts one (and calls ResolveAll when it ends). After
  // Close, answers `done` at once and returns false.
  bool Add(const std::string& model, std::optional<int64_t> version, absl::Time deadline,
           LoadedCallback done);

  // The load of `model` ended: answers each of its parked requests with resolve(version), on
  // the calling thread and outside the lock. A later Add starts a new load.
  void ResolveAll(const std::string& model, const Resolve& resolve);

  // Requests parked for `model` now.
  size_t Waiting(const std::string& model) const;

  // Why `model`'s load has not happened yet (for example the models holding the budget): a
  // request whose deadline comes first is told, instead of "still loading". Cleared by
  // ResolveAll.
  void Note(const std::string& model, std::string why);

 private:
  struct Waiter {
    std::string model;
    std::optional<int64_t> version;
    absl::Time since;
    absl::Time deadline;
    LoadedCallback done;
  };

  void Expire();  // the timer thread

  const OnAnswered on_answered_;
  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, Waiter> waiters_ ABSL_GUARDED_BY(mu_);  // by id
  std::multimap<absl::Time, uint64_t> deadlines_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> loading_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::string> notes_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread timer_;  // joined by Close (under close_mu_)
  absl::Mutex close_mu_;
};

}  // namespace modeld::repository
