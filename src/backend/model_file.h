// The file a backend loads from a version folder: the config's default_model_filename, or
// the backend's own default name (model.pt, model.pt2, model.onnx).
#pragma once

#include <filesystem>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kserve/model_config.pb.h"

namespace modeld::backend {

// INVALID_ARGUMENT for a default_model_filename that is not a plain file name (a folder in it,
// or an absolute path, could point outside the version folder). Does not check that the file
// exists.
absl::StatusOr<std::filesystem::path> ModelFile(const inference::ModelConfig& config,
                                                const std::filesystem::path& version_dir,
                                                absl::string_view default_name);

}  // namespace modeld::backend
