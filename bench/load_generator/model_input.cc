#include "load_generator/model_input.h"

#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace modeld::bench {
namespace {

absl::Status FromGrpc(const grpc::Status& status, absl::string_view what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

// Bytes per element; 0 for BYTES (variable) and -1 for an unknown datatype.
int ElementSize(absl::string_view datatype) {
  static const auto* sizes = new std::map<std::string, int, std::less<>>{
      {"BOOL", 1},   {"UINT8", 1}, {"INT8", 1},   {"UINT16", 2}, {"INT16", 2},
      {"FP16", 2},   {"BF16", 2},  {"UINT32", 4}, {"INT32", 4},  {"FP32", 4},
      {"UINT64", 8}, {"INT64", 8}, {"FP64", 8},   {"BYTES", 0}};
  auto it = sizes->find(datatype);
  return it == sizes->end() ? -1 : it->second;
}

template <typename T>
void Append(std::string& out, T value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(value));  // little-endian hosts
}

std::string RandomBytes(absl::string_view datatype, int64_t count, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> real(-1.0f, 1.0f);
  std::string out;
  const auto each = [&](auto make) {
    for (int64_t i = 0; i < count; ++i) Append(out, make());
  };
  if (datatype == "FP32") {
    each([&] { return real(rng); });
  } else if (datatype == "FP64") {
    each([&] { return static_cast<double>(real(rng)); });
  } else if (datatype == "FP16") {
    each([&] { return static_cast<uint16_t>(0x3800 | (rng() & 0x3ff)); });  // [0.5, 1)
  } else if (datatype == "BF16") {
    each([&] { return static_cast<uint16_t>(0x3f00 | (rng() & 0x7f)); });  // [0.5, 1)
  } else if (datatype == "BOOL") {
    each([&] { return static_cast<uint8_t>(rng() & 1); });
  } else if (datatype == "BYTES") {
    for (int64_t i = 0; i < count; ++i) {
      Append(out, static_cast<uint32_t>(16));
      for (int c = 0; c < 16; ++c) out.push_back(static_cast<char>('a' + rng() % 26));
    }
  } else {
    // Integers in [0, 100), little-endian at the type's width.
    const int size = ElementSize(datatype);
    for (int64_t i = 0; i < count; ++i) {
      const uint64_t value = rng() % 100;
      out.append(reinterpret_cast<const char*>(&value), size);
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::map<std::string, std::vector<int64_t>>> ParseShapes(const std::string& text) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (absl::string_view entry : absl::StrSplit(text, ';', absl::SkipEmpty())) {
    std::vector<absl::string_view> parts = absl::StrSplit(entry, absl::MaxSplits(':', 1));
    if (parts.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("--shape entry '", entry, "' is not NAME:DIMS"));
    }
    std::vector<int64_t>& dims = shapes[std::string(parts[0])];
    for (absl::string_view dim : absl::StrSplit(parts[1], ',')) {
      int64_t value = 0;
      if (!absl::SimpleAtoi(dim, &value) || value < 0) {
        return absl::InvalidArgumentError(absl::StrCat("--shape '", entry, "': bad dimension"));
      }
      dims.push_back(value);
    }
  }
  return shapes;
}

absl::StatusOr<PreparedRequest> PrepareRequest(inference::GRPCInferenceService::Stub& stub,
                                               const InputOptions& options) {
  inference::ModelMetadataResponse metadata;
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    inference::ModelMetadataRequest request;
    request.set_name(options.model);
    request.set_version(options.version);
    absl::Status status =
        FromGrpc(stub.ModelMetadata(&context, request, &metadata), "ModelMetadata");
    if (!status.ok()) return status;
  }
  int64_t max_batch_size = 0;
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    inference::ModelConfigRequest request;
    request.set_name(options.model);
    request.set_version(options.version);
    inference::ModelConfigResponse config;
    absl::Status status = FromGrpc(stub.ModelConfig(&context, request, &config), "ModelConfig");
    if (!status.ok()) return status;
    max_batch_size = config.config().max_batch_size();
  }
  if (max_batch_size == 0 && options.batch != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", options.model, "' has no batch dimension; --batch must be 1"));
  }
  if (max_batch_size > 0 && options.batch > max_batch_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("--batch ", options.batch, " exceeds max_batch_size ", max_batch_size));
  }

  PreparedRequest prepared;
  prepared.batch = max_batch_size > 0 ? options.batch : 1;
  prepared.request.set_model_name(options.model);
  prepared.request.set_model_version(options.version);
  std::mt19937_64 rng(options.seed);
  std::vector<std::string> descriptions;
  for (const auto& input : metadata.inputs()) {
    std::vector<int64_t> dims(input.shape().begin(), input.shape().end());
    if (max_batch_size > 0 && !dims.empty()) dims.erase(dims.begin());
    auto given = options.shapes.find(input.name());
    if (given != options.shapes.end()) dims = given->second;
    int64_t elements = prepared.batch;
    for (int64_t dim : dims) {
      if (dim < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input '", input.name(),
            "' has a variable dimension; give it with --shape=", input.name(), ":D1,D2,..."));
      }
      elements *= dim;
    }
    if (ElementSize(input.datatype()) < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", input.name(), "' has unknown datatype ", input.datatype()));
    }
    if (max_batch_size > 0) dims.insert(dims.begin(), prepared.batch);
    auto* tensor = prepared.request.add_inputs();
    tensor->set_name(input.name());
    tensor->set_datatype(input.datatype());
    for (int64_t dim : dims) tensor->add_shape(dim);
    std::string* raw = prepared.request.add_raw_input_contents();
    *raw = RandomBytes(input.datatype(), elements, rng);
    prepared.payload_bytes += static_cast<int64_t>(raw->size());
    descriptions.push_back(
        absl::StrCat(input.name(), " ", input.datatype(), " [", absl::StrJoin(dims, ", "), "]"));
  }
  prepared.description = absl::StrJoin(descriptions, "; ");
  return prepared;
}

}  // namespace modeld::bench
