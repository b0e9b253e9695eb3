#include "testing/temp_repository.h"

#include <stdlib.h>

#include <fstream>
#include <stdexcept>
#include <string>

namespace modeld::testing {

TempRepository::TempRepository() {
  std::string pattern = (std::filesystem::temp_directory_path() / "modeld-repo-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempRepository::~TempRepository() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

void TempRepository::AddModel(std::string_view name, std::string_view config_text,
                              const std::vector<int64_t>& versions) const {
  WriteFile(std::filesystem::path(name) / "config.pbtxt", config_text);
  for (int64_t version : versions) {
    std::filesystem::create_directories(path_ / name / std::to_string(version));
  }
}

void TempRepository::WriteFile(const std::filesystem::path& relative,
                               std::string_view contents) const {
  const std::filesystem::path full = path_ / relative;
  std::filesystem::create_directories(full.parent_path());
  std::ofstream(full, std::ios::binary) << contents;
}

}  // namespace modeld::testing
