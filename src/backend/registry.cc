#include "backend/registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace modeld::backend {
namespace {

std::string Keys(const absl::flat_hash_map<std::string, Backend*>& map) {
  std::vector<std::string> keys;
  for (const auto& [key, unused] : map) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  return absl::StrJoin(keys, ", ");
}

}  // namespace

void BackendRegistry::Register(const std::string& backend_name,
                               const std::vector<std::string>& platforms,
                               std::unique_ptr<Backend> backend) {
  Backend* raw = backend.get();
  backends_.push_back({std::move(backend), platforms.empty() ? "" : platforms.front()});
  by_backend_name_[backend_name] = raw;
  for (const std::string& platform : platforms) by_platform_[platform] = raw;
}

absl::StatusOr<Backend*> BackendRegistry::Find(const core::ModelConfig& config) const {
  return Find(config.backend, config.platform);
}

absl::StatusOr<Backend*> BackendRegistry::Find(const inference::ModelConfig& config) const {
  return Find(config.backend(), config.platform());
}

absl::StatusOr<Backend*> BackendRegistry::Find(const std::string& backend_name,
                                               const std::string& platform) const {
  if (!backend_name.empty()) {
    auto it = by_backend_name_.find(backend_name);
    if (it != by_backend_name_.end()) return it->second;
    return absl::InvalidArgumentError(absl::StrCat(
        "backend '", backend_name, "' is not available; modeld has: ", Keys(by_backend_name_)));
  }
  auto it = by_platform_.find(platform);
  if (it != by_platform_.end()) return it->second;
  return absl::InvalidArgumentError(
      absl::StrCat("platform '", platform, "' is not available; modeld has: ", Keys(by_platform_)));
}

std::optional<std::string> BackendRegistry::PlatformWithoutConfig(
    const std::filesystem::path& version_dir) const {
  for (const Entry& entry : backends_) {
    if (!entry.platform.empty() && entry.backend->ServesWithoutConfig(version_dir)) {
      return entry.platform;
    }
  }
  return std::nullopt;
}

}  // namespace modeld::backend
