// ModelManager: owns the loaded versions of every model in the repository and hands out
// handles to them.
//
// Readers take an immutable snapshot of the version map, so Get() never waits for a load. A
// ModelHandle keeps its version (config, scheduler, instances) alive until the last request
// holding it has finished, so retiring a version never pulls a model from under a request:
// a reload publishes the new map and the old version drains as its last requests end.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "backend/registry.h"
#include "batching/scheduler.h"
#include "core/model_config.h"
#include "core/model_status.h"
#include "metrics/registry.h"
#include "repository/load_waiters.h"
#include "repository/residency.h"
#include "repository/scan.h"
#include "repository/served_version.h"

namespace modeld::repository {

// With a memory budget (docs/design/memory-budget.md): how it is spent and bounded.
struct MemoryBudgetOptions {
  int64_t budget_bytes = 0;  // 0: no budget, every model loads at start (the default)
  bool preload = true;       // load at start what fits
  absl::Duration load_timeout = absl::Seconds(60);   // the longest a request waits for a load
  absl::Duration min_residency = absl::ZeroDuration();  // never evicted sooner after its load
  // The process's resident memory in bytes, read before and after each load (after the
  // freed pages went back to the system); null: /proc/self/statm. Tests inject their own.
  std::function<int64_t()> resident_bytes;
  // The first retry of a model whose on-demand load failed; doubles up to `max_retry`.
  absl::Duration min_retry = absl::Seconds(1);
  absl::Duration max_retry = absl::Seconds(60);
};

// Whether `status` (from Get) says the model is not loaded now but loads on demand: the
// caller then parks its request with WhenLoaded.
bool LoadsOnDemand(const absl::Status& status);

// Thread-safe. The destructor drains every version.
class ModelManager {
 public:
  // `registry` may be null: versions then record no metrics.
  ModelManager(std::filesystem::path repository, const backend::BackendRegistry& backends,
               batching::SchedulerFactory make_scheduler, metrics::Registry* registry = nullptr);
  ~ModelManager();

  // Publishes every model folder of the repository with the versions its config.pbtxt's
  // policy picks, all LOADING, without opening any model: cheap, so it runs before the
  // transports open, and a client that asks at once sees a model that is loading rather than
  // an unknown one. LoadAll() then plans, checks and loads them. Fails only when the
  // repository itself cannot be read.
  absl::Status Announce();

  // Loads every model of the repository; returns once each has loaded or failed. While it
  // runs, Status() shows the versions still LOADING and Get() serves those already READY. A
  // model that fails is logged with its reason and reported through Get()/Status(); the others
  // serve. Fails only when the repository itself cannot be read.
  absl::Status LoadAll();

  // The version to run: `version`, or the newest ready one. NOT_FOUND for an unknown model or
  // version; UNAVAILABLE, with the reason, for a model or version that failed to load, or for
  // a model that is not loaded now but loads on demand (LoadsOnDemand(status) is then true).
  absl::StatusOr<ModelHandle> Get(absl::string_view name, std::optional<int64_t> version) const;

  // With a budget: `done` gets Get(name, version) once model `name` is loaded (starting its
  // load if none runs: concurrent callers share one), or the load's failure, or
  // DEADLINE_EXCEEDED at the earlier of `deadline` and the budget's load_timeout (the load
  // goes on for later requests). `done` runs exactly once, on a loader thread, never on the
  // caller's. Without a budget, or for a model that is loaded: `done` runs at once with Get().
  void WhenLoaded(const std::string& name, std::optional<int64_t> version, absl::Time deadline,
                  LoadedCallback done);

  // The config of model `name` (`version`, or the newest), loaded or not: what a request must
  // look like before it is worth loading the model for. NOT_FOUND / UNAVAILABLE as Get.
  absl::StatusOr<std::shared_ptr<const core::ModelConfig>> Config(
      absl::string_view name, std::optional<int64_t> version) const;

  // NOT_FOUND for an unknown model.
  absl::StatusOr<core::ModelStatus> Status(absl::string_view name) const;
  // Every model, by name.
  std::vector<core::ModelStatus> StatusAll() const;

  // Whether LoadAll() has not finished yet or some version is still loading.
  bool Loading() const;

  // Whether the repository held no model folder when it was last listed (Announce, LoadAll,
  // Rescan): a missing mount or a wrong --model-repository, most likely. The server is then
  // not ready (a load balancer or orchestrator sees why at once) rather than ready with
  // nothing to serve; a rescan that finds a model ends it.
  bool RepositoryEmpty() const { return repository_empty_.load(); }

  // Reloading while serving. Each brings one model (or all) in line with the repository as
  // it is now; they run one at a time. A new or changed version is loaded (and warmed up)
  // before it is published; a version that is no longer wanted is dropped from the map and
  // drains as its last requests end. A load that fails keeps the versions that were serving
  // (core::ModelStatus::reload_error says why). A config.pbtxt that changed reloads every version.
  //
  // Rescan: every model folder (new ones load, changed ones reload, unchanged ones are left
  // alone) and every served model whose folder is gone (unloaded). Errors are logged.
  void Rescan();
  // Loads or reloads model `name` from its folder. NOT_FOUND when there is no such folder;
  // the load's error (UNAVAILABLE with the reason) when no version could be served.
  absl::Status LoadModel(absl::string_view name);
  // Stops serving model `name` (its versions drain). NOT_FOUND when it is not served.
  absl::Status UnloadModel(absl::string_view name);

  // The repository's model folders with the state of each version (Triton's repository
  // index): served versions as they are, folders not served as UNAVAILABLE "unloaded".
  std::vector<core::IndexEntry> Index() const;

  // Turns the memory budget on. Set before LoadAll(); a budget that no model fits in makes
  // LoadAll() fail with INVALID_ARGUMENT naming the smallest model's size.
  void SetMemoryBudget(MemoryBudgetOptions options);
  // With a budget: INVALID_ARGUMENT when no model of the repository fits in it (estimated
  // from the files), so that modeld refuses to start rather than serve nothing. Call before
  // serving; OK without a budget. (LoadAll checks the same.)
  absl::Status CheckMemoryBudget();

  // Where trained models keep their checkpoints: <dir>/<model>; empty (the default):
  // <model folder>/checkpoints. A model's checkpoint_dir parameter overrides both. Set before
  // LoadAll().
  void SetCheckpointRoot(std::filesystem::path dir) { checkpoint_root_ = std::move(dir); }

  // Stops intake on every version and waits for queued requests and training steps to finish;
  // trained models write their last checkpoint.
  void DrainAll();

  // Makes a LoadAll() in progress stop before its next version (the rest are reported
  // UNAVAILABLE "modeld is shutting down"); the version loading now finishes first. With a
  // budget, also stops the on-demand loads (the one in progress finishes first) and answers
  // every request waiting for one UNAVAILABLE "modeld is shutting down", on this thread.
  void CancelLoading();

  // Versions with an instance inside one Run() since before `now - limit`: stuck.
  std::vector<core::StuckRun> StuckRuns(absl::Time now, absl::Duration limit) const;

  // The configs of the versions served now (READY), one per version.
  std::vector<std::shared_ptr<const core::ModelConfig>> ServedConfigs() const;

  // Called, outside every lock, each time the set of served versions may have changed (a load,
  // reload or unload was published). Set before LoadAll().
  void SetOnServedChange(std::function<void()> callback) {
    on_served_change_ = std::move(callback);
  }

 private:
  struct ModelEntry {
    // status.loads_on_demand: planned, not loaded (the budget); `ready` is then empty.
    core::ModelStatus status;
    std::map<int64_t, ModelHandle> ready;
    // What the folder looked like when it was planned: config.pbtxt's text and each
    // on-disk version's Fingerprint. A rescan reloads the model when either differs, and
    // reuses a loaded version whose text and fingerprint are unchanged.
    std::string config_text;
    std::map<int64_t, std::string> disk;
  };
  using Snapshot = absl::flat_hash_map<std::string, ModelEntry>;

  // Why `version_dir` cannot be served when it holds a SavedModel and no TensorFlow backend
  // is registered; nullopt otherwise.
  std::optional<std::string> MissingTensorFlow(const std::filesystem::path& version_dir) const;
  // Records whether the listed repository is empty, logging when it becomes so.
  void NoteRepositoryListed(const std::vector<ModelDir>& dirs);
  // Reads the config, finds the backend and picks the versions (all LOADING); a failure is
  // recorded in the entry and leaves *backend null.
  ModelEntry PlanModel(const ModelDir& dir, backend::Backend** backend) const;
  // Loads the entry's versions, marking each READY or UNAVAILABLE with the reason. A version
  // `previous` serves with the same config text and fingerprint is reused, not reloaded (unless
  // its last reload failed and `retry_failed`). A version whose load fails while `previous`
  // serves a copy of it keeps that copy, READY with its reload_error: a bad deploy of one
  // version never moves its traffic to another.
  void LoadVersions(const ModelDir& dir, backend::Backend& backend, ModelEntry& entry,
                    const ModelEntry* previous = nullptr, bool retry_failed = false) const;
  void Publish(std::shared_ptr<const Snapshot> next);
  std::shared_ptr<const Snapshot> snapshot() const;
  // One model's folder against what is served; `force` reloads it even when unchanged.
  // Callers hold reload_mu_.
  absl::Status Reconcile(const ModelDir& dir, bool force) ABSL_EXCLUSIVE_LOCKS_REQUIRED(reload_mu_);
  // Publishes a copy of the map with `name` set to `entry`, or removed when it is nullopt.
  void Replace(const std::string& name, std::optional<ModelEntry> entry);

  // The memory budget (null without one): the load queue's thread, the parked requests, the
  // residency bookkeeping and the back-off of failed loads.
  struct Budget;
  // The budget's plan for the models of `dirs` (planned into `planned`, with their backends;
  // null: failed): each one's estimated size and pin, the refusal of a budget no model fits,
  // and the models to load at start.
  absl::StatusOr<absl::flat_hash_set<std::string>> PlanBudget(
      const std::vector<ModelDir>& dirs, const Snapshot& planned,
      const std::vector<backend::Backend*>& backends);
  // The loader thread of the budget: runs the queued on-demand loads one at a time.
  void LoadQueued();
  // Loads model `name` within the budget (evicting what PlanLoad says first), measuring its
  // size; `cause` labels the load in the metrics ("on_demand", "explicit"). Callers hold
  // reload_mu_. OK when it serves afterwards. RESOURCE_EXHAUSTED when it does not fit; then
  // `*busy_blocked` (when not null) says whether it will once models with requests in flight
  // or under their minimum residency may go.
  absl::Status LoadWithinBudget(const std::string& name, const char* cause, bool* busy_blocked)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(reload_mu_);
  // A load's measured size: the process's growth since `before`, at least `estimate` (its
  // files), and no more than the whole budget unless its files alone are more.
  int64_t MeasuredBytes(const std::string& name, int64_t before, int64_t estimate) const;
  // Unloads a model the budget evicts: its entry stays, loadable on demand. Returns the
  // notifications of its versions' destruction (ServedVersion::freed).
  std::vector<std::shared_ptr<absl::Notification>> Evict(const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(reload_mu_);
  // `entry` turned into an unloaded one that loads on demand, its versions UNAVAILABLE with
  // `reason`.
  static ModelEntry OnDemand(ModelEntry entry, const std::string& reason);
  // OnDemand, unless its files alone are more than the whole budget: then its versions are
  // UNAVAILABLE with both sizes and it is not loadable (not ready).
  ModelEntry Unloaded(ModelEntry entry, const std::string& reason) const;
  // The sizes of the version folders `entry` serves: the estimate before the first load.
  int64_t EstimateBytes(const ModelDir& dir, const ModelEntry& entry) const;
  int64_t ResidentBytes() const;

  const std::filesystem::path repository_;
  std::filesystem::path checkpoint_root_;  // set before LoadAll
  std::function<void()> on_served_change_;  // set before LoadAll
  const backend::BackendRegistry& backends_;
  const batching::SchedulerFactory make_scheduler_;
  metrics::Registry* const registry_;
  std::atomic<bool> loaded_once_{false};
  std::atomic<bool> repository_empty_{false};
  std::atomic<bool> cancelled_{false};

  std::unique_ptr<Budget> budget_;  // set before LoadAll; null without a budget

  absl::Mutex reload_mu_;  // one reload at a time
  mutable absl::Mutex mu_;
  std::shared_ptr<const Snapshot> snapshot_ ABSL_GUARDED_BY(mu_);
};

}  // namespace modeld::repository
