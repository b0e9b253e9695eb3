#include "backend/model_file.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace modeld::backend {

absl::StatusOr<std::filesystem::path> ModelFile(const inference::ModelConfig& config,
                                                const std::filesystem::path& version_dir,
                                                absl::string_view default_name) {
  const std::string& filename = config.default_model_filename();
  if (filename.find('/') != std::string::npos || filename == "." || filename == "..") {
    return absl::InvalidArgumentError(absl::StrCat(
        "default_model_filename '", filename, "' must be a file name inside the version folder"));
  }
  return version_dir / (filename.empty() ? std::string(default_name) : filename);
}

}  // namespace modeld::backend
