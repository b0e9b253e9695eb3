// Reading a model repository's layout: <repository>/<model>/config.pbtxt + <version>/ folders.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace modeld::repository {

struct ModelDir {
  std::string name;
  std::filesystem::path path;
};

// Every sub-folder of `repository` (hidden ones skipped), sorted by name. NOT_FOUND when the
// repository is not a readable folder.
absl::StatusOr<std::vector<ModelDir>> ListModelDirs(const std::filesystem::path& repository);

// The version numbers of a model folder, ascending: sub-folders named by a positive decimal
// number without leading zeros (Triton's rule); other entries are ignored.
std::vector<int64_t> ListVersions(const std::filesystem::path& model_dir);

// What a rescan compares to see whether a folder changed: every regular file below `dir`
// (relative path, size, modification time), sorted. Cheap: nothing is read but metadata.
std::string Fingerprint(const std::filesystem::path& dir);

// The contents of a small file, or "" when it cannot be read (a config.pbtxt that is absent).
std::string ReadFileOrEmpty(const std::filesystem::path& path);

}  // namespace modeld::repository
