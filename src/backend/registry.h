// BackendRegistry: which Backend serves a model, chosen from its config's backend or platform.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "backend/backend.h"

namespace modeld::backend {

// Filled once at start, then read-only: Find() is thread-safe after registration ends.
class BackendRegistry {
 public:
  // Registers `backend` under its backend name (config field `backend`) and the platform
  // names (config field `platform`) it serves.
  void Register(const std::string& backend_name, const std::vector<std::string>& platforms,
                std::unique_ptr<Backend> backend);

  // The backend named by config.backend if set, else the one serving config.platform.
  // INVALID_ARGUMENT naming the unknown value and listing what is available.
  absl::StatusOr<Backend*> Find(const core::ModelConfig& config) const;
  absl::StatusOr<Backend*> Find(const inference::ModelConfig& config) const;

  // The platform of the first registered backend that serves `version_dir` without a
  // config.pbtxt (Backend::ServesWithoutConfig), or nullopt.
  std::optional<std::string> PlatformWithoutConfig(const std::filesystem::path& version_dir) const;

 private:
  absl::StatusOr<Backend*> Find(const std::string& backend_name, const std::string& platform) const;

  struct Entry {
    std::unique_ptr<Backend> backend;
    std::string platform;  // the first platform it was registered with; may be empty
  };
  std::vector<Entry> backends_;
  absl::flat_hash_map<std::string, Backend*> by_backend_name_;
  absl::flat_hash_map<std::string, Backend*> by_platform_;
};

}  // namespace modeld::backend
