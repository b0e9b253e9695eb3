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
  backends_.push_back(std::move(backend));
  by_backend_name_[backend_name] = raw;
  for (const std::string& platform : platforms) by_platform_[platform] = raw;
}

absl::StatusOr<Backend*> BackendRegistry::Find(const core::ModelConfig& config) const {
  if (!config.backend.empty()) {
    auto it = by_backend_name_.find(config.backend);
    if (it != by_backend_name_.end()) return it->second;
    return absl::InvalidArgumentError(absl::StrCat(
        "backend '", config.backend, "' is not available; modeld has: ", Keys(by_backend_name_)));
  }
  auto it = by_platform_.find(config.platform);
  if (it != by_platform_.end()) return it->second;
  return absl::InvalidArgumentError(absl::StrCat(
      "platform '", config.platform, "' is not available; modeld has: ", Keys(by_platform_)));
}

}  // namespace modeld::backend
