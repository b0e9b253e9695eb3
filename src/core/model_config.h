// ModelConfig: a model's configuration, read from <repository>/<model>/config.pbtxt.
//
// The file is protobuf text of inference.ModelConfig (Triton's field names and numbers, the
// subset modeld supports). Loading validates it and derives what the request path needs, so
// validation and backends never walk the proto. Errors name the file, and the line for syntax.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/data_type.h"
#include "core/tensor.h"
#include "kserve/model_config.pb.h"

namespace modeld::core {

struct TensorSpec {
  std::string name;
  DataType type = DataType::kFp32;
  Shape dims;                    // one item's dims as the API sees them; -1 = any size
  std::optional<Shape> reshape;  // one item's dims as the model sees them, when different

  // An item of no dims of its own (a TensorFlow signature's [-1] tensor): config.pbtxt writes
  // it as dims [1] with reshape [], so the KServe APIs see [batch, 1]. TensorFlow Serving's
  // APIs show, take and answer it as [batch], as TensorFlow Serving does.
  bool IsScalarItem() const { return reshape.has_value() && reshape->empty() && dims == Shape{1}; }
};

struct ModelConfig {
  inference::ModelConfig proto;  // the file as parsed, with `name` filled in
  std::string name;
  std::string platform;    // e.g. "pytorch_libtorch"; may be empty when `backend` is set
  std::string backend;     // e.g. "pytorch"; may be empty when `platform` is set
  int max_batch_size = 0;  // 0: the model takes no batch dimension
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  int instance_count = 1;  // Model instances (worker threads) per loaded version
  // Where each instance runs, one entry per instance: kCpuDevice, or a GPU's index. From
  // instance_group: KIND_CPU and KIND_AUTO put `count` instances on the CPU; KIND_GPU puts
  // `count` on each GPU of `gpus` (GPU 0 when it lists none). Backends that run on the CPU
  // only refuse the others when they load them.
  std::vector<int> instance_devices = {kCpuDevice};
  static constexpr int kCpuDevice = -1;
  absl::flat_hash_map<std::string, std::string> parameters;

  // The API shape of `spec`: [-1] + dims when the model batches, else dims.
  Shape FullShape(const TensorSpec& spec) const;
  const TensorSpec* FindInput(absl::string_view name) const;
  const TensorSpec* FindOutput(absl::string_view name) const;
  // A string parameter, or nullopt when absent.
  std::optional<std::string> Parameter(absl::string_view key) const;
};

inline constexpr char kConfigFileName[] = "config.pbtxt";

// Reads and validates <model_dir>/config.pbtxt; the model's name is the folder's name.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::filesystem::path& model_dir);

// The text of <model_dir>/config.pbtxt, parsed but not validated: NOT_FOUND when the file cannot
// be read. A backend may complete the proto (from the model file) before it is validated.
absl::StatusOr<inference::ModelConfig> ReadModelConfigProto(const std::filesystem::path& model_dir);
absl::StatusOr<inference::ModelConfig> ParseModelConfigProto(absl::string_view text,
                                                             absl::string_view source);

// Checks version_policy alone (ModelConfigFromProto checks it too), for callers that select
// versions before the rest of the config can be validated.
absl::Status ValidateVersionPolicy(absl::string_view source, const inference::ModelConfig& proto);

// Parses config text; `source` names it in messages, `model_name` is the folder's name.
absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view text, absl::string_view source,
                                             absl::string_view model_name);

// Validates a parsed proto and derives the struct; messages start with `source`.
absl::StatusOr<ModelConfig> ModelConfigFromProto(inference::ModelConfig proto,
                                                 absl::string_view source,
                                                 absl::string_view model_name);

}  // namespace modeld::core
