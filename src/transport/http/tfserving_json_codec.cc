#include "transport/http/tfserving_json_codec.h"

#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "transport/http/json_tensor.h"
#include "transport/http/json_util.h"

namespace modeld::transport::http {
namespace {

using rapidjson::Value;

constexpr JsonElementRules kTfRules{.accept_b64 = true, .accept_fp16_numbers = true};

const Value* Member(const Value& object, const char* name) {
  auto it = object.FindMember(name);
  return it == object.MemberEnd() ? nullptr : &it->value;
}

bool IsB64Object(const Value& value) {
  return value.IsObject() && value.MemberCount() == 1 && value.HasMember("b64");
}

std::string InputNames(const core::ModelConfig& config) {
  return absl::StrJoin(config.inputs, ", ", [](std::string* out, const core::TensorSpec& spec) {
    absl::StrAppend(out, "'", spec.name, "'");
  });
}

// Checks that every key of `object` names an input of the model.
absl::Status CheckInputNames(const Value& object, const core::ModelConfig& config,
                             absl::string_view where) {
  for (const auto& member : object.GetObject()) {
    const absl::string_view name(member.name.GetString(), member.name.GetStringLength());
    if (config.FindInput(name) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(where, " names unknown input '", name,
                                                     "'; model '", config.name, "' has inputs ",
                                                     InputNames(config)));
    }
  }
  return absl::OkStatus();
}

// Row format: one tensor per input, the rows stacked along a new first dimension.
absl::Status DecodeRows(const Value& instances, const core::ModelConfig& config,
                        core::InferRequest& out) {
  if (config.max_batch_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", config.name,
        "' has no batch dimension (max_batch_size 0), so it cannot take \"instances\" (one "
        "item per batch row); send columnar \"inputs\" with full shapes instead"));
  }
  if (!instances.IsArray()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"instances\" must be a list, got ", JsonTypeName(instances)));
  }
  if (instances.Empty()) return absl::InvalidArgumentError("\"instances\" is an empty list");
  const bool named = instances[0].IsObject() && !IsB64Object(instances[0]);
  if (!named && config.inputs.size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model '", config.name, "' has inputs ", InputNames(config),
                     "; each item of \"instances\" must be an object naming them"));
  }
  for (size_t row = 0; row < instances.Size(); ++row) {
    const Value& item = instances[row];
    if (named != (item.IsObject() && !IsB64Object(item))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "instance ", row, " is ", named ? "not an object" : "an object", " while instance 0 is ",
          named ? "one" : "not; give every instance the same form"));
    }
    if (named) RETURN_IF_ERROR(CheckInputNames(item, config, absl::StrCat("instance ", row)));
  }
  for (const core::TensorSpec& spec : config.inputs) {
    std::string bytes;
    std::optional<core::Shape> row_shape;
    for (size_t row = 0; row < instances.Size(); ++row) {
      const Value* value = &instances[row];
      if (named) {
        value = Member(instances[row], spec.name.c_str());
        if (value == nullptr) {
          return absl::InvalidArgumentError(
              absl::StrCat("instance ", row, " has no input '", spec.name, "'"));
        }
      }
      ASSIGN_OR_RETURN(
          core::Shape shape,
          ReadNestedTensor(*value, spec.type, kTfRules,
                           absl::StrCat("input '", spec.name, "' of instance ", row), bytes));
      if (row_shape.has_value() && shape != *row_shape) {
        return absl::InvalidArgumentError(
            absl::StrCat("instances disagree on the shape of input '", spec.name,
                         "': instance 0 has ", core::ShapeToString(*row_shape), ", instance ", row,
                         " has ", core::ShapeToString(shape)));
      }
      row_shape = std::move(shape);
    }
    core::Shape shape = {static_cast<int64_t>(instances.Size())};
    shape.insert(shape.end(), row_shape->begin(), row_shape->end());
    out.inputs.emplace(spec.name,
                       core::Tensor::Owning(spec.type, std::move(shape), std::move(bytes)));
  }
  return absl::OkStatus();
}

absl::StatusOr<core::Tensor> DecodeColumn(const Value& value, const core::TensorSpec& spec) {
  std::string bytes;
  ASSIGN_OR_RETURN(
      core::Shape shape,
      ReadNestedTensor(value, spec.type, kTfRules, absl::StrCat("input '", spec.name, "'"), bytes));
  return core::Tensor::Owning(spec.type, std::move(shape), std::move(bytes));
}

// Columnar format: each input's tensor whole.
absl::Status DecodeColumns(const Value& inputs, const core::ModelConfig& config,
                           core::InferRequest& out) {
  if (inputs.IsObject() && !IsB64Object(inputs)) {
    RETURN_IF_ERROR(CheckInputNames(inputs, config, "\"inputs\""));
    for (const auto& member : inputs.GetObject()) {
      const core::TensorSpec* spec = config.FindInput(
          absl::string_view(member.name.GetString(), member.name.GetStringLength()));
      ASSIGN_OR_RETURN(core::Tensor tensor, DecodeColumn(member.value, *spec));
      if (!out.inputs.emplace(spec->name, std::move(tensor)).second) {
        return absl::InvalidArgumentError(absl::StrCat("input '", spec->name, "' appears twice"));
      }
    }
    return absl::OkStatus();
  }
  if (config.inputs.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("model '", config.name, "' has inputs ",
                                                   InputNames(config),
                                                   "; \"inputs\" must be an object naming them"));
  }
  ASSIGN_OR_RETURN(core::Tensor tensor, DecodeColumn(inputs, config.inputs[0]));
  out.inputs.emplace(config.inputs[0].name, std::move(tensor));
  return absl::OkStatus();
}

void WriteTensorShape(JsonWriter& writer, const core::Shape& shape) {
  writer.StartObject();
  writer.Key("dim");
  writer.StartArray();
  for (int64_t dim : shape) {
    writer.StartObject();
    writer.Key("size");
    WriteString(writer, absl::StrCat(dim));  // proto3 JSON writes int64 as a string
    writer.Key("name");
    writer.String("");
    writer.EndObject();
  }
  writer.EndArray();
  writer.Key("unknown_rank");
  writer.Bool(false);
  writer.EndObject();
}

void WriteTensorInfos(JsonWriter& writer, const std::vector<service::TensorMetadata>& tensors) {
  writer.StartObject();
  for (const service::TensorMetadata& tensor : tensors) {
    WriteSanitizedString(writer, tensor.name);
    writer.StartObject();
    writer.Key("dtype");
    WriteString(writer, TfDataTypeName(tensor.type));
    writer.Key("tensor_shape");
    WriteTensorShape(writer, tfserving::ShownSignatureShape(tensor));
    writer.Key("name");
    WriteSanitizedString(writer, tensor.name);
    writer.EndObject();
  }
  writer.EndObject();
}

}  // namespace

absl::string_view TfDataTypeName(core::DataType type) {
  return tensorflow::DataType_Name(core::DataTypeToTf(type));
}

absl::StatusOr<TfPredictRequest> DecodePredictRequest(absl::string_view body,
                                                      const core::ModelConfig& config,
                                                      int max_json_depth) {
  rapidjson::Document doc;
  RETURN_IF_ERROR(ParseJson(body, doc, max_json_depth));
  if (!doc.IsObject()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the predict request must be a JSON object, got ", JsonTypeName(doc)));
  }
  if (const Value* signature = Member(doc, "signature_name"); signature != nullptr) {
    if (!signature->IsString()) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"signature_name\" must be a string, got ", JsonTypeName(*signature)));
    }
    RETURN_IF_ERROR(tfserving::CheckSignature(
        absl::string_view(signature->GetString(), signature->GetStringLength()), config));
  }
  const Value* instances = Member(doc, "instances");
  const Value* inputs = Member(doc, "inputs");
  if ((instances == nullptr) == (inputs == nullptr)) {
    return absl::InvalidArgumentError(
        instances != nullptr
            ? "the request has both \"instances\" and \"inputs\"; send one of them"
            : "the request has neither \"instances\" (row format) nor \"inputs\" (columnar "
              "format)");
  }
  TfPredictRequest out;
  out.row_format = instances != nullptr;
  if (out.row_format) {
    RETURN_IF_ERROR(DecodeRows(*instances, config, out.request));
  } else {
    RETURN_IF_ERROR(DecodeColumns(*inputs, config, out.request));
  }
  tfserving::TakeScalarItems(config, out.request.inputs);
  return out;
}

absl::StatusOr<std::string> EncodePredictResponse(const core::InferResponse& response,
                                                  bool row_format,
                                                  const core::ModelConfig& config) {
  std::vector<TensorJsonWriter> writers;
  std::vector<core::Shape> shapes;  // as TensorFlow Serving shows them
  for (const core::NamedTensor& output : response.outputs) {
    shapes.push_back(tfserving::ShownOutputShape(config, output.name, output.tensor.shape()));
    const BytesStyle style =
        absl::EndsWith(output.name, "_bytes") ? BytesStyle::kB64 : BytesStyle::kStringOrB64;
    ASSIGN_OR_RETURN(
        TensorJsonWriter writer,
        TensorJsonWriter::Make(output.tensor, style, absl::StrCat("output '", output.name, "'")));
    writers.push_back(std::move(writer));
  }
  rapidjson::StringBuffer buffer;
  JsonWriter json(buffer);
  json.StartObject();
  const bool several = response.outputs.size() != 1;
  if (!row_format) {
    json.Key("outputs");
    if (several) json.StartObject();
    for (size_t i = 0; i < writers.size(); ++i) {
      if (several) WriteSanitizedString(json, response.outputs[i].name);
      writers[i].WriteNested(json, shapes[i], 0);
    }
    if (several) json.EndObject();
    json.EndObject();
    return BufferText(buffer);
  }
  // Row format: split every output along its first dimension.
  int64_t rows = -1;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const core::NamedTensor& output = response.outputs[i];
    const core::Shape& shape = shapes[i];
    if (shape.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("output '", output.name,
                       "' is a scalar, so it has no batch dimension to answer "
                       "\"instances\" row by row; send columnar \"inputs\" instead"));
    }
    if (rows >= 0 && shape[0] != rows) {
      return absl::InvalidArgumentError(
          absl::StrCat("output '", output.name, "' has shape ", core::ShapeToString(shape),
                       ", which does not share the batch dimension ", rows, " of output '",
                       response.outputs[0].name,
                       "' that an \"instances\" answer needs; send columnar "
                       "\"inputs\" instead"));
    }
    rows = shape[0];
  }
  json.Key("predictions");
  json.StartArray();
  for (int64_t row = 0; row < rows; ++row) {
    if (several) json.StartObject();
    for (size_t i = 0; i < writers.size(); ++i) {
      const core::Shape inner(shapes[i].begin() + 1, shapes[i].end());
      if (several) WriteSanitizedString(json, response.outputs[i].name);
      writers[i].WriteNested(json, inner, row * core::ElementCount(inner));
    }
    if (several) json.EndObject();
  }
  json.EndArray();
  json.EndObject();
  return BufferText(buffer);
}

std::string EncodeModelStatus(const std::vector<tfserving::VersionStatus>& versions) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  writer.Key("model_version_status");
  writer.StartArray();
  for (const tfserving::VersionStatus& version : versions) {
    writer.StartObject();
    writer.Key("version");
    WriteString(writer, absl::StrCat(version.version));
    writer.Key("state");
    WriteString(writer, tfserving::VersionStateName(version.state));
    writer.Key("status");
    writer.StartObject();
    writer.Key("error_code");
    WriteString(writer, absl::StatusCodeToString(version.status.code()));
    writer.Key("error_message");
    WriteSanitizedString(writer, version.status.message());
    writer.EndObject();
    writer.EndObject();
  }
  writer.EndArray();
  writer.EndObject();
  return BufferText(buffer);
}

std::string EncodeModelMetadata(const service::ModelMetadata& metadata, int64_t version,
                                absl::string_view signature) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  writer.Key("model_spec");
  writer.StartObject();
  writer.Key("name");
  WriteSanitizedString(writer, metadata.name);
  writer.Key("signature_name");
  writer.String("");
  writer.Key("version");
  WriteString(writer, absl::StrCat(version));
  writer.EndObject();
  writer.Key("metadata");
  writer.StartObject();
  writer.Key("signature_def");
  writer.StartObject();
  writer.Key("signature_def");
  writer.StartObject();
  WriteSanitizedString(writer, signature);
  writer.StartObject();
  writer.Key("inputs");
  WriteTensorInfos(writer, metadata.inputs);
  writer.Key("outputs");
  WriteTensorInfos(writer, metadata.outputs);
  writer.Key("method_name");
  writer.String(tfserving::kPredictMethod);
  writer.EndObject();
  writer.EndObject();
  writer.EndObject();
  writer.EndObject();
  writer.EndObject();
  return BufferText(buffer);
}

}  // namespace modeld::transport::http
