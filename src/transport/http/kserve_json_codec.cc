#include "transport/http/kserve_json_codec.h"

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "transport/http/json_tensor.h"
#include "transport/http/json_util.h"

namespace modeld::transport::http {
namespace {

using rapidjson::Value;

const Value* Member(const Value& object, const char* name) {
  auto it = object.FindMember(name);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

absl::Status WrongType(absl::string_view what, const char* expected, const Value& got) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, " must be ", expected, ", got ", JsonTypeName(got)));
}

// An optional member that must be an object.
absl::StatusOr<const Value*> OptionalObject(const Value& parent, const char* name,
                                            absl::string_view what) {
  const Value* value = Member(parent, name);
  if (value != nullptr && !value->IsObject()) return WrongType(what, "an object", *value);
  return value;
}

absl::StatusOr<std::optional<uint64_t>> UnsignedParameter(const Value* parameters, const char* name,
                                                          absl::string_view owner) {
  if (parameters == nullptr) return std::nullopt;
  const Value* value = Member(*parameters, name);
  if (value == nullptr) return std::nullopt;
  if (!value->IsUint64()) {
    return absl::InvalidArgumentError(absl::StrCat(owner, "parameter '", name,
                                                   "' must be a non-negative integer, got ",
                                                   JsonTypeName(*value)));
  }
  return value->GetUint64();
}

absl::StatusOr<std::optional<bool>> BoolParameter(const Value* parameters, const char* name,
                                                  absl::string_view owner) {
  if (parameters == nullptr) return std::nullopt;
  const Value* value = Member(*parameters, name);
  if (value == nullptr) return std::nullopt;
  if (!value->IsBool()) {
    return absl::InvalidArgumentError(absl::StrCat(
        owner, "parameter '", name, "' must be true or false, got ", JsonTypeName(*value)));
  }
  return value->GetBool();
}

absl::StatusOr<std::string> RequiredString(const Value& object, const char* name,
                                           absl::string_view what) {
  const Value* value = Member(object, name);
  if (value == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has no \"", name, "\""));
  }
  if (!value->IsString())
    return WrongType(absl::StrCat(what, " \"", name, "\""), "a string", *value);
  return std::string(value->GetString(), value->GetStringLength());
}

absl::StatusOr<core::Shape> ReadShape(const Value& input, absl::string_view what) {
  const Value* shape_json = Member(input, "shape");
  if (shape_json == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has no \"shape\""));
  }
  if (!shape_json->IsArray()) {
    return WrongType(absl::StrCat(what, " \"shape\""), "an array of integers", *shape_json);
  }
  core::Shape shape;
  for (const Value& dim : shape_json->GetArray()) {
    if (dim.IsInt64() && dim.GetInt64() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " has a negative dimension ", dim.GetInt64(), " in its shape"));
    }
    if (!dim.IsInt64()) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " \"shape\" must hold non-negative integers, got ",
          dim.IsNumber() ? "a number that is not a 64-bit integer" : JsonTypeName(dim)));
    }
    shape.push_back(dim.GetInt64());
  }
  if (core::ElementCount(shape) < 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has shape ", core::ShapeToString(shape),
                                                   ", whose element count is too large"));
  }
  return shape;
}

// Reads one tensor of the array `list` ("inputs" or "targets"); binary tensors take the next
// bytes of `binary` from `*offset`.
absl::StatusOr<std::pair<std::string, core::Tensor>> ReadInput(
    const Value& input, absl::string_view list, size_t index, bool has_binary_section,
    absl::string_view binary, size_t* offset, const std::shared_ptr<const void>& owner) {
  const std::string where = absl::StrCat(list, "[", index, "]");
  if (!input.IsObject()) return WrongType(where, "an object", input);
  ASSIGN_OR_RETURN(std::string name, RequiredString(input, "name", where));
  const std::string what = absl::StrCat(list == "targets" ? "target" : "input", " '", name, "'");
  ASSIGN_OR_RETURN(std::string datatype, RequiredString(input, "datatype", what));
  const std::optional<core::DataType> type = core::DataTypeFromName(datatype);
  if (!type.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " has unknown datatype '", datatype,
        "'; use BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64 "
        "or BYTES"));
  }
  ASSIGN_OR_RETURN(core::Shape shape, ReadShape(input, what));
  ASSIGN_OR_RETURN(const Value* parameters,
                   OptionalObject(input, "parameters", absl::StrCat(what, " \"parameters\"")));
  ASSIGN_OR_RETURN(std::optional<uint64_t> binary_size,
                   UnsignedParameter(parameters, "binary_data_size", absl::StrCat(what, " ")));
  const Value* data = Member(input, "data");
  if (binary_size.has_value()) {
    if (data != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " has both \"data\" and parameter binary_data_size; send one"));
    }
    if (!has_binary_section) {
      return absl::InvalidArgumentError(
          absl::StrCat(what,
                       " has parameter binary_data_size but the request has no "
                       "Inference-Header-Content-Length header to say where the JSON ends"));
    }
    if (const int64_t element_size = core::DataTypeSize(*type); element_size > 0) {
      // Checked here, overflow included, so a shape whose byte size wraps around int64 never
      // reaches the model with too few bytes.
      const int64_t elements = core::ElementCount(shape);
      if (elements > std::numeric_limits<int64_t>::max() / element_size) {
        return absl::InvalidArgumentError(absl::StrCat(
            what, " has shape ", core::ShapeToString(shape), ", whose byte size is too large"));
      }
      if (*binary_size != static_cast<uint64_t>(elements * element_size)) {
        return absl::InvalidArgumentError(absl::StrCat(
            what, " has binary_data_size ", *binary_size, " but shape ", core::ShapeToString(shape),
            " of ", datatype, " needs ", elements * element_size, " bytes"));
      }
    }
    if (*binary_size > binary.size() - *offset) {
      return absl::InvalidArgumentError(absl::StrCat(what, " has binary_data_size ", *binary_size,
                                                     " but only ", binary.size() - *offset,
                                                     " bytes of binary data remain in the body"));
    }
    core::Tensor tensor =
        core::Tensor::Viewing(*type, std::move(shape), binary.substr(*offset, *binary_size), owner);
    *offset += *binary_size;
    return std::make_pair(std::move(name), std::move(tensor));
  }
  if (data == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has neither \"data\" nor parameter binary_data_size"));
  }
  std::string bytes;
  ASSIGN_OR_RETURN(int64_t count, ReadFlatData(*data, *type, JsonElementRules{}, what, bytes));
  const int64_t elements = core::ElementCount(shape);
  if (count != elements) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has ", count, " values in \"data\" but its shape ",
                     core::ShapeToString(shape), " needs ", elements));
  }
  return std::make_pair(std::move(name),
                        core::Tensor::Owning(*type, std::move(shape), std::move(bytes)));
}

// A body's JSON header and the binary bytes after it (Inference-Header-Content-Length).
struct SplitBody {
  absl::string_view json;
  absl::string_view binary;
};

absl::StatusOr<SplitBody> SplitAtHeader(absl::string_view body,
                                        std::optional<absl::string_view> header_length) {
  if (!header_length.has_value()) return SplitBody{body, {}};
  uint64_t length = 0;
  const absl::string_view text = absl::StripAsciiWhitespace(*header_length);
  if (text.empty() || !absl::ascii_isdigit(text[0]) || !absl::SimpleAtoi(text, &length)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Inference-Header-Content-Length '", *header_length, "' is not a byte count"));
  }
  if (length == 0) {
    return absl::InvalidArgumentError(
        "Inference-Header-Content-Length 0 (a raw binary request without a JSON header) is "
        "not supported; send the JSON inference header first");
  }
  if (length > body.size()) {
    return absl::InvalidArgumentError(absl::StrCat("Inference-Header-Content-Length ", length,
                                                   " is larger than the body (", body.size(),
                                                   " bytes)"));
  }
  return SplitBody{body.substr(0, length), body.substr(length)};
}

// Reads the array `list` of tensors into `out`.
absl::Status ReadTensors(const Value& root, const char* list, bool required,
                         bool has_binary_section, absl::string_view binary, size_t* offset,
                         const std::shared_ptr<const void>& owner, core::TensorMap& out) {
  const Value* tensors = Member(root, list);
  if (tensors == nullptr) {
    if (!required) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("the request has no \"", list, "\""));
  }
  if (!tensors->IsArray()) return WrongType(absl::StrCat("\"", list, "\""), "an array", *tensors);
  for (size_t i = 0; i < tensors->Size(); ++i) {
    ASSIGN_OR_RETURN(auto tensor,
                     ReadInput((*tensors)[i], list, i, has_binary_section, binary, offset, owner));
    const std::string name = tensor.first;
    if (!out.emplace(std::move(tensor)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(absl::string_view(list) == "targets" ? "target" : "input", " '", name,
                       "' appears twice"));
    }
  }
  return absl::OkStatus();
}

absl::Status AllBinaryClaimed(absl::string_view binary, size_t offset) {
  if (offset == binary.size()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("the body has ", binary.size(),
                                                 " bytes after the JSON header but the tensors' "
                                                 "binary_data_size parameters add up to ",
                                                 offset));
}

absl::Status ReadRequestParameters(const Value& root, KServeInferRequest& out) {
  ASSIGN_OR_RETURN(const Value* parameters, OptionalObject(root, "parameters", "\"parameters\""));
  ASSIGN_OR_RETURN(std::optional<uint64_t> priority, UnsignedParameter(parameters, "priority", ""));
  out.request.priority = priority.value_or(0);
  ASSIGN_OR_RETURN(std::optional<uint64_t> timeout_us,
                   UnsignedParameter(parameters, "timeout", ""));
  if (timeout_us.has_value()) {
    out.request.timeout = absl::Microseconds(
        static_cast<int64_t>(std::min<uint64_t>(*timeout_us, std::numeric_limits<int64_t>::max())));
  }
  ASSIGN_OR_RETURN(std::optional<bool> binary_output,
                   BoolParameter(parameters, "binary_data_output", ""));
  out.format.binary_by_default = binary_output.value_or(false);
  return absl::OkStatus();
}

absl::Status ReadOutputs(const Value& root, KServeInferRequest& out) {
  const Value* outputs = Member(root, "outputs");
  if (outputs == nullptr) return absl::OkStatus();
  if (!outputs->IsArray()) return WrongType("\"outputs\"", "an array", *outputs);
  for (size_t i = 0; i < outputs->Size(); ++i) {
    const Value& output = (*outputs)[i];
    const std::string where = absl::StrCat("outputs[", i, "]");
    if (!output.IsObject()) return WrongType(where, "an object", output);
    ASSIGN_OR_RETURN(std::string name, RequiredString(output, "name", where));
    const std::string what = absl::StrCat("output '", name, "'");
    ASSIGN_OR_RETURN(const Value* parameters,
                     OptionalObject(output, "parameters", absl::StrCat(what, " \"parameters\"")));
    if (parameters != nullptr && parameters->HasMember("classification")) {
      return absl::UnimplementedError(
          absl::StrCat(what, " asks for classification, which modeld does not offer"));
    }
    ASSIGN_OR_RETURN(std::optional<bool> binary,
                     BoolParameter(parameters, "binary_data", absl::StrCat(what, " ")));
    if (binary.has_value()) out.format.binary[name] = *binary;
    out.request.requested_outputs.push_back(std::move(name));
  }
  return absl::OkStatus();
}

}  // namespace

bool OutputFormat::Binary(absl::string_view output) const {
  auto it = binary.find(output);
  return it != binary.end() ? it->second : binary_by_default;
}

absl::StatusOr<KServeInferRequest> DecodeInferRequest(
    absl::string_view body, std::optional<absl::string_view> header_length,
    std::shared_ptr<const void> owner, int max_json_depth) {
  ASSIGN_OR_RETURN(const SplitBody split, SplitAtHeader(body, header_length));
  const absl::string_view json = split.json;
  const absl::string_view binary = split.binary;
  rapidjson::Document doc;
  RETURN_IF_ERROR(ParseJson(json, doc, max_json_depth));
  if (!doc.IsObject()) return WrongType("the inference request", "a JSON object", doc);

  KServeInferRequest out;
  if (const Value* id = Member(doc, "id"); id != nullptr) {
    if (!id->IsString()) return WrongType("\"id\"", "a string", *id);
    out.request.id.assign(id->GetString(), id->GetStringLength());
  }
  RETURN_IF_ERROR(ReadRequestParameters(doc, out));

  size_t offset = 0;
  RETURN_IF_ERROR(ReadTensors(doc, "inputs", true, header_length.has_value(), binary, &offset,
                              owner, out.request.inputs));
  RETURN_IF_ERROR(AllBinaryClaimed(binary, offset));
  RETURN_IF_ERROR(ReadOutputs(doc, out));
  return out;
}

absl::StatusOr<core::TrainRequest> DecodeTrainRequest(
    absl::string_view body, std::optional<absl::string_view> header_length,
    std::shared_ptr<const void> owner, int max_json_depth) {
  ASSIGN_OR_RETURN(const SplitBody split, SplitAtHeader(body, header_length));
  rapidjson::Document doc;
  RETURN_IF_ERROR(ParseJson(split.json, doc, max_json_depth));
  if (!doc.IsObject()) return WrongType("the training request", "a JSON object", doc);
  core::TrainRequest out;
  if (const Value* id = Member(doc, "id"); id != nullptr) {
    if (!id->IsString()) return WrongType("\"id\"", "a string", *id);
    out.id.assign(id->GetString(), id->GetStringLength());
  }
  size_t offset = 0;
  RETURN_IF_ERROR(ReadTensors(doc, "inputs", true, header_length.has_value(), split.binary, &offset,
                              owner, out.inputs));
  RETURN_IF_ERROR(ReadTensors(doc, "targets", true, header_length.has_value(), split.binary,
                              &offset, owner, out.targets));
  RETURN_IF_ERROR(AllBinaryClaimed(split.binary, offset));
  return out;
}

std::string EncodeTrainResponse(const core::TrainResponse& response) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  writer.Key("model_name");
  WriteString(writer, response.model_name);
  writer.Key("model_version");
  WriteString(writer, absl::StrCat(response.model_version));
  if (!response.id.empty()) {
    writer.Key("id");
    WriteString(writer, response.id);
  }
  writer.Key("step");
  writer.Int64(response.step);
  writer.Key("loss");
  WriteDouble(writer, response.loss);
  writer.Key("checkpoint_step");
  writer.Int64(response.checkpoint_step);
  writer.EndObject();
  return BufferText(buffer);
}

absl::StatusOr<EncodedInferResponse> EncodeInferResponse(const core::InferResponse& response,
                                                         const OutputFormat& format) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  std::vector<absl::string_view> binary;
  writer.StartObject();
  writer.Key("model_name");
  WriteSanitizedString(writer, response.model_name);
  writer.Key("model_version");
  WriteString(writer, absl::StrCat(response.model_version));
  if (!response.id.empty()) {
    writer.Key("id");
    WriteSanitizedString(writer, response.id);
  }
  writer.Key("outputs");
  writer.StartArray();
  for (const core::NamedTensor& output : response.outputs) {
    const core::Tensor& tensor = output.tensor;
    writer.StartObject();
    writer.Key("name");
    WriteSanitizedString(writer, output.name);
    writer.Key("datatype");
    WriteString(writer, core::DataTypeName(tensor.type()));
    writer.Key("shape");
    writer.StartArray();
    for (int64_t dim : tensor.shape()) writer.Int64(dim);
    writer.EndArray();
    if (format.Binary(output.name) || tensor.type() == core::DataType::kFp16) {
      writer.Key("parameters");
      writer.StartObject();
      writer.Key("binary_data_size");
      writer.Uint64(tensor.bytes().size());
      writer.EndObject();
      binary.push_back(tensor.bytes());
    } else {
      ASSIGN_OR_RETURN(TensorJsonWriter values,
                       TensorJsonWriter::Make(tensor, BytesStyle::kString,
                                              absl::StrCat("output '", output.name, "'"),
                                              NonFiniteStyle::kString));
      writer.Key("data");
      values.WriteFlat(writer, 0, values.size());
    }
    writer.EndObject();
  }
  writer.EndArray();
  writer.EndObject();

  EncodedInferResponse encoded;
  size_t binary_bytes = 0;
  for (absl::string_view bytes : binary) binary_bytes += bytes.size();
  encoded.body.reserve(buffer.GetSize() + binary_bytes);
  encoded.body.assign(buffer.GetString(), buffer.GetSize());
  if (!binary.empty()) {
    encoded.header_length = buffer.GetSize();
    for (absl::string_view bytes : binary) encoded.body.append(bytes.data(), bytes.size());
  }
  return encoded;
}

}  // namespace modeld::transport::http
