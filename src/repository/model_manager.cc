#include "repository/model_manager.h"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <fstream>
#include <memory>
#include <set>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/byte_size.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "repository/export_hints.h"
#include "repository/version_policy.h"

namespace modeld::repository {

namespace {

// A SavedModel met by a modeld built without its TensorFlow backend (modeld:*-no-tensorflow,
// or a build without the tensorflow-cpu wheel) is refused saying so.
constexpr char kTensorFlowPlatform[] = "tensorflow_savedmodel";
constexpr char kNoTensorFlow[] =
    "this modeld was built without its TensorFlow backend (an image built with "
    "WITH_TENSORFLOW=OFF, such as modeld:latest-no-tensorflow, or a build without the "
    "tensorflow-cpu wheel); serve it with a modeld that has one";

// Marks Get()'s UNAVAILABLE for a model that is not loaded but loads on demand.
constexpr char kLoadsOnDemandUrl[] = "modeld.repository/loads-on-demand";
constexpr char kUnloadedReason[] =
    "unloaded: it loads on its first request (--model-memory-budget)";

// parameters { key: "eviction" value { string_value: "never" } }: the budget never evicts it.
bool Pinned(const core::ModelConfig& config) {
  auto eviction = config.parameters.find("eviction");
  return eviction != config.parameters.end() && eviction->second == "never";
}

// The bytes of every file under `path`.
int64_t FolderBytes(const std::filesystem::path& path) {
  int64_t bytes = 0;
  std::error_code error;
  for (auto it = std::filesystem::recursive_directory_iterator(path, error);
       !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
    if (it->is_regular_file(error)) bytes += static_cast<int64_t>(it->file_size(error));
  }
  return bytes;
}

// What a rescan compares: config.pbtxt's text and the fingerprint of every version folder.
template <typename Entry>
void ReadDiskState(const std::filesystem::path& model_dir, Entry& entry) {
  entry.config_text = ReadFileOrEmpty(model_dir / core::kConfigFileName);
  entry.disk.clear();
  for (int64_t version : ListVersions(model_dir)) {
    entry.disk[version] = Fingerprint(model_dir / std::to_string(version));
  }
}

}  // namespace

bool LoadsOnDemand(const absl::Status& status) {
  return absl::IsUnavailable(status) && status.GetPayload(kLoadsOnDemandUrl).has_value();
}

struct ModelManager::Budget {
  Budget(MemoryBudgetOptions budget_options, metrics::Registry* metrics_registry)
      : options(std::move(budget_options)),
        registry(metrics_registry),
        residency(options.budget_bytes, options.min_residency) {}

  // The metrics of the budget (docs/metrics.md); no-ops without a registry.
  void CountLoad(const std::string& model, const char* cause) {
    if (registry == nullptr) return;
    registry
        ->GetCounter("modeld_model_loads_total",
                     "Loads of a model under --model-memory-budget, by cause: preload, "
                     "on_demand, explicit, reload.",
                     {{"model", model}, {"cause", cause}})
        .Increment();
  }
  void CountEviction(const std::string& model) {
    if (registry == nullptr) return;
    registry
        ->GetCounter("modeld_model_evictions_total",
                     "Models unloaded to make room in --model-memory-budget.", {{"model", model}})
        .Increment();
  }
  void RecordWait(const std::string& model, absl::Duration waited, bool ok) {
    if (registry == nullptr) return;
    registry
        ->GetCounter("modeld_requests_waited_for_load_total",
                     "Requests that waited for their model to load on demand, by outcome.",
                     {{"model", model}, {"outcome", ok ? "served" : "failed"}})
        .Increment();
    registry
        ->GetHistogram("modeld_model_load_wait_seconds",
                       "How long requests waited for their model to load on demand.", {},
                       {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60})
        .Observe(absl::ToDoubleSeconds(waited));
  }
  void SetUsed(int64_t used) {
    if (registry == nullptr) return;
    registry
        ->GetGauge("modeld_memory_budget_used_bytes",
                   "The measured sizes of the models loaded under --model-memory-budget.", {})
        .Set(static_cast<double>(used));
    registry->GetGauge("modeld_memory_budget_bytes", "--model-memory-budget.", {})
        .Set(static_cast<double>(options.budget_bytes));
  }

  const MemoryBudgetOptions options;
  metrics::Registry* const registry;
  absl::Mutex mu;
  Residency residency ABSL_GUARDED_BY(mu);
  std::deque<std::string> queue ABSL_GUARDED_BY(mu);  // models to load, in order
  bool stop ABSL_GUARDED_BY(mu) = false;
  struct Failure {
    absl::Status status;
    absl::Time retry_after;
    absl::Duration backoff;
  };
  absl::flat_hash_map<std::string, Failure> failures ABSL_GUARDED_BY(mu);
  std::unique_ptr<LoadWaiters> waiters;
  std::thread loader;
};

ModelManager::ModelManager(std::filesystem::path repository,
                           const backend::BackendRegistry& backends,
                           batching::SchedulerFactory make_scheduler, metrics::Registry* registry)
    : repository_(std::move(repository)),
      backends_(backends),
      make_scheduler_(std::move(make_scheduler)),
      registry_(registry),
      snapshot_(std::make_shared<const Snapshot>()) {}

ModelManager::~ModelManager() {
  CancelLoading();
  DrainAll();
}

void ModelManager::CancelLoading() {
  cancelled_.store(true);
  if (budget_ == nullptr) return;
  {
    absl::MutexLock lock(&budget_->mu);
    budget_->stop = true;
  }
  if (budget_->loader.joinable()) budget_->loader.join();
  // Answers what still waits now, while the callers' service is alive (the waiters' callbacks
  // go on into it).
  budget_->waiters->Close();
}

void ModelManager::SetMemoryBudget(MemoryBudgetOptions options) {
  budget_ = std::make_unique<Budget>(std::move(options), registry_);
  budget_->waiters = std::make_unique<LoadWaiters>(
      [budget = budget_.get()](const std::string& model, absl::Duration waited, bool ok) {
        budget->RecordWait(model, waited, ok);
      });
}

int64_t ModelManager::ResidentBytes() const {
  if (budget_->options.resident_bytes) return budget_->options.resident_bytes();
  malloc_trim(0);  // what was freed goes back first, or it still counts as resident
  int64_t pages_total = 0;
  int64_t pages_resident = 0;
  std::ifstream("/proc/self/statm") >> pages_total >> pages_resident;
  return pages_resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

int64_t ModelManager::MeasuredBytes(const std::string& name, int64_t before,
                                    int64_t estimate) const {
  // The growth of the whole process: requests served meanwhile move it too. A model takes at
  // least its files' size (the weights), and a noisy measurement must not lock a model that
  // fits out of the budget for good: above the whole budget, it counts as the whole budget.
  int64_t size = std::max(ResidentBytes() - before, estimate);
  if (size > budget_->options.budget_bytes && estimate <= budget_->options.budget_bytes) {
    spdlog::warn("model '{}' measured {} at its load, more than the whole --model-memory-budget "
                 "of {} though its files take {}; counting it as the whole budget (requests "
                 "served during the load count in the measurement)",
                 name, common::FormatBytes(size), common::FormatBytes(budget_->options.budget_bytes),
                 common::FormatBytes(estimate));
    size = budget_->options.budget_bytes;
  }
  return size;
}

int64_t ModelManager::EstimateBytes(const ModelDir& dir, const ModelEntry& entry) const {
  int64_t bytes = 0;
  for (const core::VersionStatus& version : entry.status.versions) {
    bytes += FolderBytes(dir.path / std::to_string(version.version));
  }
  return bytes;
}

ModelManager::ModelEntry ModelManager::Unloaded(ModelEntry entry, const std::string& reason) const {
  // A model whose files alone are more than the whole budget can never load: not ready, and
  // says why, rather than ready and refusing every request.
  std::optional<int64_t> size;
  {
    absl::MutexLock lock(&budget_->mu);
    size = budget_->residency.Size(entry.status.name);
  }
  if (size.has_value() && *size > budget_->options.budget_bytes) {
    const std::string too_big = absl::StrCat(
        "model '", entry.status.name, "' needs about ", common::FormatBytes(*size),
        " (estimated from its files) and --model-memory-budget is ",
        common::FormatBytes(budget_->options.budget_bytes));
    spdlog::error("{}: it is not served", too_big);
    entry = OnDemand(std::move(entry), too_big);
    entry.status.loads_on_demand = false;
    return entry;
  }
  return OnDemand(std::move(entry), reason);
}

ModelManager::ModelEntry ModelManager::OnDemand(ModelEntry entry, const std::string& reason) {
  entry.ready.clear();
  entry.status.loads_on_demand = true;
  for (core::VersionStatus& version : entry.status.versions) {
    version.state = core::VersionState::kUnavailable;
    version.reason = reason;
    version.reload_error.clear();
  }
  return entry;
}

void ModelManager::NoteRepositoryListed(const std::vector<ModelDir>& dirs) {
  if (!dirs.empty()) {
    repository_empty_.store(false);
  } else if (!repository_empty_.exchange(true)) {
    spdlog::warn(
        "model repository '{}' holds no models: modeld is not ready until it does (is the "
        "repository mounted there? a model is a folder <model>/<version>/ with its files, and "
        "a config.pbtxt beside the version folders)",
        repository_.string());
  }
}

absl::Status ModelManager::Announce() {
  ASSIGN_OR_RETURN(std::vector<ModelDir> dirs, ListModelDirs(repository_));
  NoteRepositoryListed(dirs);
  auto announced = std::make_shared<Snapshot>(*snapshot());
  for (const ModelDir& dir : dirs) {
    if (announced->contains(dir.name)) continue;
    ModelEntry& entry = (*announced)[dir.name];
    entry.status.name = dir.name;
    // Without a readable config, TensorFlow Serving's default policy (the newest version);
    // LoadAll() reports what is wrong with it a moment later.
    absl::StatusOr<inference::ModelConfig> proto = core::ReadModelConfigProto(dir.path);
    const inference::ModelVersionPolicy policy =
        proto.ok() ? proto->version_policy() : inference::ModelVersionPolicy();
    for (int64_t version : SelectVersions(policy, ListVersions(dir.path))) {
      entry.status.versions.push_back({version, core::VersionState::kLoading, "", ""});
    }
  }
  Publish(std::move(announced));
  return absl::OkStatus();
}

absl::Status ModelManager::LoadAll() {
  ASSIGN_OR_RETURN(std::vector<ModelDir> dirs, ListModelDirs(repository_));
  NoteRepositoryListed(dirs);
  // First every model with its versions LOADING, so readiness is honest while they load...
  auto planned = std::make_shared<Snapshot>();
  std::vector<backend::Backend*> backends;
  for (const ModelDir& dir : dirs) {
    backend::Backend* backend = nullptr;
    (*planned)[dir.name] = PlanModel(dir, &backend);
    backends.push_back(backend);
  }
  // With a budget: which models load now (the rest load on demand).
  absl::flat_hash_set<std::string> preload;
  if (budget_ != nullptr) {
    ASSIGN_OR_RETURN(preload, PlanBudget(dirs, *planned, backends));
  }
  Publish(planned);
  // ...then each model's versions, published as each model finishes.
  for (size_t i = 0; i < dirs.size(); ++i) {
    if (backends[i] == nullptr) continue;  // failed while planning; already reported
    ModelEntry entry = (*planned)[dirs[i].name];
    if (budget_ != nullptr && !preload.contains(dirs[i].name)) {
      Replace(dirs[i].name, Unloaded(std::move(entry), kUnloadedReason));
      continue;
    }
    if (budget_ != nullptr) {
      // Measured sizes may be larger than the files said: what is left decides.
      bool fits = false;
      {
        absl::MutexLock lock(&budget_->mu);
        const int64_t size = budget_->residency.Size(dirs[i].name).value_or(0);
        fits = budget_->residency.used() + size <= budget_->options.budget_bytes;
      }
      if (!fits) {
        Replace(dirs[i].name, Unloaded(std::move(entry), kUnloadedReason));
        continue;
      }
    }
    const int64_t before = budget_ != nullptr ? ResidentBytes() : 0;
    const int64_t estimate = budget_ != nullptr ? EstimateBytes(dirs[i], entry) : 0;
    LoadVersions(dirs[i], *backends[i], entry);
    const bool loaded = !entry.ready.empty();
    auto next = std::make_shared<Snapshot>(*snapshot());
    (*next)[dirs[i].name] = std::move(entry);
    Publish(std::move(next));
    if (budget_ != nullptr && loaded) {
      const int64_t size = MeasuredBytes(dirs[i].name, before, estimate);
      absl::MutexLock lock(&budget_->mu);
      budget_->residency.Loaded(dirs[i].name, size, absl::Now());
      budget_->SetUsed(budget_->residency.used());
      budget_->CountLoad(dirs[i].name, "preload");
    }
  }
  if (budget_ != nullptr) budget_->loader = std::thread([this] { LoadQueued(); });
  loaded_once_.store(true);
  return absl::OkStatus();
}

absl::StatusOr<absl::flat_hash_set<std::string>> ModelManager::PlanBudget(
    const std::vector<ModelDir>& dirs, const Snapshot& planned,
    const std::vector<backend::Backend*>& backends) {
  std::vector<std::string> order;
  absl::MutexLock lock(&budget_->mu);
  for (size_t i = 0; i < dirs.size(); ++i) {
    if (backends[i] == nullptr) continue;  // failed while planning: never loads
    const ModelEntry& entry = planned.at(dirs[i].name);
    budget_->residency.SetEstimate(dirs[i].name, EstimateBytes(dirs[i], entry));
    budget_->residency.SetPinned(dirs[i].name, Pinned(*entry.status.config));
    order.push_back(dirs[i].name);
  }
  // A budget no model fits in is a mistake in the flags, not something to serve with.
  std::optional<std::pair<int64_t, std::string>> smallest;
  for (const std::string& name : order) {
    const int64_t size = budget_->residency.Size(name).value_or(0);
    if (!smallest.has_value() || size < smallest->first) smallest.emplace(size, name);
  }
  if (smallest.has_value() && smallest->first > budget_->options.budget_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "no model fits in --model-memory-budget=",
        common::FormatBytes(budget_->options.budget_bytes), ": the smallest, '",
        smallest->second, "', needs about ", common::FormatBytes(smallest->first),
        " (estimated from its files)"));
  }
  budget_->SetUsed(budget_->residency.used());
  absl::flat_hash_set<std::string> preload;
  if (budget_->options.preload) {
    for (std::string& name : budget_->residency.PlanPreload(order)) preload.insert(std::move(name));
  }
  return preload;
}

absl::Status ModelManager::CheckMemoryBudget() {
  if (budget_ == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<ModelDir> dirs, ListModelDirs(repository_));
  Snapshot planned;
  std::vector<backend::Backend*> backends;
  for (const ModelDir& dir : dirs) {
    backend::Backend* backend = nullptr;
    planned[dir.name] = PlanModel(dir, &backend);
    backends.push_back(backend);
  }
  return PlanBudget(dirs, planned, backends).status();
}

void ModelManager::WhenLoaded(const std::string& name, std::optional<int64_t> version,
                              absl::Time deadline, LoadedCallback done) {
  absl::StatusOr<ModelHandle> now = Get(name, version);
  if (budget_ == nullptr || !LoadsOnDemand(now.status())) {
    std::move(done)(std::move(now));
    return;
  }
  // Inside a failed load's back-off, its failure answers at once.
  absl::Status failed;
  {
    absl::MutexLock lock(&budget_->mu);
    auto it = budget_->failures.find(name);
    if (it != budget_->failures.end() && absl::Now() < it->second.retry_after) {
      failed = it->second.status;
    }
  }
  if (!failed.ok()) {
    std::move(done)(std::move(failed));
    return;
  }
  const absl::Time until = std::min(deadline, absl::Now() + budget_->options.load_timeout);
  if (budget_->waiters->Add(name, version, until, std::move(done))) {
    absl::MutexLock lock(&budget_->mu);
    budget_->queue.push_back(name);
  }
}

void ModelManager::LoadQueued() {
  for (;;) {
    std::string name;
    {
      absl::MutexLock lock(&budget_->mu);
      budget_->mu.Await(absl::Condition(
          +[](Budget* budget) ABSL_EXCLUSIVE_LOCKS_REQUIRED(budget->mu) {
            return budget->stop || !budget->queue.empty();
          },
          budget_.get()));
      if (budget_->stop) return;
      name = std::move(budget_->queue.front());
      budget_->queue.pop_front();
    }
    absl::Status loaded;
    bool busy_blocked = false;
    {
      absl::MutexLock reload(&reload_mu_);
      loaded = LoadWithinBudget(name, "on_demand", &busy_blocked);
    }
    if (busy_blocked && budget_->waiters->Waiting(name) > 0) {
      // The models that would make room are busy or freshly loaded: try again in a moment
      // (the other queued loads first), while anyone still waits for this one.
      budget_->waiters->Note(name, std::string(loaded.message()));
      absl::MutexLock lock(&budget_->mu);
      budget_->queue.push_back(name);
      struct Wake {
        Budget* budget;
        size_t queued;
      } wake{budget_.get(), budget_->queue.size()};
      budget_->mu.AwaitWithTimeout(
          absl::Condition(
              +[](Wake* at) ABSL_EXCLUSIVE_LOCKS_REQUIRED(at->budget->mu) {
                return at->budget->stop || at->budget->queue.size() > at->queued;
              },
              &wake),
          absl::Milliseconds(5));
      continue;
    }
    {
      absl::MutexLock lock(&budget_->mu);
      if (loaded.ok() || absl::IsResourceExhausted(loaded)) {
        // A refusal by the budget is no failed load: the next request plans again.
        budget_->failures.erase(name);
      } else {
        Budget::Failure& failure = budget_->failures[name];
        failure.backoff = failure.backoff == absl::ZeroDuration()
                              ? budget_->options.min_retry
                              : std::min(failure.backoff * 2, budget_->options.max_retry);
        failure.retry_after = absl::Now() + failure.backoff;
        failure.status = loaded;
      }
    }
    budget_->waiters->ResolveAll(
        name, [this, &name, &loaded](std::optional<int64_t> version) -> absl::StatusOr<ModelHandle> {
          if (!loaded.ok()) return loaded;
          return Get(name, version);
        });
  }
}

absl::Status ModelManager::LoadWithinBudget(const std::string& name, const char* cause,
                                            bool* busy_blocked) {
  std::vector<std::string> evict;
  {
    // Released before the evictions: this map holds the victims' versions too.
    const std::shared_ptr<const Snapshot> models = snapshot();
    auto it = models->find(name);
    if (it == models->end()) {
      return absl::NotFoundError(absl::StrCat("unknown model '", name, "'"));
    }
    if (!it->second.status.loads_on_demand) return absl::OkStatus();  // loaded meanwhile
    absl::MutexLock lock(&budget_->mu);
    // The least-recently-used order: each loaded model's last request.
    for (const auto& [other, entry] : *models) {
      absl::Time last = absl::InfinitePast();
      for (const auto& [version, handle] : entry.ready) last = std::max(last, handle->last_used());
      if (last != absl::InfinitePast()) budget_->residency.Touch(other, last);
    }
    auto busy = [&models](const std::string& other) {
      auto found = models->find(other);
      if (found == models->end()) return false;
      for (const auto& [version, handle] : found->second.ready) {
        if (handle->in_flight() > 0) return true;
      }
      return false;
    };
    absl::StatusOr<std::vector<std::string>> plan =
        budget_->residency.PlanLoad(name, absl::Now(), busy);
    if (!plan.ok()) {
      // Only busy models, or ones under their minimum residency, stand in the way: both go
      // in moments (their requests end, their residency runs out), so the caller waits.
      if (busy_blocked != nullptr) {
        *busy_blocked =
            budget_->residency.PlanLoad(name, absl::Now() + budget_->options.min_residency,
                                        nullptr)
                .ok();
      }
      if (busy_blocked == nullptr || !*busy_blocked) {
        spdlog::warn("model '{}' cannot load: {}", name, plan.status().message());
      }
      return plan.status();
    }
    evict = *std::move(plan);
  }
  // Measured once the evicted versions are gone: their memory, handed back meanwhile, would
  // otherwise cancel out the new model's.
  std::vector<std::shared_ptr<absl::Notification>> freed;
  for (const std::string& victim : evict) {
    for (auto& notification : Evict(victim)) freed.push_back(std::move(notification));
  }
  for (const auto& notification : freed) {
    if (!notification->WaitForNotificationWithTimeout(absl::Seconds(5))) {
      spdlog::warn("model '{}': an evicted version is still draining; measuring anyway", name);
      break;
    }
  }
  const int64_t before = ResidentBytes();
  const ModelDir dir{name, repository_ / name};
  backend::Backend* backend = nullptr;
  ModelEntry next = PlanModel(dir, &backend);
  const int64_t estimate = EstimateBytes(dir, next);
  if (backend != nullptr) {
    spdlog::info("model '{}': loading on demand", name);
    LoadVersions(dir, *backend, next);
  }
  if (next.ready.empty()) {
    const std::string reason = next.status.UnavailableReason();
    Replace(name, OnDemand(std::move(next),
                           absl::StrCat("its load on demand failed (retried on a later "
                                        "request): ", reason)));
    return absl::UnavailableError(
        absl::StrCat("model '", name, "' could not be loaded on demand: ", reason));
  }
  Replace(name, std::move(next));
  const int64_t size = MeasuredBytes(name, before, estimate);
  absl::MutexLock lock(&budget_->mu);
  budget_->residency.Loaded(name, size, absl::Now());
  budget_->SetUsed(budget_->residency.used());
  budget_->CountLoad(name, cause);
  spdlog::info("model '{}' loaded ({}): {} ({} of {} used)", name, cause, common::FormatBytes(size),
               common::FormatBytes(budget_->residency.used()),
               common::FormatBytes(budget_->options.budget_bytes));
  return absl::OkStatus();
}

std::vector<std::shared_ptr<absl::Notification>> ModelManager::Evict(const std::string& name) {
  std::optional<ModelEntry> current;
  {
    const std::shared_ptr<const Snapshot> models = snapshot();
    if (auto it = models->find(name); it != models->end()) current = it->second;
  }
  if (!current.has_value()) return {};
  std::vector<std::shared_ptr<absl::Notification>> freed;
  for (const auto& [version, handle] : current->ready) freed.push_back(handle->freed());
  spdlog::info("model '{}' evicted to make room in --model-memory-budget", name);
  // Its versions drain and free their memory once the old map is released (in Replace).
  Replace(name, OnDemand(*std::move(current),
                         absl::StrCat("evicted at ", absl::FormatTime("%H:%M:%S", absl::Now(),
                                                                      absl::UTCTimeZone()),
                                      " UTC to make room in --model-memory-budget; it loads "
                                      "on its next request")));
  absl::MutexLock lock(&budget_->mu);
  budget_->residency.Unloaded(name);
  budget_->SetUsed(budget_->residency.used());
  budget_->CountEviction(name);
  return freed;
}

void ModelManager::Publish(std::shared_ptr<const Snapshot> next) {
  std::shared_ptr<const Snapshot> previous;
  {
    absl::MutexLock lock(&mu_);
    previous = std::exchange(snapshot_, std::move(next));
  }
  // Released outside the lock: the last reference to a retired version drains it, and its
  // requests' callbacks may call Get().
  previous.reset();
  if (on_served_change_) on_served_change_();
}

bool ModelManager::Loading() const {
  if (!loaded_once_.load()) return true;
  const std::shared_ptr<const Snapshot> models = snapshot();
  for (const auto& [name, entry] : *models) {
    for (const core::VersionStatus& v : entry.status.versions) {
      if (v.state == core::VersionState::kLoading) return true;
    }
  }
  return false;
}

std::optional<std::string> ModelManager::MissingTensorFlow(
    const std::filesystem::path& version_dir) const {
  std::error_code error;
  const bool savedmodel =
      std::filesystem::exists(version_dir / "saved_model.pb", error) ||
      std::filesystem::exists(version_dir / "model.savedmodel" / "saved_model.pb", error);
  inference::ModelConfig tensorflow;
  tensorflow.set_platform(kTensorFlowPlatform);
  if (!savedmodel || backends_.Find(tensorflow).ok()) return std::nullopt;
  return absl::StrCat(version_dir.string(), " holds a TensorFlow SavedModel; ", kNoTensorFlow);
}

ModelManager::ModelEntry ModelManager::PlanModel(const ModelDir& dir,
                                                 backend::Backend** backend_out) const {
  ModelEntry entry;
  entry.status.name = dir.name;
  auto fail = [&](std::string reason) {
    reason = WithExportHint(std::move(reason), dir.path);
    spdlog::error("model '{}' failed to load: {}", dir.name, reason);
    entry.status.reason = std::move(reason);
    return std::move(entry);
  };
  const std::vector<int64_t> on_disk = ListVersions(dir.path);
  ReadDiskState(dir.path, entry);
  std::string source = (dir.path / core::kConfigFileName).string();
  absl::StatusOr<inference::ModelConfig> proto = core::ReadModelConfigProto(dir.path);
  if (absl::IsNotFound(proto.status()) && !on_disk.empty()) {
    // No config.pbtxt: a backend may still recognise the newest version (a TensorFlow Serving
    // model base path) and complete the config from the model itself.
    const std::filesystem::path newest = dir.path / std::to_string(on_disk.back());
    if (std::optional<std::string> platform = backends_.PlatformWithoutConfig(newest)) {
      proto = inference::ModelConfig();
      proto->set_platform(*platform);
      source = absl::StrCat(dir.path.string(), " (no ", core::kConfigFileName, ")");
    } else if (std::optional<std::string> lacking = MissingTensorFlow(newest)) {
      return fail(*lacking);
    } else {
      std::error_code error;
      const bool torchscript = std::filesystem::exists(newest / "model.pt", error);
      return fail(absl::StrCat(
          proto.status().message(), ", and nothing in ", newest.string(),
          " is a model modeld serves without one (model.onnx, model.pt2 or a SavedModel's "
          "saved_model.pb)",
          torchscript ? absl::StrCat("; a TorchScript model.pt needs a ", core::kConfigFileName,
                                     " (README, \"The model repository\")")
                      : ""));
    }
  }
  if (!proto.ok()) return fail(std::string(proto.status().message()));
  absl::StatusOr<backend::Backend*> backend = backends_.Find(*proto);
  if (!backend.ok()) {
    if (proto->platform() == kTensorFlowPlatform || proto->backend() == "tensorflow") {
      return fail(absl::StrCat(backend.status().message(), "; ", kNoTensorFlow));
    }
    return fail(std::string(backend.status().message()));
  }
  if (absl::Status policy = core::ValidateVersionPolicy(source, *proto); !policy.ok()) {
    return fail(std::string(policy.message()));
  }

  const std::vector<int64_t> versions = SelectVersions(proto->version_policy(), on_disk);
  if (versions.empty()) {
    return fail(
        absl::StrCat("no version folder (a positive number, such as 1/) in ", dir.path.string()));
  }
  // From here on the versions are known: a failure is reported on each of them too, as
  // TensorFlow Serving's status reports a version that cannot load.
  auto fail_versions = [&](std::string reason) {
    for (int64_t version : versions) {
      entry.status.versions.push_back({version, core::VersionState::kUnavailable, reason, ""});
    }
    return fail(std::move(reason));
  };
  const std::filesystem::path newest = dir.path / std::to_string(versions.back());
  if (absl::Status completed = (*backend)->CompleteConfig(newest, *proto); !completed.ok()) {
    return fail_versions(absl::StrCat(source, ": ", completed.message()));
  }
  absl::StatusOr<core::ModelConfig> config =
      core::ModelConfigFromProto(*std::move(proto), source, dir.name);
  if (!config.ok()) return fail_versions(std::string(config.status().message()));
  entry.status.config = std::make_shared<const core::ModelConfig>(*std::move(config));
  for (int64_t version : versions) {
    entry.status.versions.push_back({version, core::VersionState::kLoading, "", ""});
  }
  *backend_out = *backend;
  return entry;
}

void ModelManager::LoadVersions(const ModelDir& dir, backend::Backend& backend, ModelEntry& entry,
                                const ModelEntry* previous, bool retry_failed) const {
  const bool same_config = previous != nullptr && previous->config_text == entry.config_text;
  for (core::VersionStatus& status : entry.status.versions) {
    if (cancelled_.load()) {
      status.state = core::VersionState::kUnavailable;
      status.reason = "modeld is shutting down";
      continue;
    }
    // The copy of this version that serves now, and why its last reload failed, if it did.
    const ModelHandle* served = nullptr;
    std::string failed_before;
    if (previous != nullptr) {
      if (auto it = previous->ready.find(status.version); it != previous->ready.end()) {
        served = &it->second;
      }
      for (const core::VersionStatus& was : previous->status.versions) {
        if (was.version == status.version) failed_before = was.reload_error;
      }
    }
    if (same_config && served != nullptr && !(retry_failed && !failed_before.empty())) {
      auto was = previous->disk.find(status.version);
      if (was != previous->disk.end() && was->second == entry.disk[status.version]) {
        entry.ready[status.version] = *served;
        status.state = core::VersionState::kReady;
        status.reload_error = failed_before;  // the same folder fails the same way
        continue;
      }
    }
    absl::StatusOr<ModelHandle> handle =
        LoadServedVersion({entry.status.config, &backend, dir.path, status.version},
                          {make_scheduler_, registry_, checkpoint_root_});
    if (handle.ok()) {
      entry.ready[status.version] = *std::move(handle);
      status.state = core::VersionState::kReady;
      spdlog::info("model '{}' version {} is ready ({} instance{})", dir.name, status.version,
                   entry.status.config->instance_count,
                   entry.status.config->instance_count == 1 ? "" : "s");
    } else if (served != nullptr) {
      // A bad deploy of a serving version: its loaded copy keeps answering for it, so no
      // request moves to another version. The folder's new state is remembered (entry.disk),
      // so the same failure is retried only once the folder changes again.
      entry.ready[status.version] = *served;
      status.state = core::VersionState::kReady;
      status.reload_error = std::string(handle.status().message());
      spdlog::error(
          "model '{}' version {} could not be reloaded; the copy loaded before keeps "
          "serving it: {}",
          dir.name, status.version, status.reload_error);
    } else {
      status.state = core::VersionState::kUnavailable;
      status.reason = WithExportHint(std::string(handle.status().message()), dir.path,
                                     dir.path / std::to_string(status.version));
      spdlog::error("model '{}' version {} failed to load: {}", dir.name, status.version,
                    status.reason);
    }
  }
}

std::shared_ptr<const ModelManager::Snapshot> ModelManager::snapshot() const {
  absl::ReaderMutexLock lock(&mu_);
  return snapshot_;
}

absl::StatusOr<ModelHandle> ModelManager::Get(absl::string_view name,
                                              std::optional<int64_t> version) const {
  const std::shared_ptr<const Snapshot> models = snapshot();
  auto it = models->find(name);
  if (it == models->end()) {
    return absl::NotFoundError(absl::StrCat("unknown model '", name, "'"));
  }
  const ModelEntry& entry = it->second;
  if (entry.status.loads_on_demand) {
    absl::Status status = absl::UnavailableError(absl::StrCat(
        "model '", name, "' is not loaded: ", entry.status.UnavailableReason()));
    status.SetPayload(kLoadsOnDemandUrl, absl::Cord("1"));
    return status;
  }
  if (!version.has_value()) {
    if (entry.ready.empty()) {
      return absl::UnavailableError(
          absl::StrCat("model '", name, "' is not ready: ", entry.status.UnavailableReason()));
    }
    return entry.ready.rbegin()->second;
  }
  if (auto ready = entry.ready.find(*version); ready != entry.ready.end()) return ready->second;
  for (const core::VersionStatus& v : entry.status.versions) {
    if (v.version == *version) {
      return absl::UnavailableError(
          absl::StrCat("version ", *version, " of model '", name, "' is not ready: ", v.reason));
    }
  }
  std::vector<int64_t> ready_versions;
  for (const auto& [v, unused] : entry.ready) ready_versions.push_back(v);
  return absl::NotFoundError(
      absl::StrCat("model '", name, "' has no version ", *version, " (ready versions: ",
                   ready_versions.empty() ? "none" : absl::StrJoin(ready_versions, ", "), ")"));
}

absl::StatusOr<std::shared_ptr<const core::ModelConfig>> ModelManager::Config(
    absl::string_view name, std::optional<int64_t> version) const {
  absl::StatusOr<ModelHandle> handle = Get(name, version);
  if (handle.ok()) {
    // The aliasing constructor shares the handle's ownership, so the config lives on with it.
    return std::shared_ptr<const core::ModelConfig>(*handle, &(*handle)->config());
  }
  if (!LoadsOnDemand(handle.status())) return handle.status();
  ASSIGN_OR_RETURN(core::ModelStatus status, Status(name));
  if (version.has_value() &&
      std::none_of(status.versions.begin(), status.versions.end(),
                   [&](const core::VersionStatus& v) { return v.version == *version; })) {
    return absl::NotFoundError(absl::StrCat("model '", name, "' has no version ", *version));
  }
  if (status.config == nullptr) return handle.status();
  return status.config;
}

absl::StatusOr<core::ModelStatus> ModelManager::Status(absl::string_view name) const {
  const std::shared_ptr<const Snapshot> models = snapshot();
  auto it = models->find(name);
  if (it == models->end()) {
    return absl::NotFoundError(absl::StrCat("unknown model '", name, "'"));
  }
  return it->second.status;
}

std::vector<std::shared_ptr<const core::ModelConfig>> ModelManager::ServedConfigs() const {
  const std::shared_ptr<const Snapshot> models = snapshot();
  std::vector<std::shared_ptr<const core::ModelConfig>> configs;
  for (const auto& [name, entry] : *models) {
    for (const auto& [version, handle] : entry.ready) configs.push_back(handle->config_ptr());
  }
  return configs;
}

std::vector<core::ModelStatus> ModelManager::StatusAll() const {
  const std::shared_ptr<const Snapshot> models = snapshot();
  std::vector<core::ModelStatus> all;
  for (const auto& [name, entry] : *models) all.push_back(entry.status);
  std::sort(all.begin(), all.end(),
            [](const core::ModelStatus& a, const core::ModelStatus& b) { return a.name < b.name; });
  return all;
}

void ModelManager::Replace(const std::string& name, std::optional<ModelEntry> entry) {
  auto next = std::make_shared<Snapshot>(*snapshot());
  if (entry.has_value()) {
    (*next)[name] = *std::move(entry);
  } else {
    next->erase(name);
  }
  Publish(std::move(next));
}

absl::Status ModelManager::Reconcile(const ModelDir& dir, bool force) {
  std::optional<ModelEntry> current;
  {
    const std::shared_ptr<const Snapshot> models = snapshot();
    if (auto it = models->find(dir.name); it != models->end()) current = it->second;
  }
  if (current.has_value() && !force) {
    ModelEntry now;
    ReadDiskState(dir.path, now);
    if (current->config_text == now.config_text && current->disk == now.disk) {
      return absl::OkStatus();  // nothing changed since it was planned
    }
  }
  backend::Backend* backend = nullptr;
  ModelEntry next = PlanModel(dir, &backend);
  if (budget_ != nullptr && !force && (!current.has_value() || current->status.loads_on_demand)) {
    // Under a budget a new or unloaded model is only planned: it loads on its first request,
    // from the folder as it is then.
    if (backend != nullptr) {
      // New files: their size, not the old copy's measurement, plans the next load.
      absl::MutexLock lock(&budget_->mu);
      budget_->residency.Forget(dir.name);
      budget_->residency.SetEstimate(dir.name, EstimateBytes(dir, next));
      budget_->residency.SetPinned(dir.name, Pinned(*next.status.config));
      budget_->failures.erase(dir.name);
    }
    spdlog::info("model '{}': {}; it loads on its first request", dir.name,
                 current.has_value() ? "changed" : "new model");
    Replace(dir.name, backend != nullptr ? Unloaded(std::move(next), kUnloadedReason)
                                         : std::move(next));
    return absl::OkStatus();
  }
  const bool serving = current.has_value() && !current->ready.empty();
  if (backend != nullptr) {
    spdlog::info("model '{}': loading {}", dir.name, current.has_value() ? "changes" : "new model");
    LoadVersions(dir, *backend, next, current.has_value() ? &*current : nullptr,
                 /*retry_failed=*/force);
  }
  if (next.ready.empty() && serving) {
    // Keep what serves; remember the folder as it is, so the same failure is not retried on
    // every rescan (a change to the folder retries it).
    std::string reason = next.status.UnavailableReason();
    spdlog::error(
        "model '{}' could not be reloaded, versions {} keep serving: {}", dir.name,
        absl::StrJoin(current->ready, ", ",
                      [](std::string* out, const auto& v) { absl::StrAppend(out, v.first); }),
        reason);
    current->status.reload_error = reason;
    current->config_text = next.config_text;
    current->disk = next.disk;
    Replace(dir.name, *std::move(current));
    return absl::UnavailableError(absl::StrCat("model '", dir.name, "' could not be reloaded (",
                                               reason, "); its loaded versions keep serving"));
  }
  if (current.has_value()) {
    for (const auto& [version, handle] : current->ready) {
      if (!next.ready.contains(version) || next.ready[version] != handle) {
        spdlog::info("model '{}' version {} retired; it drains as its requests end", dir.name,
                     version);
      }
    }
  }
  const bool ready = !next.ready.empty();
  const std::string reason = next.status.UnavailableReason();
  const std::string reload_errors = next.status.ReloadErrors();
  if (budget_ != nullptr && ready && serving) {
    // A reload of a loaded model: the new copy's files, or the old copy's measurement if
    // larger, until its next load measures it (the old copy drains meanwhile, so this load's
    // growth is no measure).
    const int64_t estimate = EstimateBytes(dir, next);
    absl::MutexLock lock(&budget_->mu);
    const int64_t size = std::max(estimate, budget_->residency.Size(dir.name).value_or(0));
    budget_->residency.Forget(dir.name);
    budget_->residency.SetEstimate(dir.name, estimate);
    budget_->residency.SetPinned(dir.name, Pinned(*next.status.config));
    budget_->residency.Loaded(dir.name, size, absl::Now());
    budget_->SetUsed(budget_->residency.used());
    budget_->CountLoad(dir.name, "reload");
  }
  Replace(dir.name, std::move(next));
  if (!ready) {
    return absl::UnavailableError(
        absl::StrCat("model '", dir.name, "' could not be loaded: ", reason));
  }
  if (!reload_errors.empty()) {
    return absl::UnavailableError(absl::StrCat("model '", dir.name, "' could not be reloaded (",
                                               reload_errors,
                                               "); the copies loaded before keep serving"));
  }
  return absl::OkStatus();
}

void ModelManager::Rescan() {
  absl::MutexLock reload(&reload_mu_);
  absl::StatusOr<std::vector<ModelDir>> dirs = ListModelDirs(repository_);
  if (!dirs.ok()) {
    spdlog::error("rescan: {}", dirs.status().message());
    return;
  }
  NoteRepositoryListed(*dirs);
  absl::flat_hash_set<std::string> on_disk;
  for (const ModelDir& dir : *dirs) {
    on_disk.insert(dir.name);
    (void)Reconcile(dir, /*force=*/false);  // failures are logged and kept in the status
  }
  std::vector<std::string> gone;
  const std::shared_ptr<const Snapshot> served = snapshot();
  for (const auto& [name, entry] : *served) {
    if (!on_disk.contains(name)) gone.push_back(name);
  }
  for (const std::string& name : gone) {
    spdlog::info("model '{}': its folder is gone; unloading it", name);
    Replace(name, std::nullopt);
    if (budget_ != nullptr) {
      absl::MutexLock lock(&budget_->mu);
      budget_->residency.Forget(name);
      budget_->SetUsed(budget_->residency.used());
    }
  }
}

absl::Status ModelManager::LoadModel(absl::string_view name) {
  absl::MutexLock reload(&reload_mu_);
  const std::filesystem::path path = repository_ / std::string(name);
  std::error_code error;
  if (name.empty() || name.front() == '.' || name.find('/') != absl::string_view::npos ||
      !std::filesystem::is_directory(path, error)) {
    return absl::NotFoundError(
        absl::StrCat("model '", name, "' has no folder in the repository ", repository_.string()));
  }
  const ModelDir dir{std::string(name), path};
  if (budget_ != nullptr) {
    std::optional<ModelEntry> current;
    {
      const std::shared_ptr<const Snapshot> models = snapshot();
      if (auto it = models->find(dir.name); it != models->end()) current = it->second;
    }
    if (!current.has_value() || current->status.loads_on_demand) {
      // Planned from the folder as it is now, then loaded within the budget like a request's.
      RETURN_IF_ERROR(Reconcile(dir, /*force=*/false));
      ModelEntry planned = snapshot()->at(dir.name);
      if (!planned.status.loads_on_demand) {
        return absl::UnavailableError(absl::StrCat("model '", name, "' could not be loaded: ",
                                                   planned.status.UnavailableReason()));
      }
      RETURN_IF_ERROR(LoadWithinBudget(dir.name, "explicit", nullptr));
      absl::MutexLock lock(&budget_->mu);
      budget_->failures.erase(dir.name);
      return absl::OkStatus();
    }
  }
  return Reconcile(dir, /*force=*/true);
}

absl::Status ModelManager::UnloadModel(absl::string_view name) {
  absl::MutexLock reload(&reload_mu_);
  if (!snapshot()->contains(name)) {
    return absl::NotFoundError(absl::StrCat("model '", name, "' is not loaded"));
  }
  spdlog::info("model '{}' unloaded; its versions drain as their requests end", name);
  Replace(std::string(name), std::nullopt);
  if (budget_ != nullptr) {
    absl::MutexLock lock(&budget_->mu);
    budget_->residency.Unloaded(std::string(name));
    budget_->SetUsed(budget_->residency.used());
  }
  return absl::OkStatus();
}

std::vector<core::IndexEntry> ModelManager::Index() const {
  const std::shared_ptr<const Snapshot> models = snapshot();
  std::vector<core::IndexEntry> index;
  absl::StatusOr<std::vector<ModelDir>> dirs = ListModelDirs(repository_);
  std::set<std::string> names;  // the folders and the served models, sorted
  if (dirs.ok()) {
    for (const ModelDir& dir : *dirs) names.insert(dir.name);
  }
  for (const auto& [name, entry] : *models) names.insert(name);
  for (const std::string& name : names) {
    auto it = models->find(name);
    if (it == models->end()) {
      index.push_back({name, "", core::VersionState::kUnavailable, "unloaded"});
      continue;
    }
    const core::ModelStatus& status = it->second.status;
    if (status.versions.empty()) {
      index.push_back({name, "", core::VersionState::kUnavailable, status.reason});
    }
    for (const core::VersionStatus& version : status.versions) {
      index.push_back({name, absl::StrCat(version.version), version.state,
                       version.state != core::VersionState::kReady ? version.reason
                       : !version.reload_error.empty()             ? version.reload_error
                                                                   : status.reload_error});
    }
  }
  return index;
}

std::vector<core::StuckRun> ModelManager::StuckRuns(absl::Time now, absl::Duration limit) const {
  std::vector<core::StuckRun> stuck;
  const std::shared_ptr<const Snapshot> models = snapshot();
  for (const auto& [name, entry] : *models) {
    for (const auto& [version, handle] : entry.ready) {
      if (handle->Stuck(now, limit)) stuck.push_back({name, version, handle->OldestRunStart()});
    }
  }
  return stuck;
}

void ModelManager::DrainAll() {
  const std::shared_ptr<const Snapshot> models = snapshot();
  for (const auto& [name, entry] : *models) {
    for (const auto& [version, handle] : entry.ready) {
      handle->scheduler().Drain();
      if (handle->trainer() != nullptr) handle->trainer()->Drain();
    }
  }
}

}  // namespace modeld::repository
