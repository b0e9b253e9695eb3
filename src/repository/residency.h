// Residency: the memory budget's bookkeeping and eviction policy (docs/design/memory-budget.md).
// Per model (all the versions it serves load and unload together): its size, whether it is
// loaded, when it was loaded and last used, whether it may be evicted; and from those, which
// models to evict so that a load fits the budget, or why none can.
//
// Pure: no threads, no clock (times are passed in), no I/O. NOT thread-safe: the caller
// (ModelManager) holds its own lock around every call, so that a plan and the state it was
// made from are one snapshot.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace modeld::repository {

class Residency {
 public:
  // `budget_bytes` (> 0) bounds the sum of the loaded models' sizes (--model-memory-budget);
  // a model loaded less than `min_residency` ago is never evicted (--model-min-residency).
  Residency(int64_t budget_bytes, absl::Duration min_residency);

  // --- What the caller reports. A model is known from its first call here; none fails. ---

  // The model's size estimated from its files, before any load. Used until the model has a
  // measurement: a measurement always wins, so a model whose files changed should be
  // Forget()-ten (and pinned again if it was) before its new estimate is set. A negative
  // size counts as 0.
  void SetEstimate(const std::string& model, int64_t bytes);
  // The model is loaded (first load or reload), `at` the time it became so. Its measured
  // size replaces the estimate, counts in used() until Unloaded() or Forget(), and is
  // remembered after them for the next PlanLoad(). Its last use is `at`. A negative
  // measurement (memory freed meanwhile) counts as 0; a caller that wants a floor (the
  // estimate, say) applies it before calling.
  void Loaded(const std::string& model, int64_t measured_bytes, absl::Time at);
  // The model was evicted or unloaded: no longer counts in used(). Its measured size stays
  // known. No-op for a model that is not loaded.
  void Unloaded(const std::string& model);
  // A request used the model at `at`: the least-recently-used order. An earlier time than
  // the one recorded is ignored (a request that read the clock before another). No-op for a
  // model that is not loaded: its next Loaded() sets its last use.
  void Touch(const std::string& model, absl::Time at);
  // Pinned: never evicted (config parameter eviction: never). Kept across loads and unloads.
  void SetPinned(const std::string& model, bool pinned);
  // The model is gone from the repository: everything about it is dropped, and if it was
  // loaded, its size no longer counts in used().
  void Forget(const std::string& model);

  // --- What it knows. ---

  // The sum of the loaded models' (measured) sizes.
  int64_t used() const { return used_; }
  int64_t budget() const { return budget_; }
  // Measured at its last load, else estimated from its files; nullopt when neither is known.
  std::optional<int64_t> Size(const std::string& model) const;
  bool IsLoaded(const std::string& model) const;
  // Whether Size() is a measurement (the model has loaded at least once).
  bool Measured(const std::string& model) const;

  // --- The policy. ---

  // The loaded models to evict, in the order to evict them (least recently used first: last
  // Touch(), or the load when none came since; equal times by name), so that
  // used() - their sizes + Size(model) <= budget(). Only as many as needed, oldest first.
  // Empty when the model is already loaded (nothing to do) or already fits.
  //
  // Never evicted: pinned models; those `busy` says are (requests in flight or queued,
  // training steps queued: the caller decides; an empty `busy` means none are); those loaded
  // less than min_residency before `now`; `model` itself; and, strictly least recently used
  // first, any model used after one of those under its minimum residency (the hottest model
  // would otherwise go in a colder one's place; the caller waits for the residency to end).
  // `busy` is called at most once per loaded model that is neither pinned nor `model`.
  //
  // Errors:
  //   NOT_FOUND when `model` has no size known (neither SetEstimate() nor Loaded()): the
  //     caller estimates every model of the repository before planning, so this means it is
  //     not (or no longer) in the repository.
  //   RESOURCE_EXHAUSTED when Size(model) > budget() alone: "model 'big' needs about 3.1 GiB
  //     (estimated from its files) and --model-memory-budget is 2.0 GiB" ("measured at its
  //     last load" once measured). Evicting cannot help, so nothing is planned.
  //   RESOURCE_EXHAUSTED when evicting every model that may go would still not make room:
  //     "model 'x' needs about 1.2 GiB (estimated from its files) and the budget of 2.0 GiB
  //     is held by 'a' (pinned, 900 MiB), 'b' (busy, 700 MiB), 'c' (loaded 3 s ago, under
  //     --model-min-residency=10s, 300 MiB); at most 100 MiB can be made free": the models
  //     that cannot go, largest first, each with why and its size, then what the free part
  //     of the budget and the models that may go add up to.
  absl::StatusOr<std::vector<std::string>> PlanLoad(
      const std::string& model, absl::Time now,
      const std::function<bool(const std::string&)>& busy) const;

  // The models to load at start (--preload-models), in the given (repository) order: each in
  // turn is taken while its size (Size(): the estimate at start) fits in what the budget has
  // left after used() and the ones taken before it. One that does not fit is skipped and the
  // next, smaller ones may still be taken: the budget is filled rather than stopping at the
  // first large model, and a skipped model still loads on its first request. Skipped too:
  // models already loaded, models with no size known, repeats.
  std::vector<std::string> PlanPreload(const std::vector<std::string>& models_in_order) const;

 private:
  struct Model {
    std::optional<int64_t> estimate;
    std::optional<int64_t> measured;
    bool loaded = false;
    bool pinned = false;
    absl::Time loaded_at;  // of the last Loaded()
    absl::Time last_used;  // the later of loaded_at and the last Touch() since
  };

  const Model* Find(const std::string& model) const;

  const int64_t budget_;
  const absl::Duration min_residency_;
  // Ordered by name, so plans and messages are the same from run to run.
  std::map<std::string, Model> models_;
  int64_t used_ = 0;
};

}  // namespace modeld::repository
