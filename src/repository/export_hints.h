// Export mistakes recognised when a model fails to load, each with the fix: what users most
// often put in a repository instead of a servable model (docs/exporting.md shows the
// right way for each framework).
#pragma once

#include <filesystem>
#include <string>

#include "absl/strings/string_view.h"

namespace modeld::repository {

// A hint for the model in `model_dir` that failed with `reason`, or "" when none applies:
//  - a model file beside config.pbtxt instead of in a version folder;
//  - a Keras archive (.keras, .h5) where a SavedModel should be;
//  - a TensorFlow 1 frozen graph (a .pb other than saved_model.pb, without variables/);
//  - a PyTorch file saved with torch.save (a pickle: LibTorch finds no constants.pkl);
//  - a model file of the right kind under another name than the one modeld loads.
//  - a Python pickle (.pkl, .joblib), an XGBoost booster or a safetensors file, which need
//    an export to ONNX or TorchScript first;
//  - an ONNX model whose external-data file (model.onnx.data) was left behind.
// `version_dir` is the version folder that failed, or empty for a model-level failure (its
// newest version folder is looked at then, if any).
std::string ExportHint(const std::filesystem::path& model_dir,
                       const std::filesystem::path& version_dir, absl::string_view reason);

// `reason`, followed by "; hint: <hint>" when ExportHint has one.
std::string WithExportHint(std::string reason, const std::filesystem::path& model_dir,
                           const std::filesystem::path& version_dir = {});

}  // namespace modeld::repository
