// Completing a model config from the tensors a model file declares, and checking a stated
// config against them: shared by the backends that serve models without a config.pbtxt
// (TensorFlow SavedModels, ONNX).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/data_type.h"
#include "core/tensor.h"
#include "kserve/model_config.pb.h"

namespace modeld::backend {

// One input or output of a model file, as its framework describes it.
struct FileTensor {
  std::string name;
  std::optional<core::Shape> shape;    // nullopt: unknown rank; -1: a dimension of any size
  std::optional<core::DataType> type;  // nullopt: a type modeld does not serve
  std::string type_name;               // the framework's own name for the type, for messages
  // Set for a tensor modeld cannot serve at all (an ONNX sequence or map): the whole error,
  // returned when the tensor would be filled into the config or is declared in it.
  std::string refusal;
};

struct FileTensors {
  // How messages name the file's tensors as a whole ("signature 'serving_default'",
  // "model.onnx") and one tensor when filling ("signature input 'x'", "model.onnx input 'x'").
  std::string source;
  std::string noun;
  std::vector<FileTensor> inputs;
  std::vector<FileTensor> outputs;
  // max_batch_size given, with dynamic batching, when the config sets neither and every tensor
  // has a leading -1.
  int completed_max_batch_size = 0;
};

// Whether `tensor` has a known shape whose first dimension is -1.
bool Batches(const FileTensor& tensor);

// Fills the inputs and outputs `config` leaves out from `file` (both sides when it has
// neither; max_batch_size and dynamic batching too when it sets neither and every tensor
// batches), then checks every declared tensor against the file: its name is the file's, its
// datatype is the file's, its shape can match, and every file input is declared. A tensor whose
// only dimension is the batch gets dims [1] with an empty reshape. INVALID_ARGUMENT naming the
// tensor and both values.
absl::Status CompleteConfigFromTensors(const FileTensors& file, inference::ModelConfig& config);

}  // namespace modeld::backend
