#include "backend/onnx/onnx_backend.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/base/call_once.h"
#include "absl/strings/str_cat.h"
#include "backend/config_completion.h"
#include "backend/model_file.h"
#include "backend/model_inputs.h"
#include "backend/onnx/ort_api.h"
#include "backend/thread_counts.h"
#include "common/logging.h"  // fmt for absl::string_view
#include "common/runtime_library.h"
#include "common/status_macros.h"
#include "spdlog/spdlog.h"

#ifndef MODELD_ONNXRUNTIME_LIBRARY
#define MODELD_ONNXRUNTIME_LIBRARY ""
#endif

namespace modeld::backend {
namespace {

constexpr char kAllowSpinningParameter[] = "allow_spinning";
constexpr char kOptimizationParameter[] = "graph_optimization_level";
constexpr char kOptimizedFileParameter[] = "optimized_model_file";

// ONNX Runtime and its one environment (it wants one per process), made on first use.
struct Runtime {
  const ort::Api* api = nullptr;
  ort::Env* env = nullptr;
};

// ONNX Runtime's own log lines, in modeld's log at debug level: what they report (a failed
// load or run) reaches the caller as a status already, with the same text.
void LogLine(void*, ort::LoggingLevel severity, const char*, const char*, const char* location,
             const char* message) {
  spdlog::debug("onnxruntime ({}, {}): {}", static_cast<int>(severity), location, message);
}

absl::StatusOr<const Runtime*> GetRuntime(const std::string& library) {
  static absl::once_flag once;
  static absl::StatusOr<const Runtime*>* runtime = nullptr;
  absl::call_once(once, [&] {
    runtime = new absl::StatusOr<const Runtime*>([&]() -> absl::StatusOr<const Runtime*> {
      ASSIGN_OR_RETURN(const ort::Api* api, ort::LoadApi(library));
      auto* made = new Runtime{api, nullptr};  // for the process's lifetime
      RETURN_IF_ERROR(ort::ToStatus(*api,
                                    api->CreateEnvWithCustomLogger(
                                        &LogLine, nullptr, ort::LoggingLevel::kWarning, "modeld",
                                        &made->env),
                                    "cannot start ONNX Runtime"));
      return made;
    }());
  });
  return *runtime;
}

std::optional<core::DataType> FromElementType(ort::ElementType type) {
  switch (type) {
    case ort::ElementType::kBool: return core::DataType::kBool;
    case ort::ElementType::kUint8: return core::DataType::kUint8;
    case ort::ElementType::kUint16: return core::DataType::kUint16;
    case ort::ElementType::kUint32: return core::DataType::kUint32;
    case ort::ElementType::kUint64: return core::DataType::kUint64;
    case ort::ElementType::kInt8: return core::DataType::kInt8;
    case ort::ElementType::kInt16: return core::DataType::kInt16;
    case ort::ElementType::kInt32: return core::DataType::kInt32;
    case ort::ElementType::kInt64: return core::DataType::kInt64;
    case ort::ElementType::kFloat16: return core::DataType::kFp16;
    case ort::ElementType::kFloat: return core::DataType::kFp32;
    case ort::ElementType::kDouble: return core::DataType::kFp64;
    case ort::ElementType::kString: return core::DataType::kBytes;
    default: return std::nullopt;
  }
}

ort::ElementType ToElementType(core::DataType type) {
  switch (type) {
    case core::DataType::kBool: return ort::ElementType::kBool;
    case core::DataType::kUint8: return ort::ElementType::kUint8;
    case core::DataType::kUint16: return ort::ElementType::kUint16;
    case core::DataType::kUint32: return ort::ElementType::kUint32;
    case core::DataType::kUint64: return ort::ElementType::kUint64;
    case core::DataType::kInt8: return ort::ElementType::kInt8;
    case core::DataType::kInt16: return ort::ElementType::kInt16;
    case core::DataType::kInt32: return ort::ElementType::kInt32;
    case core::DataType::kInt64: return ort::ElementType::kInt64;
    case core::DataType::kFp16: return ort::ElementType::kFloat16;
    case core::DataType::kFp32: return ort::ElementType::kFloat;
    case core::DataType::kFp64: return ort::ElementType::kDouble;
    case core::DataType::kBytes: return ort::ElementType::kString;
  }
  return ort::ElementType::kUndefined;
}

// ONNX's name of an element type, as in "tensor(float)".
std::string ElementTypeName(ort::ElementType type) {
  static constexpr const char* kNames[] = {
      "undefined", "float",  "uint8",  "int8",   "uint16",    "int16",      "int32",
      "int64",     "string", "bool",   "float16", "double",   "uint32",     "uint64",
      "complex64", "complex128", "bfloat16"};
  const int index = static_cast<int>(type);
  return absl::StrCat("tensor(",
                      index >= 0 && index < static_cast<int>(std::size(kNames))
                          ? kNames[index]
                          : absl::StrCat("element type ", index),
                      ")");
}

absl::string_view OnnxTypeName(ort::OnnxType type) {
  switch (type) {
    case ort::OnnxType::kSequence: return "a sequence";
    case ort::OnnxType::kMap: return "a map";
    case ort::OnnxType::kOpaque: return "an opaque value";
    case ort::OnnxType::kSparseTensor: return "a sparse tensor";
    case ort::OnnxType::kOptional: return "an optional value";
    default: return "of an unknown kind";
  }
}

// One session input or output (`kind`), as config completion sees it.
absl::StatusOr<FileTensor> Describe(const ort::Api& api, const ort::TypeInfo* info,
                                    std::string name, absl::string_view kind) {
  FileTensor tensor;
  tensor.name = std::move(name);
  const std::string context = absl::StrCat("model.onnx ", kind, " '", tensor.name, "'");
  ort::OnnxType onnx_type = ort::OnnxType::kUnknown;
  RETURN_IF_ERROR(ort::ToStatus(api, api.GetOnnxTypeFromTypeInfo(info, &onnx_type), context));
  if (onnx_type != ort::OnnxType::kTensor) {
    tensor.refusal = absl::StrCat(
        context, " is ", OnnxTypeName(onnx_type),
        ", not a tensor: modeld serves tensors only.",
        onnx_type == ort::OnnxType::kSequence
            ? " A scikit-learn classifier exported with skl2onnx has its probabilities in a "
              "sequence of maps (ZipMap): export it with zipmap=False, to_onnx(model, X, "
              "options={'zipmap': False}) (docs/exporting.md), to get them as a tensor."
            : "",
        kind == "output" ? " Or state the outputs to serve in config.pbtxt, leaving this one out."
                         : "");
    return tensor;
  }
  const ort::TensorTypeAndShapeInfo* shape_info = nullptr;
  RETURN_IF_ERROR(ort::ToStatus(api, api.CastTypeInfoToTensorInfo(info, &shape_info), context));
  ort::ElementType element = ort::ElementType::kUndefined;
  RETURN_IF_ERROR(ort::ToStatus(api, api.GetTensorElementType(shape_info, &element), context));
  size_t rank = 0;
  RETURN_IF_ERROR(ort::ToStatus(api, api.GetDimensionsCount(shape_info, &rank), context));
  core::Shape shape(rank);
  RETURN_IF_ERROR(
      ort::ToStatus(api, api.GetDimensions(shape_info, shape.data(), rank), context));
  for (int64_t& dim : shape) dim = dim < 0 ? -1 : dim;  // symbolic and unknown: any size
  tensor.shape = std::move(shape);
  tensor.type = FromElementType(element);
  tensor.type_name = ElementTypeName(element);
  return tensor;
}

// The session's inputs and outputs, in the model's order.
absl::StatusOr<FileTensors> DescribeSession(const ort::Api& api, const ort::Session* session) {
  ort::Allocator* allocator = nullptr;
  RETURN_IF_ERROR(ort::ToStatus(api, api.GetAllocatorWithDefaultOptions(&allocator),
                                "ONNX Runtime's allocator"));
  FileTensors file;
  file.source = kOnnxModelFile;
  file.noun = kOnnxModelFile;
  file.completed_max_batch_size = kOnnxCompletedMaxBatchSize;
  for (const bool input : {true, false}) {
    const absl::string_view kind = input ? "input" : "output";
    size_t count = 0;
    RETURN_IF_ERROR(ort::ToStatus(
        api, (input ? api.SessionGetInputCount : api.SessionGetOutputCount)(session, &count),
        absl::StrCat("model.onnx's ", kind, "s")));
    for (size_t i = 0; i < count; ++i) {
      const std::string context = absl::StrCat("model.onnx ", kind, " ", i);
      char* raw_name = nullptr;
      RETURN_IF_ERROR(ort::ToStatus(
          api,
          (input ? api.SessionGetInputName : api.SessionGetOutputName)(session, i, allocator,
                                                                        &raw_name),
          context));
      std::string name = raw_name;
      RETURN_IF_ERROR(ort::ToStatus(api, api.AllocatorFree(allocator, raw_name), context));
      ort::OwnedTypeInfo info;
      RETURN_IF_ERROR(ort::ToStatus(
          api,
          (input ? api.SessionGetInputTypeInfo : api.SessionGetOutputTypeInfo)(
              session, i, info.out(&api)),
          context));
      ASSIGN_OR_RETURN(FileTensor tensor, Describe(api, info.get(), std::move(name), kind));
      (input ? file.inputs : file.outputs).push_back(std::move(tensor));
    }
  }
  return file;
}

struct SessionSettings {
  int intra_op_threads = 1;
  int inter_op_threads = 1;
  bool allow_spinning = false;
  ort::GraphOptimizationLevel optimization = ort::GraphOptimizationLevel::kAll;
  // Where ONNX Runtime writes the model as optimized, when set (a cache; see Load).
  std::filesystem::path save_optimized;
};

absl::StatusOr<ort::OwnedSession> OpenSession(const Runtime& runtime,
                                              const std::filesystem::path& model,
                                              const SessionSettings& settings) {
  const ort::Api& api = *runtime.api;
  std::error_code error;
  if (!std::filesystem::is_regular_file(model, error)) {
    return absl::NotFoundError(absl::StrCat(model.string(), " does not exist"));
  }
  ort::OwnedSessionOptions options;
  const std::string context = absl::StrCat("cannot load ", model.string());
  RETURN_IF_ERROR(ort::ToStatus(api, api.CreateSessionOptions(options.out(&api)), context));
  RETURN_IF_ERROR(ort::ToStatus(
      api, api.SetIntraOpNumThreads(options.get(), settings.intra_op_threads), context));
  RETURN_IF_ERROR(ort::ToStatus(
      api, api.SetInterOpNumThreads(options.get(), settings.inter_op_threads), context));
  RETURN_IF_ERROR(ort::ToStatus(
      api, api.SetSessionGraphOptimizationLevel(options.get(), settings.optimization), context));
  const char* spinning = settings.allow_spinning ? "1" : "0";
  for (const char* key : {"session.intra_op.allow_spinning", "session.inter_op.allow_spinning"}) {
    RETURN_IF_ERROR(
        ort::ToStatus(api, api.AddSessionConfigEntry(options.get(), key, spinning), context));
  }
  if (!settings.save_optimized.empty()) {
    RETURN_IF_ERROR(ort::ToStatus(
        api, api.SetOptimizedModelFilePath(options.get(), settings.save_optimized.c_str()),
        context));
  }
  ort::OwnedSession session;
  RETURN_IF_ERROR(ort::ToStatus(
      api, api.CreateSession(runtime.env, model.c_str(), options.get(), session.out(&api)),
      context));
  return session;
}

absl::StatusOr<SessionSettings> SettingsFor(const core::ModelConfig& config) {
  SessionSettings settings;
  ASSIGN_OR_RETURN(settings.intra_op_threads, IntraOpThreads(config));
  ASSIGN_OR_RETURN(settings.inter_op_threads,
                   ThreadCountParameter(config, kInterOpThreadsParameter, 1));
  if (std::optional<std::string> spinning = config.Parameter(kAllowSpinningParameter)) {
    if (*spinning != "0" && *spinning != "1") {
      return absl::InvalidArgumentError(absl::StrCat(
          "parameter ", kAllowSpinningParameter, " '", *spinning, "' is neither \"0\" nor \"1\""));
    }
    settings.allow_spinning = *spinning == "1";
  }
  if (std::optional<std::string> level = config.Parameter(kOptimizationParameter)) {
    static constexpr std::pair<absl::string_view, ort::GraphOptimizationLevel> kLevels[] = {
        {"disable", ort::GraphOptimizationLevel::kDisableAll},
        {"basic", ort::GraphOptimizationLevel::kBasic},
        {"extended", ort::GraphOptimizationLevel::kExtended},
        {"all", ort::GraphOptimizationLevel::kAll}};
    const auto* found = std::find_if(std::begin(kLevels), std::end(kLevels),
                                     [&](const auto& entry) { return entry.first == *level; });
    if (found == std::end(kLevels)) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter ", kOptimizationParameter, " '", *level,
                       "' is none of disable, basic, extended, all"));
    }
    settings.optimization = found->second;
  }
  return settings;
}

// The shape ONNX Runtime gets for `input` (API shape, validated): with an item reshape, the
// batch dimension (when batching) followed by the reshape's dims.
core::Shape ModelShape(const core::Tensor& input, const core::TensorSpec& spec, bool batched) {
  if (!spec.reshape.has_value()) return input.shape();
  core::Shape shape;
  if (batched) shape.push_back(input.shape().front());
  shape.insert(shape.end(), spec.reshape->begin(), spec.reshape->end());
  // A reshape may leave one dimension to the element count, as config.pbtxt allows.
  const auto unknown = std::find(shape.begin(), shape.end(), -1);
  if (unknown != shape.end()) {
    int64_t known = 1;
    for (int64_t dim : shape) known *= dim == -1 ? 1 : dim;
    const int64_t count = core::ElementCount(input.shape());
    *unknown = known > 0 ? count / known : 0;
  }
  return shape;
}

class OnnxModel : public Model {
 public:
  OnnxModel(const Runtime& runtime, core::ModelConfig config, ort::OwnedSession session,
            ort::OwnedMemoryInfo memory, ort::Allocator* allocator)
      : api_(*runtime.api),
        config_(std::move(config)),
        session_(std::move(session)),
        memory_(std::move(memory)),
        allocator_(allocator) {
    for (const core::TensorSpec& spec : config_.inputs) input_names_.push_back(spec.name.c_str());
    for (const core::TensorSpec& spec : config_.outputs) {
      output_names_.push_back(spec.name.c_str());
    }
  }

  absl::StatusOr<core::TensorMap> Run(const core::TensorMap& inputs) override {
    ASSIGN_OR_RETURN(const OrderedInputs ordered, OrderInputs(config_, inputs));
    const bool batched = config_.max_batch_size > 0;
    std::vector<ort::OwnedValue> values(config_.inputs.size());
    std::vector<const ort::Value*> input_values;
    for (size_t i = 0; i < config_.inputs.size(); ++i) {
      ASSIGN_OR_RETURN(values[i], ToValue(*ordered.tensors[i], config_.inputs[i], batched));
      input_values.push_back(values[i].get());
    }
    std::vector<ort::Value*> raw_outputs(output_names_.size(), nullptr);
    const absl::Status run = ort::ToStatus(
        api_,
        api_.Run(session_.get(), nullptr, input_names_.data(), input_values.data(),
                 input_values.size(), output_names_.data(), output_names_.size(),
                 raw_outputs.data()),
        "ONNX Runtime");
    // Owned at once, so that every output is released whatever happens next.
    std::vector<ort::OwnedValue> outputs;
    for (ort::Value* value : raw_outputs) outputs.emplace_back(&api_, value);
    if (!run.ok()) return absl::InternalError(run.message());
    core::TensorMap result;
    for (size_t i = 0; i < outputs.size(); ++i) {
      ASSIGN_OR_RETURN(result[config_.outputs[i].name],
                       FromValue(std::move(outputs[i]), config_.outputs[i], ordered.batch));
    }
    return result;
  }

 private:
  absl::StatusOr<ort::OwnedValue> ToValue(const core::Tensor& input, const core::TensorSpec& spec,
                                          bool batched) {
    const core::Shape shape = ModelShape(input, spec, batched);
    const std::string context = absl::StrCat("input '", spec.name, "'");
    ort::OwnedValue value;
    if (spec.type != core::DataType::kBytes) {
      // ONNX Runtime reads the caller's bytes where they are; it never writes to an input.
      void* data = const_cast<char*>(input.bytes().data());
      RETURN_IF_ERROR(ort::ToStatus(
          api_,
          api_.CreateTensorWithDataAsOrtValue(memory_.get(), data, input.bytes().size(),
                                              shape.data(), shape.size(),
                                              ToElementType(spec.type), value.out(&api_)),
          context));
      return value;
    }
    ASSIGN_OR_RETURN(const std::vector<absl::string_view> elements,
                     core::SplitBytesElements(input.bytes()));
    RETURN_IF_ERROR(ort::ToStatus(
        api_,
        api_.CreateTensorAsOrtValue(allocator_, shape.data(), shape.size(),
                                    ort::ElementType::kString, value.out(&api_)),
        context));
    for (size_t i = 0; i < elements.size(); ++i) {
      char* buffer = nullptr;
      RETURN_IF_ERROR(ort::ToStatus(
          api_,
          api_.GetResizedStringTensorElementBuffer(value.get(), i, elements[i].size(), &buffer),
          context));
      if (!elements[i].empty()) std::memcpy(buffer, elements[i].data(), elements[i].size());
    }
    return value;
  }

  absl::StatusOr<core::Tensor> FromValue(ort::OwnedValue value, const core::TensorSpec& spec,
                                         std::optional<int64_t> batch) {
    const std::string what = absl::StrCat("output '", spec.name, "'");
    ort::OnnxType kind = ort::OnnxType::kUnknown;
    RETURN_IF_ERROR(ort::ToStatus(api_, api_.GetValueType(value.get(), &kind), what));
    if (kind != ort::OnnxType::kTensor) {
      return absl::InternalError(absl::StrCat(what, " is ", OnnxTypeName(kind), ", not a tensor"));
    }
    ort::OwnedTensorInfo info;
    RETURN_IF_ERROR(
        ort::ToStatus(api_, api_.GetTensorTypeAndShape(value.get(), info.out(&api_)), what));
    ort::ElementType element = ort::ElementType::kUndefined;
    RETURN_IF_ERROR(ort::ToStatus(api_, api_.GetTensorElementType(info.get(), &element), what));
    if (FromElementType(element) != spec.type) {
      return absl::InternalError(absl::StrCat(what, " has datatype ", ElementTypeName(element),
                                              " but the config declares ",
                                              core::DataTypeName(spec.type)));
    }
    size_t rank = 0;
    RETURN_IF_ERROR(ort::ToStatus(api_, api_.GetDimensionsCount(info.get(), &rank), what));
    core::Shape shape(rank);
    RETURN_IF_ERROR(ort::ToStatus(api_, api_.GetDimensions(info.get(), shape.data(), rank), what));
    // The API shape: the batch, then the config's dims (an item reshape undone).
    core::Shape api_shape;
    api_shape.reserve(spec.dims.size() + 1);
    if (batch.has_value()) api_shape.push_back(*batch);
    for (int64_t dim : spec.dims) api_shape.push_back(dim);
    if (!spec.reshape.has_value()) {
      bool matches = api_shape.size() == shape.size();
      for (size_t i = 0; matches && i < shape.size(); ++i) {
        matches = api_shape[i] == -1 || api_shape[i] == shape[i];
      }
      if (!matches) {
        return absl::InternalError(absl::StrCat(what, " has shape ", core::ShapeToString(shape),
                                                " but the config expects ",
                                                core::ShapeToString(api_shape)));
      }
      api_shape = shape;
    } else if (std::find(api_shape.begin(), api_shape.end(), -1) != api_shape.end() ||
               core::ElementCount(api_shape) != core::ElementCount(shape)) {
      return absl::InternalError(absl::StrCat(what, " has shape ", core::ShapeToString(shape),
                                              ", which cannot be reshaped to ",
                                              core::ShapeToString(api_shape)));
    }
    if (spec.type == core::DataType::kBytes) return StringTensor(value, std::move(api_shape), what);
    void* data = nullptr;
    RETURN_IF_ERROR(ort::ToStatus(api_, api_.GetTensorMutableData(value.get(), &data), what));
    const int64_t count = core::ElementCount(api_shape);
    const absl::string_view bytes(static_cast<const char*>(data),
                                  static_cast<size_t>(count) * core::DataTypeSize(spec.type));
    // The tensor keeps the OrtValue, whose buffer it views, until its last copy is gone.
    auto owner = std::make_shared<ort::OwnedValue>(std::move(value));
    return core::Tensor::Viewing(spec.type, std::move(api_shape), bytes, std::move(owner));
  }

  // A string tensor as BYTES (each element length-prefixed).
  absl::StatusOr<core::Tensor> StringTensor(const ort::OwnedValue& value, core::Shape shape,
                                            const std::string& what) {
    const size_t count = static_cast<size_t>(core::ElementCount(shape));
    size_t length = 0;
    RETURN_IF_ERROR(
        ort::ToStatus(api_, api_.GetStringTensorDataLength(value.get(), &length), what));
    std::string content(length, '\0');
    std::vector<size_t> offsets(count);
    if (count > 0) {
      RETURN_IF_ERROR(ort::ToStatus(
          api_,
          api_.GetStringTensorContent(value.get(), content.data(), length, offsets.data(), count),
          what));
    }
    std::string bytes;
    bytes.reserve(length + 4 * count);
    for (size_t i = 0; i < count; ++i) {
      const size_t end = i + 1 < count ? offsets[i + 1] : length;
      core::AppendBytesElement(absl::string_view(content).substr(offsets[i], end - offsets[i]),
                               bytes);
    }
    return core::Tensor::Owning(core::DataType::kBytes, std::move(shape), std::move(bytes));
  }

  const ort::Api& api_;
  const core::ModelConfig config_;
  ort::OwnedSession session_;
  ort::OwnedMemoryInfo memory_;
  ort::Allocator* const allocator_;
  std::vector<const char*> input_names_;   // views of config_'s names, in config order
  std::vector<const char*> output_names_;
};

// The session of `version_dir`'s model, through the optimized-model cache when the config names
// one (parameter optimized_model_file, relative to the version folder): a cache file not older
// than model.onnx is loaded as it is, with no optimization again; otherwise model.onnx is
// optimized and ONNX Runtime writes the result there for the next load. A cache that cannot
// be read or written is skipped with a warning: it only saves time.
absl::StatusOr<ort::OwnedSession> OpenCached(const Runtime& runtime,
                                             const core::ModelConfig& config,
                                             const std::filesystem::path& version_dir,
                                             SessionSettings settings) {
  ASSIGN_OR_RETURN(const std::filesystem::path model,
                   ModelFile(config.proto, version_dir, kOnnxModelFile));
  const std::optional<std::string> cache_name = config.Parameter(kOptimizedFileParameter);
  if (!cache_name.has_value() || cache_name->empty()) return OpenSession(runtime, model, settings);
  const std::filesystem::path cache = version_dir / *cache_name;
  std::error_code error;
  const auto cache_time = std::filesystem::last_write_time(cache, error);
  if (!error && cache_time >= std::filesystem::last_write_time(model, error) && !error) {
    SessionSettings cached = settings;
    cached.optimization = ort::GraphOptimizationLevel::kDisableAll;
    absl::StatusOr<ort::OwnedSession> session = OpenSession(runtime, cache, cached);
    if (session.ok()) return session;
    spdlog::warn("model '{}': the optimized model {} did not load ({}); optimizing {} again",
                 config.name, cache.string(), session.status().message(), model.string());
  }
  settings.save_optimized = cache;
  absl::StatusOr<ort::OwnedSession> session = OpenSession(runtime, model, settings);
  if (session.ok()) return session;
  settings.save_optimized.clear();
  absl::StatusOr<ort::OwnedSession> uncached = OpenSession(runtime, model, settings);
  if (uncached.ok()) {
    spdlog::warn("model '{}': could not write the optimized model {} ({}); loaded without it",
                 config.name, cache.string(), session.status().message());
  }
  return uncached;
}

}  // namespace

OnnxBackend::OnnxBackend(std::string library)
    : library_(library.empty() ? common::RuntimeLibrary(MODELD_ONNXRUNTIME_LIBRARY)
                             : std::move(library)) {}

bool OnnxBackend::ServesWithoutConfig(const std::filesystem::path& version_dir) {
  std::error_code error;
  return std::filesystem::is_regular_file(version_dir / kOnnxModelFile, error);
}

absl::Status OnnxBackend::CompleteConfig(const std::filesystem::path& version_dir,
                                         inference::ModelConfig& config) {
  ASSIGN_OR_RETURN(const Runtime* runtime, GetRuntime(library_));
  // One thread and no graph rewriting: the session only describes the model here.
  SessionSettings settings;
  settings.optimization = ort::GraphOptimizationLevel::kDisableAll;
  ASSIGN_OR_RETURN(const std::filesystem::path model,
                   ModelFile(config, version_dir, kOnnxModelFile));
  ASSIGN_OR_RETURN(ort::OwnedSession session, OpenSession(*runtime, model, settings));
  ASSIGN_OR_RETURN(const FileTensors file, DescribeSession(*runtime->api, session.get()));
  return CompleteConfigFromTensors(file, config);
}

absl::StatusOr<std::unique_ptr<Model>> OnnxBackend::Load(const core::ModelConfig& config,
                                                         const std::filesystem::path& version_dir) {
  ASSIGN_OR_RETURN(const SessionSettings settings, SettingsFor(config));
  ASSIGN_OR_RETURN(const Runtime* runtime, GetRuntime(library_));
  const ort::Api& api = *runtime->api;
  ASSIGN_OR_RETURN(ort::OwnedSession session, OpenCached(*runtime, config, version_dir, settings));
  // A stated config that leaves an output out is served; one the model does not have is not.
  ASSIGN_OR_RETURN(const FileTensors file, DescribeSession(api, session.get()));
  inference::ModelConfig checked = config.proto;
  RETURN_IF_ERROR(CompleteConfigFromTensors(file, checked));
  ort::OwnedMemoryInfo memory;
  RETURN_IF_ERROR(ort::ToStatus(
      api, api.CreateCpuMemoryInfo(ort::AllocatorType::kArena, ort::MemType::kDefault,
                                   memory.out(&api)),
      "ONNX Runtime's CPU memory"));
  ort::Allocator* allocator = nullptr;
  RETURN_IF_ERROR(ort::ToStatus(api, api.GetAllocatorWithDefaultOptions(&allocator),
                                "ONNX Runtime's allocator"));
  return std::make_unique<OnnxModel>(*runtime, config, std::move(session), std::move(memory),
                                     allocator);
}

}  // namespace modeld::backend
