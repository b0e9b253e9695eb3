#include "core/model_config.h"

#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace modeld::core {
namespace {

// Keeps the text parser's first error with its position (1-based line and column).
class FirstErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (error_.empty()) error_ = absl::StrCat(line + 1, ":", column + 1, ": ", message);
  }
  const std::string& error() const { return error_; }

 private:
  std::string error_;
};

absl::Status ConfigError(absl::string_view source, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", message));
}

absl::StatusOr<Shape> ValidateDims(absl::string_view source, absl::string_view what,
                                   const google::protobuf::RepeatedField<int64_t>& dims) {
  Shape shape(dims.begin(), dims.end());
  if (shape.empty()) return ConfigError(source, absl::StrCat(what, ": dims must not be empty"));
  for (int64_t dim : shape) {
    if (dim == 0 || dim < -1) {
      return ConfigError(source, absl::StrCat(what, ": dims ", ShapeToString(shape),
                                              " may hold only positive sizes or -1"));
    }
  }
  return shape;
}

template <typename TensorProto>
absl::StatusOr<TensorSpec> ToTensorSpec(absl::string_view source, absl::string_view kind,
                                        const TensorProto& tensor) {
  if (tensor.name().empty()) return ConfigError(source, absl::StrCat("an ", kind, " has no name"));
  const std::string what = absl::StrCat(kind, " '", tensor.name(), "'");
  TensorSpec spec;
  spec.name = tensor.name();
  const std::optional<DataType> type = DataTypeFromConfig(tensor.data_type());
  if (!type.has_value()) {
    return ConfigError(
        source, absl::StrCat(what, ": data_type ", inference::DataType_Name(tensor.data_type()),
                             " is not supported"));
  }
  spec.type = *type;
  ASSIGN_OR_RETURN(spec.dims, ValidateDims(source, what, tensor.dims()));
  if (tensor.has_reshape()) {
    Shape reshape(tensor.reshape().shape().begin(), tensor.reshape().shape().end());
    const int64_t from = ElementCount(spec.dims);
    const int64_t to = ElementCount(reshape);
    if (from >= 0 && to >= 0 && from != to) {
      return ConfigError(
          source, absl::StrCat(what, ": reshape ", ShapeToString(reshape), " does not hold the ",
                               from, " elements of dims ", ShapeToString(spec.dims)));
    }
    spec.reshape = std::move(reshape);
  }
  return spec;
}

template <typename TensorProto>
absl::StatusOr<std::vector<TensorSpec>> ToTensorSpecs(
    absl::string_view source, absl::string_view kind,
    const google::protobuf::RepeatedPtrField<TensorProto>& tensors) {
  std::vector<TensorSpec> specs;
  absl::flat_hash_set<std::string> names;
  for (const TensorProto& tensor : tensors) {
    ASSIGN_OR_RETURN(TensorSpec spec, ToTensorSpec(source, kind, tensor));
    if (!names.insert(spec.name).second) {
      return ConfigError(source, absl::StrCat(kind, " '", spec.name, "' is declared twice"));
    }
    specs.push_back(std::move(spec));
  }
  if (specs.empty()) return ConfigError(source, absl::StrCat("the model declares no ", kind));
  return specs;
}

absl::StatusOr<std::vector<int>> InstanceDevices(absl::string_view source,
                                                 const inference::ModelConfig& proto) {
  if (proto.instance_group().empty()) return std::vector<int>{ModelConfig::kCpuDevice};
  std::vector<int> devices;
  for (const inference::ModelInstanceGroup& group : proto.instance_group()) {
    if (group.count() < 0) {
      return ConfigError(source, "instance_group count must not be negative");
    }
    const int count = group.count() == 0 ? 1 : group.count();
    switch (group.kind()) {
      case inference::ModelInstanceGroup::KIND_AUTO:
      case inference::ModelInstanceGroup::KIND_CPU:
        if (!group.gpus().empty()) {
          return ConfigError(source, "instance_group gpus needs kind: KIND_GPU");
        }
        devices.insert(devices.end(), count, ModelConfig::kCpuDevice);
        break;
      case inference::ModelInstanceGroup::KIND_GPU: {
        const std::vector<int> gpus =
            group.gpus().empty() ? std::vector<int>{0}
                                 : std::vector<int>(group.gpus().begin(), group.gpus().end());
        for (int gpu : gpus) {
          if (gpu < 0) {
            return ConfigError(source, absl::StrCat("instance_group gpus holds ", gpu,
                                                    "; a GPU's index is 0 or more"));
          }
          devices.insert(devices.end(), count, gpu);
        }
        break;
      }
      default:
        return ConfigError(source,
                           absl::StrCat("instance_group kind ",
                                        inference::ModelInstanceGroup::Kind_Name(group.kind()),
                                        " is not supported (KIND_CPU or KIND_GPU)"));
    }
  }
  return devices;
}

absl::Status ValidateQueuePolicy(absl::string_view source, absl::string_view where,
                                 const inference::ModelQueuePolicy& policy) {
  if (policy.timeout_action() != inference::ModelQueuePolicy::REJECT) {
    return ConfigError(
        source,
        absl::StrCat(where, " timeout_action ",
                     inference::ModelQueuePolicy::TimeoutAction_Name(policy.timeout_action()),
                     " is not supported (only REJECT)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateDynamicBatching(absl::string_view source,
                                     const inference::ModelConfig& proto) {
  if (!proto.has_dynamic_batching()) return absl::OkStatus();
  const inference::ModelDynamicBatching& batching = proto.dynamic_batching();
  if (proto.max_batch_size() == 0) {
    return ConfigError(source, "dynamic_batching needs max_batch_size greater than 0");
  }
  for (int32_t size : batching.preferred_batch_size()) {
    if (size < 1 || size > proto.max_batch_size()) {
      return ConfigError(
          source, absl::StrCat("dynamic_batching preferred_batch_size ", size,
                               " is outside 1..max_batch_size (", proto.max_batch_size(), ")"));
    }
  }
  const uint64_t levels = batching.priority_levels();
  if (levels == 0 && batching.default_priority_level() != 0) {
    return ConfigError(source,
                       "dynamic_batching default_priority_level is set but priority_levels is 0");
  }
  if (levels > 0 &&
      (batching.default_priority_level() < 1 || batching.default_priority_level() > levels)) {
    return ConfigError(source, absl::StrCat("dynamic_batching default_priority_level must be in "
                                            "1..priority_levels (",
                                            levels, ")"));
  }
  RETURN_IF_ERROR(ValidateQueuePolicy(source, "dynamic_batching default_queue_policy",
                                      batching.default_queue_policy()));
  for (const auto& [level, policy] : batching.priority_queue_policy()) {
    if (level < 1 || level > levels) {
      return ConfigError(source,
                         absl::StrCat("dynamic_batching priority_queue_policy level ", level,
                                      " is outside 1..priority_levels (", levels, ")"));
    }
    RETURN_IF_ERROR(ValidateQueuePolicy(
        source, absl::StrCat("dynamic_batching priority_queue_policy ", level), policy));
  }
  return absl::OkStatus();
}

// model_warmup: every entry names every input once, with its datatype and fixed dims that fit
// the input's, and a batch size the model takes.
absl::Status ValidateWarmup(absl::string_view source, const inference::ModelConfig& proto,
                            const ModelConfig& config) {
  for (const inference::ModelWarmup& warmup : proto.model_warmup()) {
    const std::string what = absl::StrCat("model_warmup '", warmup.name(), "'");
    if (warmup.name().empty()) return ConfigError(source, "a model_warmup has no name");
    const uint32_t most = config.max_batch_size > 0 ? config.max_batch_size : 1;
    if (warmup.batch_size() < 1 || warmup.batch_size() > most) {
      return ConfigError(source, absl::StrCat(what, ": batch_size ", warmup.batch_size(),
                                              " is outside 1..", most));
    }
    for (const auto& [name, input] : warmup.inputs()) {
      const TensorSpec* spec = config.FindInput(name);
      if (spec == nullptr) {
        return ConfigError(source, absl::StrCat(what, ": the model has no input '", name, "'"));
      }
      if (DataTypeFromConfig(input.data_type()) != spec->type) {
        return ConfigError(
            source,
            absl::StrCat(what, ": input '", name, "' is ",
                         inference::DataType_Name(input.data_type()), " but the model's is ",
                         inference::DataType_Name(DataTypeToConfig(spec->type))));
      }
      const Shape dims(input.dims().begin(), input.dims().end());
      bool fits = dims.size() == spec->dims.size();
      for (size_t i = 0; fits && i < dims.size(); ++i) {
        fits = dims[i] > 0 && (spec->dims[i] == -1 || spec->dims[i] == dims[i]);
      }
      if (!fits) {
        return ConfigError(source,
                           absl::StrCat(what, ": input '", name, "' dims ", ShapeToString(dims),
                                        " do not fit the input's ", ShapeToString(spec->dims),
                                        " (fixed sizes, no batch dimension)"));
      }
      if (input.input_data_type_case() == inference::ModelWarmup::Input::INPUT_DATA_TYPE_NOT_SET) {
        return ConfigError(source, absl::StrCat(what, ": input '", name,
                                                "' sets none of zero_data, random_data and "
                                                "input_data_file"));
      }
    }
    for (const TensorSpec& spec : config.inputs) {
      if (!warmup.inputs().contains(spec.name)) {
        return ConfigError(source, absl::StrCat(what, ": input '", spec.name, "' is not given"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateVersionPolicy(absl::string_view source, const inference::ModelConfig& proto) {
  const auto& policy = proto.version_policy();
  if (policy.has_latest() && policy.latest().num_versions() == 0) {
    return ConfigError(source, "version_policy latest.num_versions must be at least 1");
  }
  if (policy.has_specific()) {
    if (policy.specific().versions().empty()) {
      return ConfigError(source, "version_policy specific lists no versions");
    }
    for (int64_t version : policy.specific().versions()) {
      if (version < 1) {
        return ConfigError(source, absl::StrCat("version_policy specific version ", version,
                                                " is not a positive number"));
      }
    }
  }
  return absl::OkStatus();
}

Shape ModelConfig::FullShape(const TensorSpec& spec) const {
  Shape shape;
  if (max_batch_size > 0) shape.push_back(-1);
  shape.insert(shape.end(), spec.dims.begin(), spec.dims.end());
  return shape;
}

const TensorSpec* ModelConfig::FindInput(absl::string_view name) const {
  for (const TensorSpec& spec : inputs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

const TensorSpec* ModelConfig::FindOutput(absl::string_view name) const {
  for (const TensorSpec& spec : outputs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

std::optional<std::string> ModelConfig::Parameter(absl::string_view key) const {
  auto it = parameters.find(key);
  if (it == parameters.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<inference::ModelConfig> ReadModelConfigProto(
    const std::filesystem::path& model_dir) {
  const std::filesystem::path path = model_dir / kConfigFileName;
  std::ifstream file(path);
  if (!file) {
    return absl::NotFoundError(absl::StrCat(path.string(), ": cannot be read"));
  }
  std::stringstream text;
  text << file.rdbuf();
  return ParseModelConfigProto(text.str(), path.string());
}

absl::StatusOr<inference::ModelConfig> ParseModelConfigProto(absl::string_view text,
                                                             absl::string_view source) {
  inference::ModelConfig proto;
  google::protobuf::TextFormat::Parser parser;
  FirstErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &proto)) {
    return ConfigError(source, errors.error());
  }
  return proto;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::filesystem::path& model_dir) {
  ASSIGN_OR_RETURN(inference::ModelConfig proto, ReadModelConfigProto(model_dir));
  return ModelConfigFromProto(std::move(proto), (model_dir / kConfigFileName).string(),
                              model_dir.filename().string());
}

absl::StatusOr<ModelConfig> ParseModelConfig(absl::string_view text, absl::string_view source,
                                             absl::string_view model_name) {
  ASSIGN_OR_RETURN(inference::ModelConfig proto, ParseModelConfigProto(text, source));
  return ModelConfigFromProto(std::move(proto), source, model_name);
}

absl::StatusOr<ModelConfig> ModelConfigFromProto(inference::ModelConfig proto,
                                                 absl::string_view source,
                                                 absl::string_view model_name) {
  if (!proto.name().empty() && proto.name() != model_name) {
    return ConfigError(
        source, absl::StrCat("name '", proto.name(), "' differs from the model's folder name '",
                             model_name, "'"));
  }
  proto.set_name(std::string(model_name));
  if (proto.platform().empty() && proto.backend().empty()) {
    return ConfigError(source, "neither platform nor backend is set");
  }
  if (proto.max_batch_size() < 0) {
    return ConfigError(source, "max_batch_size must not be negative");
  }
  RETURN_IF_ERROR(ValidateVersionPolicy(source, proto));
  RETURN_IF_ERROR(ValidateDynamicBatching(source, proto));

  ModelConfig config;
  config.name = proto.name();
  config.platform = proto.platform();
  config.backend = proto.backend();
  config.max_batch_size = proto.max_batch_size();
  ASSIGN_OR_RETURN(config.inputs, ToTensorSpecs(source, "input", proto.input()));
  ASSIGN_OR_RETURN(config.outputs, ToTensorSpecs(source, "output", proto.output()));
  ASSIGN_OR_RETURN(config.instance_devices, InstanceDevices(source, proto));
  config.instance_count = static_cast<int>(config.instance_devices.size());
  RETURN_IF_ERROR(ValidateWarmup(source, proto, config));
  for (const auto& [key, value] : proto.parameters()) {
    config.parameters[key] = value.string_value();
  }
  config.proto = std::move(proto);
  return config;
}

}  // namespace modeld::core
