#include "repository/model_manager.h"

#include <algorithm>
#include <memory>
#include <set>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "repository/export_hints.h"
#include "repository/version_policy.h"

namespace modeld::repository {

namespace {

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

ModelManager::ModelManager(std::filesystem::path repository,
                           const backend::BackendRegistry& backends,
                           batching::SchedulerFactory make_scheduler, metrics::Registry* registry)
    : repository_(std::move(repository)),
      backends_(backends),
      make_scheduler_(std::move(make_scheduler)),
      registry_(registry),
      snapshot_(std::make_shared<const Snapshot>()) {}

ModelManager::~ModelManager() { DrainAll(); }

absl::Status ModelManager::LoadAll() {
  ASSIGN_OR_RETURN(std::vector<ModelDir> dirs, ListModelDirs(repository_));
  if (dirs.empty()) spdlog::warn("model repository '{}' holds no models", repository_.string());
  // First every model with its versions LOADING, so readiness is honest while they load...
  auto planned = std::make_shared<Snapshot>();
  std::vector<backend::Backend*> backends;
  for (const ModelDir& dir : dirs) {
    backend::Backend* backend = nullptr;
    (*planned)[dir.name] = PlanModel(dir, &backend);
    backends.push_back(backend);
  }
  Publish(planned);
  // ...then each model's versions, published as each model finishes.
  for (size_t i = 0; i < dirs.size(); ++i) {
    if (backends[i] == nullptr) continue;  // failed while planning; already reported
    ModelEntry entry = (*planned)[dirs[i].name];
    LoadVersions(dirs[i], *backends[i], entry);
    auto next = std::make_shared<Snapshot>(*snapshot());
    (*next)[dirs[i].name] = std::move(entry);
    Publish(std::move(next));
  }
  loaded_once_.store(true);
  return absl::OkStatus();
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
  if (!backend.ok()) return fail(std::string(backend.status().message()));
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
  return Reconcile({std::string(name), path}, /*force=*/true);
}

absl::Status ModelManager::UnloadModel(absl::string_view name) {
  absl::MutexLock reload(&reload_mu_);
  if (!snapshot()->contains(name)) {
    return absl::NotFoundError(absl::StrCat("model '", name, "' is not loaded"));
  }
  spdlog::info("model '{}' unloaded; its versions drain as their requests end", name);
  Replace(std::string(name), std::nullopt);
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
