#include "transport/kserve/codec.h"

#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "core/model_version.h"

namespace modeld::transport::kserve {
namespace {

using core::DataType;
using inference::InferTensorContents;

// The InferTensorContents field that carries a datatype's values; empty for FP16, which has
// none and must travel raw.
absl::string_view TypedField(DataType type) {
  switch (type) {
    case DataType::kBool:
      return "bool_contents";
    case DataType::kInt8:
    case DataType::kInt16:
    case DataType::kInt32:
      return "int_contents";
    case DataType::kInt64:
      return "int64_contents";
    case DataType::kUint8:
    case DataType::kUint16:
    case DataType::kUint32:
      return "uint_contents";
    case DataType::kUint64:
      return "uint64_contents";
    case DataType::kFp32:
      return "fp32_contents";
    case DataType::kFp64:
      return "fp64_contents";
    case DataType::kBytes:
      return "bytes_contents";
    case DataType::kFp16:
      return "";
  }
  return "";
}

// (field name, value count) of every non-empty field.
std::vector<std::pair<absl::string_view, int>> FilledFields(const InferTensorContents& c) {
  std::vector<std::pair<absl::string_view, int>> filled;
  auto note = [&](absl::string_view name, int size) {
    if (size > 0) filled.emplace_back(name, size);
  };
  note("bool_contents", c.bool_contents_size());
  note("int_contents", c.int_contents_size());
  note("int64_contents", c.int64_contents_size());
  note("uint_contents", c.uint_contents_size());
  note("uint64_contents", c.uint64_contents_size());
  note("fp32_contents", c.fp32_contents_size());
  note("fp64_contents", c.fp64_contents_size());
  note("bytes_contents", c.bytes_contents_size());
  return filled;
}

// Appends `values` as little-endian `Element`s, refusing values that do not fit.
template <typename Element, typename Values>
absl::Status AppendAs(const Values& values, absl::string_view input, DataType type,
                      std::string& out) {
  out.reserve(out.size() + values.size() * sizeof(Element));
  for (int i = 0; i < values.size(); ++i) {
    const auto value = values.Get(i);
    if constexpr (std::is_integral_v<Element> && !std::is_same_v<Element, bool> &&
                  sizeof(Element) < sizeof(value)) {
      if (!std::in_range<Element>(value)) {
        return absl::InvalidArgumentError(absl::StrCat("input '", input, "' value ", value,
                                                       " at index ", i, " does not fit ",
                                                       core::DataTypeName(type)));
      }
    }
    const Element element = static_cast<Element>(value);
    out.append(reinterpret_cast<const char*>(&element), sizeof(Element));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> TypedToBytes(const InferTensorContents& c, absl::string_view input,
                                         DataType type) {
  std::string out;
  absl::Status status;
  switch (type) {
    case DataType::kBool:
      status = AppendAs<bool>(c.bool_contents(), input, type, out);
      break;
    case DataType::kInt8:
      status = AppendAs<int8_t>(c.int_contents(), input, type, out);
      break;
    case DataType::kInt16:
      status = AppendAs<int16_t>(c.int_contents(), input, type, out);
      break;
    case DataType::kInt32:
      status = AppendAs<int32_t>(c.int_contents(), input, type, out);
      break;
    case DataType::kInt64:
      status = AppendAs<int64_t>(c.int64_contents(), input, type, out);
      break;
    case DataType::kUint8:
      status = AppendAs<uint8_t>(c.uint_contents(), input, type, out);
      break;
    case DataType::kUint16:
      status = AppendAs<uint16_t>(c.uint_contents(), input, type, out);
      break;
    case DataType::kUint32:
      status = AppendAs<uint32_t>(c.uint_contents(), input, type, out);
      break;
    case DataType::kUint64:
      status = AppendAs<uint64_t>(c.uint64_contents(), input, type, out);
      break;
    case DataType::kFp32:
      status = AppendAs<float>(c.fp32_contents(), input, type, out);
      break;
    case DataType::kFp64:
      status = AppendAs<double>(c.fp64_contents(), input, type, out);
      break;
    case DataType::kBytes:
      for (const std::string& element : c.bytes_contents()) core::AppendBytesElement(element, out);
      break;
    case DataType::kFp16:
      break;  // refused by the caller: FP16 has no typed field
  }
  RETURN_IF_ERROR(status);
  return out;
}

absl::StatusOr<core::Tensor> DecodeTyped(const inference::ModelInferRequest::InferInputTensor& in,
                                         DataType type, core::Shape shape) {
  const absl::string_view field = TypedField(type);
  if (field.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", in.name(), "' is ", core::DataTypeName(type),
                     ", which has no typed contents field; send it in raw_input_contents"));
  }
  const auto filled = FilledFields(in.contents());
  int count = 0;
  for (const auto& [name, size] : filled) {
    if (name != field) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", in.name(), "' is ", core::DataTypeName(type),
                       ", whose values go in ", field, ", but ", name, " is set"));
    }
    count = size;
  }
  const int64_t elements = core::ElementCount(shape);
  if (count != elements) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", in.name(), "' has ", count, " values in ", field, " but its shape ",
                     core::ShapeToString(shape), " needs ", elements));
  }
  ASSIGN_OR_RETURN(std::string bytes, TypedToBytes(in.contents(), in.name(), type));
  return core::Tensor::Owning(type, std::move(shape), std::move(bytes));
}

// An integer request parameter (int64_param or uint64_param), or nullopt when absent.
absl::StatusOr<std::optional<uint64_t>> UnsignedParameter(
    const google::protobuf::Map<std::string, inference::InferParameter>& parameters,
    absl::string_view name) {
  auto it = parameters.find(std::string(name));
  if (it == parameters.end()) return std::nullopt;
  const inference::InferParameter& value = it->second;
  if (value.has_uint64_param()) return value.uint64_param();
  if (value.has_int64_param() && value.int64_param() >= 0) {
    return static_cast<uint64_t>(value.int64_param());
  }
  return absl::InvalidArgumentError(
      absl::StrCat("parameter '", name, "' must be a non-negative integer"));
}

absl::Status DecodeParameters(const inference::ModelInferRequest& request,
                              core::InferRequest& out) {
  ASSIGN_OR_RETURN(std::optional<uint64_t> priority,
                   UnsignedParameter(request.parameters(), "priority"));
  out.priority = priority.value_or(0);
  ASSIGN_OR_RETURN(std::optional<uint64_t> timeout_us,
                   UnsignedParameter(request.parameters(), "timeout"));
  if (timeout_us.has_value()) out.timeout = absl::Microseconds(*timeout_us);
  return absl::OkStatus();
}

absl::Status DecodeOutputs(const inference::ModelInferRequest& request, core::InferRequest& out) {
  for (const auto& output : request.outputs()) {
    if (output.parameters().contains("classification")) {
      return absl::UnimplementedError(absl::StrCat(
          "output '", output.name(), "' asks for classification, which modeld does not offer"));
    }
    out.requested_outputs.push_back(output.name());
  }
  return absl::OkStatus();
}

// Decodes `tensors` into `out`; with `raw`, tensor i's bytes are raw[raw_offset + i] (viewed,
// not copied). `kind` ("input", "target") names them in messages.
absl::Status DecodeTensors(
    absl::string_view kind,
    const google::protobuf::RepeatedPtrField<inference::ModelInferRequest::InferInputTensor>&
        tensors,
    bool raw, const google::protobuf::RepeatedPtrField<std::string>& raw_contents, int raw_offset,
    core::TensorMap& out) {
  for (int i = 0; i < tensors.size(); ++i) {
    const auto& in = tensors.Get(i);
    const std::optional<DataType> type = core::DataTypeFromName(in.datatype());
    if (!type.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat(kind, " '", in.name(), "' has unknown datatype '", in.datatype(), "'"));
    }
    core::Shape shape(in.shape().begin(), in.shape().end());
    if (core::ElementCount(shape) < 0) {
      return absl::InvalidArgumentError(absl::StrCat(kind, " '", in.name(), "' has shape ",
                                                     core::ShapeToString(shape),
                                                     " with a negative or too large dimension"));
    }
    const bool typed = !FilledFields(in.contents()).empty();
    core::Tensor tensor;
    if (raw) {
      if (typed) {
        return absl::InvalidArgumentError(absl::StrCat(
            kind, " '", in.name(),
            "' sets contents while the request also uses raw_input_contents; send every tensor "
            "one way"));
      }
      tensor =
          core::Tensor::Viewing(*type, std::move(shape), raw_contents.Get(raw_offset + i), nullptr);
    } else {
      ASSIGN_OR_RETURN(tensor, DecodeTyped(in, *type, std::move(shape)));
    }
    if (!out.emplace(in.name(), std::move(tensor)).second) {
      return absl::InvalidArgumentError(absl::StrCat(kind, " '", in.name(), "' appears twice"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<core::InferRequest> DecodeInferRequest(const inference::ModelInferRequest& request) {
  core::InferRequest out;
  if (request.model_name().empty()) return absl::InvalidArgumentError("model_name is empty");
  out.model_name = request.model_name();
  ASSIGN_OR_RETURN(out.model_version, core::ParseModelVersion(request.model_version()));
  out.id = request.id();

  const bool raw = request.raw_input_contents_size() > 0;
  if (raw && request.raw_input_contents_size() != request.inputs_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw_input_contents has ", request.raw_input_contents_size(),
                     " entries but the request has ", request.inputs_size(),
                     " inputs; send one entry per input, in order"));
  }
  RETURN_IF_ERROR(
      DecodeTensors("input", request.inputs(), raw, request.raw_input_contents(), 0, out.inputs));
  RETURN_IF_ERROR(DecodeParameters(request, out));
  RETURN_IF_ERROR(DecodeOutputs(request, out));
  return out;
}

void EncodeInferResponse(const core::InferResponse& response, inference::ModelInferResponse* out) {
  out->set_model_name(response.model_name);
  out->set_model_version(absl::StrCat(response.model_version));
  out->set_id(response.id);
  for (const core::NamedTensor& output : response.outputs) {
    auto* tensor = out->add_outputs();
    tensor->set_name(output.name);
    tensor->set_datatype(std::string(core::DataTypeName(output.tensor.type())));
    for (int64_t dim : output.tensor.shape()) tensor->add_shape(dim);
    const absl::string_view bytes = output.tensor.bytes();
    out->add_raw_output_contents()->assign(bytes.data(), bytes.size());
  }
}

absl::StatusOr<core::TrainRequest> DecodeTrainRequest(
    const modeld::training::TrainRequest& request) {
  core::TrainRequest out;
  if (request.model_name().empty()) return absl::InvalidArgumentError("model_name is empty");
  out.model_name = request.model_name();
  ASSIGN_OR_RETURN(out.model_version, core::ParseModelVersion(request.model_version()));
  out.id = request.id();
  const bool raw = request.raw_input_contents_size() > 0;
  const int tensors = request.inputs_size() + request.targets_size();
  if (raw && request.raw_input_contents_size() != tensors) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw_input_contents has ", request.raw_input_contents_size(),
                     " entries but the request has ", request.inputs_size(), " inputs and ",
                     request.targets_size(),
                     " targets; send one entry per input and then one per target, in order"));
  }
  RETURN_IF_ERROR(
      DecodeTensors("input", request.inputs(), raw, request.raw_input_contents(), 0, out.inputs));
  RETURN_IF_ERROR(DecodeTensors("target", request.targets(), raw, request.raw_input_contents(),
                                request.inputs_size(), out.targets));
  return out;
}

void EncodeTrainResponse(const core::TrainResponse& response,
                         modeld::training::TrainResponse* out) {
  out->set_model_name(response.model_name);
  out->set_model_version(std::to_string(response.model_version));
  out->set_id(response.id);
  out->set_step(static_cast<uint64_t>(response.step));
  out->set_loss(response.loss);
  out->set_checkpoint_step(static_cast<uint64_t>(response.checkpoint_step));
}

}  // namespace modeld::transport::kserve
