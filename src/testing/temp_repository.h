// TempRepository: a model repository in a fresh temporary folder, removed at destruction.
// Test-only.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

namespace modeld::testing {

class TempRepository {
 public:
  TempRepository();
  ~TempRepository();
  TempRepository(const TempRepository&) = delete;
  TempRepository& operator=(const TempRepository&) = delete;

  const std::filesystem::path& path() const { return path_; }

  // Writes <name>/config.pbtxt and creates an (empty) folder for each version.
  void AddModel(std::string_view name, std::string_view config_text,
                const std::vector<int64_t>& versions = {1}) const;

  // Writes `contents` to <repository>/<relative>, creating folders as needed.
  void WriteFile(const std::filesystem::path& relative, std::string_view contents) const;

 private:
  std::filesystem::path path_;
};

}  // namespace modeld::testing
