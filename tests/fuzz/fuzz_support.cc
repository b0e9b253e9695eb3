#include "tests/fuzz/fuzz_support.h"

#include <cstdio>
#include <cstdlib>

#include "absl/status/statusor.h"
#include "batching/tensor_batch.h"
#include "core/data_type.h"
#include "core/request_validator.h"
#include "core/tensor.h"

namespace modeld::fuzz {
namespace {

// name, text: one model per row; each names its inputs as the seed corpora do.
constexpr const char* kConfigs[][2] = {
    {"linear", R"config(
       platform: "pytorch_libtorch" max_batch_size: 8
       input [ { name: "x" data_type: TYPE_FP32 dims: [ 3 ] } ]
       output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ])config"},
    {"identity", R"config(
       platform: "pytorch_libtorch"
       input [ { name: "x" data_type: TYPE_FP32 dims: [ -1, -1 ] } ]
       output [ { name: "y" data_type: TYPE_FP32 dims: [ -1, -1 ] } ])config"},
    {"int64_bool", R"config(
       platform: "pytorch_libtorch" max_batch_size: 4
       input [ { name: "ids" data_type: TYPE_INT64 dims: [ -1 ] },
               { name: "mask" data_type: TYPE_BOOL dims: [ -1 ] } ]
       output [ { name: "y" data_type: TYPE_INT64 dims: [ -1 ] } ])config"},
    {"strings", R"config(
       platform: "tensorflow_savedmodel" max_batch_size: 16
       input [ { name: "text" data_type: TYPE_STRING dims: [ 1 ] reshape: { shape: [ ] } } ]
       output [ { name: "n" data_type: TYPE_INT32 dims: [ 1 ] reshape: { shape: [ ] } } ])config"},
    {"narrow", R"config(
       platform: "pytorch_libtorch" max_batch_size: 2
       input [ { name: "i8" data_type: TYPE_INT8 dims: [ 2 ] },
               { name: "u16" data_type: TYPE_UINT16 dims: [ 2 ] },
               { name: "h" data_type: TYPE_FP16 dims: [ 2 ] },
               { name: "d" data_type: TYPE_FP64 dims: [ 2 ] } ]
       output [ { name: "y" data_type: TYPE_FP32 dims: [ 2 ] } ])config"},
};

std::vector<core::ModelConfig> ParseConfigs() {
  std::vector<core::ModelConfig> configs;
  for (const auto& [name, text] : kConfigs) {
    absl::StatusOr<core::ModelConfig> config = core::ParseModelConfig(text, name, name);
    if (!config.ok()) {
      std::fprintf(stderr, "fuzz config %s: %s\n", name, config.status().ToString().c_str());
      std::abort();
    }
    configs.push_back(*std::move(config));
  }
  return configs;
}

void Batch(const core::ModelConfig& config, const core::InferRequest& request) {
  if (config.max_batch_size == 0 || request.inputs.empty()) return;
  const int64_t rows = request.inputs.begin()->second.shape().at(0);
  const core::TensorMap batch =
      batching::Concatenate({&request.inputs, &request.inputs}, config.inputs);
  RequireExactBytes(batch, "batching::Concatenate");
  absl::StatusOr<std::vector<core::TensorMap>> parts = batching::Split(batch, {rows, rows});
  Require(parts.ok() && parts->size() == 2, "a concatenated batch splits back");
  for (const core::TensorMap& part : *parts) RequireExactBytes(part, "batching::Split");
}

}  // namespace

const std::vector<core::ModelConfig>& Configs() {
  static const std::vector<core::ModelConfig>* configs =
      new std::vector<core::ModelConfig>(ParseConfigs());
  return *configs;
}

void ValidateAndBatch(const core::ModelConfig& config, const core::InferRequest& request) {
  if (!core::ValidateRequest(config, request).ok()) return;
  // What ValidateRequest promises the batcher and the backends, which index bytes by shape.
  RequireExactBytes(request.inputs, "core::ValidateRequest");
  Batch(config, request);
}

void ValidateAndBatch(const core::InferRequest& request) {
  for (const core::ModelConfig& config : Configs()) ValidateAndBatch(config, request);
}

void ValidateTrain(const core::TrainRequest& request) {
  // As the service checks it (--max-request-elements); the limit returns early on huge shapes.
  (void)core::CheckRequestElements(request, 1 << 20);
  for (const core::ModelConfig& config : Configs()) {
    if (!core::ValidateTrainRequest(config, request).ok()) continue;
    RequireExactBytes(request.inputs, "core::ValidateTrainRequest (inputs)");
    RequireExactBytes(request.targets, "core::ValidateTrainRequest (targets)");
    Require(!request.targets.empty(), "core::ValidateTrainRequest: at least one target");
    if (config.max_batch_size > 0) {
      const int64_t rows = request.inputs.begin()->second.shape().at(0);
      for (const auto& [name, target] : request.targets) {
        Require(!target.shape().empty() && target.shape()[0] == rows,
                "core::ValidateTrainRequest: targets lead with the batch size");
      }
    }
  }
}

void Require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "broken contract: %s\n", what);
  std::abort();
}

void RequireExactBytes(const core::TensorMap& tensors, const char* contract) {
  for (const auto& [name, tensor] : tensors) {
    const int64_t count = core::ElementCount(tensor.shape());
    bool exact = count >= 0;
    if (exact && tensor.type() == core::DataType::kBytes) {
      absl::StatusOr<std::vector<absl::string_view>> elements =
          core::SplitBytesElements(tensor.bytes());
      exact = elements.ok() && static_cast<int64_t>(elements->size()) == count;
    } else if (exact) {
      exact =
          tensor.bytes().size() == static_cast<uint64_t>(count) * core::DataTypeSize(tensor.type());
    }
    if (!exact) {
      std::fprintf(stderr, "broken contract of %s: tensor '%s' of shape %s holds %zu bytes\n",
                   contract, name.c_str(), core::ShapeToString(tensor.shape()).c_str(),
                   tensor.bytes().size());
      std::abort();
    }
  }
}

}  // namespace modeld::fuzz
