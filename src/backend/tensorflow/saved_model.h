// Reading a SavedModel's signatures and completing a model config from them, without
// TensorFlow: saved_model.pb and the MetaGraphDef TensorFlow hands back are parsed with
// modeld's own subset of TensorFlow's messages (proto/tensorflow).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/data_type.h"
#include "kserve/model_config.pb.h"
#include "tensorflow/meta_graph.pb.h"

namespace modeld::backend::savedmodel {

inline constexpr char kPlatform[] = "tensorflow_savedmodel";
inline constexpr char kServeTag[] = "serve";
inline constexpr char kDefaultSignature[] = "serving_default";
inline constexpr char kSignatureParameter[] = "signature_name";
// Written by completion: the served signature's method_name ("tensorflow/serving/predict",
// ".../classify", ".../regress"), which TensorFlow Serving's Classify and Regress look for.
inline constexpr char kMethodParameter[] = "signature_method_name";
// max_batch_size given to a model whose config comes from a signature that batches (every
// input and output has a leading -1), together with dynamic batching.
inline constexpr int kCompletedMaxBatchSize = 256;

// The SavedModel folder of a version: <version>/model.savedmodel (Triton's layout) when it
// holds saved_model.pb, else <version> itself (TensorFlow Serving's layout) when that does;
// nullopt when neither does.
std::optional<std::filesystem::path> FindSavedModelDir(const std::filesystem::path& version_dir);

// The meta graph tagged "serve" in <saved_model_dir>/saved_model.pb. INVALID_ARGUMENT when the
// file does not parse or has no such meta graph (naming the tags it has).
absl::StatusOr<tensorflow::MetaGraphDef> ReadServingMetaGraph(
    const std::filesystem::path& saved_model_dir);

// The signature `name` of `meta_graph`; INVALID_ARGUMENT listing the signatures it has.
absl::StatusOr<tensorflow::SignatureDef> FindSignature(const tensorflow::MetaGraphDef& meta_graph,
                                                       absl::string_view name);

// The signature a config asks for: its `signature_name` parameter, else serving_default.
std::string SignatureName(const inference::ModelConfig& config);

// Fills the inputs and outputs `config` leaves out from `signature` (both sides when it has
// neither; max_batch_size and dynamic batching too when it sets neither and the signature
// batches), then checks every declared tensor against the signature: its name is a key of the
// signature, its datatype is the signature's, its shape can match, and every signature input
// is declared. INVALID_ARGUMENT naming the tensor and both values. Sets the
// signature_method_name parameter to the signature's method_name (replacing any given).
absl::Status CompleteConfigFromSignature(const tensorflow::SignatureDef& signature,
                                         absl::string_view signature_name,
                                         inference::ModelConfig& config);

}  // namespace modeld::backend::savedmodel
