#include "repository/scan.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace modeld::repository {
namespace {

bool IsVersionName(const std::string& name, int64_t* version) {
  if (name.empty() || name[0] == '0') return false;
  if (!std::all_of(name.begin(), name.end(), [](char c) { return absl::ascii_isdigit(c); })) {
    return false;
  }
  return absl::SimpleAtoi(name, version);
}

}  // namespace

absl::StatusOr<std::vector<ModelDir>> ListModelDirs(const std::filesystem::path& repository) {
  std::error_code error;
  std::filesystem::directory_iterator it(repository, error);
  if (error) {
    return absl::NotFoundError(absl::StrCat("model repository '", repository.string(),
                                            "' cannot be read: ", error.message()));
  }
  std::vector<ModelDir> models;
  for (const auto& entry : it) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.' || !entry.is_directory(error)) continue;
    models.push_back({name, entry.path()});
  }
  std::sort(models.begin(), models.end(),
            [](const ModelDir& a, const ModelDir& b) { return a.name < b.name; });
  return models;
}

std::vector<int64_t> ListVersions(const std::filesystem::path& model_dir) {
  std::vector<int64_t> versions;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(model_dir, error)) {
    int64_t version = 0;
    if (entry.is_directory(error) && IsVersionName(entry.path().filename().string(), &version)) {
      versions.push_back(version);
    }
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

std::string Fingerprint(const std::filesystem::path& dir) {
  std::vector<std::string> files;
  std::error_code error;
  for (std::filesystem::recursive_directory_iterator it(dir, error), end; !error && it != end;
       it.increment(error)) {
    if (!it->is_regular_file(error)) continue;
    const auto size = it->file_size(error);
    const auto modified = it->last_write_time(error).time_since_epoch().count();
    files.push_back(
        absl::StrCat(it->path().lexically_relative(dir).string(), ":", size, ":", modified));
  }
  std::sort(files.begin(), files.end());
  return absl::StrJoin(files, "\n");
}

std::string ReadFileOrEmpty(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return "";
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

}  // namespace modeld::repository
