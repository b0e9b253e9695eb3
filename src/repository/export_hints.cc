#include "repository/export_hints.h"

#include <algorithm>
#include <fstream>
#include <optional>
#include <system_error>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace modeld::repository {
namespace {

// The files modeld loads from a version folder, by the framework they belong to.
struct Known {
  const char* extension;  // of a file that holds such a model
  const char* name;       // the name modeld loads it by
};
constexpr Known kModelFiles[] = {
    {".pt", "model.pt"}, {".pt2", "model.pt2"}, {".onnx", "model.onnx"}};

std::vector<std::filesystem::path> Files(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (entry.is_regular_file(error)) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// The highest numbered sub-folder of `model_dir`, if any.
std::optional<std::filesystem::path> NewestVersion(const std::filesystem::path& model_dir) {
  std::optional<int64_t> newest;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(model_dir, error)) {
    int64_t number = 0;
    if (entry.is_directory(error) && absl::SimpleAtoi(entry.path().filename().string(), &number) &&
        number > 0 && (!newest.has_value() || number > *newest)) {
      newest = number;
    }
  }
  if (!newest.has_value()) return std::nullopt;
  return model_dir / std::to_string(*newest);
}

constexpr char kTorchSaveHint[] =
    "this file was saved with torch.save (a pickle of Python objects), which only Python can "
    "load; save the module as TorchScript, torch.jit.save(torch.jit.script(model), "
    "\"model.pt\"), or export it with modeld.torch_export.export_package (docs/pytorch.md)";

// Whether `file` is a zip written by torch.save: its directory (at the end of the file)
// names a data.pkl and no constants.pkl, which every TorchScript archive has.
bool IsTorchSaveArchive(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return false;
  char magic[2] = {};
  if (!in.read(magic, 2) || magic[0] != 'P' || magic[1] != 'K') return false;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  constexpr std::streamoff kTail = 64 * 1024;  // the zip's central directory
  in.seekg(std::max<std::streamoff>(0, size - kTail));
  std::string tail(static_cast<size_t>(std::min(size, kTail)), '\0');
  in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  return absl::StrContains(tail, "data.pkl") && !absl::StrContains(tail, "constants.pkl");
}

// A hint for a file that holds something other than a servable model, whatever folder it
// is in: Python pickles and weights-only files, which need an export step first.
std::string ForeignFileHint(const std::filesystem::path& file, const std::string& model) {
  const std::string name = file.filename().string();
  const std::string extension = file.extension().string();
  if ((extension == ".pt" || extension == ".pth") && IsTorchSaveArchive(file)) {
    return absl::StrCat(name, ": ", kTorchSaveHint);
  }
  if (extension == ".pkl" || extension == ".pickle" || extension == ".joblib") {
    return absl::StrCat(name,
                        " is a Python pickle (pickle.dump or joblib.dump), which only Python "
                        "can load: convert a scikit-learn model with skl2onnx, "
                        "to_onnx(model, X[:1], options={\"zipmap\": False}), and save it as ",
                        model, "/1/model.onnx (docs/exporting.md)");
  }
  if (extension == ".ubj" || extension == ".bst") {
    return absl::StrCat(name,
                        " is an XGBoost booster file: convert it with onnxmltools "
                        "(convert_xgboost, target_opset 15) and save it as ",
                        model, "/1/model.onnx (docs/exporting.md)");
  }
  if (extension == ".safetensors") {
    return absl::StrCat(name,
                        " holds weights only, without the model's code: export the model "
                        "with torch.onnx.export to ",
                        model, "/1/model.onnx, or save it as TorchScript to ", model,
                        "/1/model.pt (docs/exporting.md)");
  }
  return "";
}

bool IsModelFile(const std::filesystem::path& file) {
  const std::string extension = file.extension().string();
  return extension == ".keras" || extension == ".h5" || extension == ".pb" ||
         std::any_of(std::begin(kModelFiles), std::end(kModelFiles),
                     [&](const Known& known) { return extension == known.extension; });
}

}  // namespace

std::string ExportHint(const std::filesystem::path& model_dir,
                       const std::filesystem::path& version_dir, absl::string_view reason) {
  const std::string model = model_dir.filename().string();
  std::error_code error;
  // A model file beside config.pbtxt: the version folder is missing or empty.
  for (const std::filesystem::path& file : Files(model_dir)) {
    if (std::string hint = ForeignFileHint(file, model); !hint.empty()) return hint;
    if (IsModelFile(file)) {
      return absl::StrCat(file.filename().string(), " is in ", model,
                          "/ itself: models go into a numbered version folder, ", model, "/1/",
                          file.filename().string());
    }
  }
  std::optional<std::filesystem::path> dir =
      version_dir.empty() ? NewestVersion(model_dir) : std::optional(version_dir);
  if (!dir.has_value()) return "";
  if (absl::StrContains(reason, "constants.pkl")) return kTorchSaveHint;
  if (absl::StrContains(reason, "External data path does not exist")) {
    return "this ONNX model keeps its weights in a separate file (torch.onnx.export writes "
           "model.onnx.data beside model.onnx for large models), which is missing: copy it "
           "into the version folder beside model.onnx, under the name the error gives";
  }
  const std::vector<std::filesystem::path> files = Files(*dir);
  for (const std::filesystem::path& file : files) {
    if (std::string hint = ForeignFileHint(file, model); !hint.empty()) return hint;
  }
  const bool has_variables = std::filesystem::is_directory(*dir / "variables", error);
  for (const std::filesystem::path& file : files) {
    const std::string name = file.filename().string();
    const std::string extension = file.extension().string();
    if (extension == ".keras" || extension == ".h5") {
      return absl::StrCat(name,
                          " is a Keras archive, not a SavedModel: export the model with "
                          "model.export(\"",
                          model, "/1\") (Keras 3) or tf.saved_model.save(model, \"", model,
                          "/1\"), which writes saved_model.pb and variables/ (README, "
                          "TensorFlow SavedModels)");
    }
    if (extension == ".pb" && name != "saved_model.pb" && !has_variables) {
      return absl::StrCat(name,
                          " looks like a TensorFlow 1 frozen graph; modeld serves SavedModels: "
                          "load the graph and save it with tf.saved_model (saved_model.pb and "
                          "variables/ in ",
                          model, "/1/)");
    }
  }
  for (const Known& known : kModelFiles) {
    if (std::filesystem::exists(*dir / known.name, error)) continue;
    for (const std::filesystem::path& file : files) {
      if (file.extension() == known.extension) {
        return absl::StrCat("modeld loads ", known.name, ", and this version folder holds ",
                            file.filename().string(), ": rename it");
      }
    }
  }
  return "";
}

std::string WithExportHint(std::string reason, const std::filesystem::path& model_dir,
                           const std::filesystem::path& version_dir) {
  const std::string hint = ExportHint(model_dir, version_dir, reason);
  if (!hint.empty()) absl::StrAppend(&reason, "; hint: ", hint);
  return reason;
}

}  // namespace modeld::repository
