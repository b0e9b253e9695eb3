#include "transport/http/kserve_rest.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "core/model_version.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "transport/http/json_util.h"
#include "transport/http/kserve_json_codec.h"
#include "transport/http/rest_util.h"

#ifndef MODELD_VERSION
#define MODELD_VERSION "dev"
#endif

namespace modeld::transport::http {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

void WriteTensors(JsonWriter& writer, const std::vector<service::TensorMetadata>& tensors) {
  writer.StartArray();
  for (const service::TensorMetadata& tensor : tensors) {
    writer.StartObject();
    writer.Key("name");
    WriteSanitizedString(writer, tensor.name);
    writer.Key("datatype");
    WriteString(writer, core::DataTypeName(tensor.type));
    writer.Key("shape");
    writer.StartArray();
    for (int64_t dim : tensor.shape) writer.Int64(dim);
    writer.EndArray();
    writer.EndObject();
  }
  writer.EndArray();
}

std::string ReadyBody(const char* key, bool ready, absl::string_view model = {}) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  if (!model.empty()) {
    writer.Key("name");
    WriteSanitizedString(writer, model);
  }
  writer.Key(key);
  writer.Bool(ready);
  writer.EndObject();
  return BufferText(buffer);
}

// Protobuf's JSON writes 64-bit integers as strings; Triton's config JSON has numbers, which
// its clients (perf_analyzer among them) read. Rewrites them in place, guided by `message`.
void Int64StringsToNumbers(rapidjson::Value& object, const Descriptor& message,
                           rapidjson::Document::AllocatorType& allocator) {
  for (auto& member : object.GetObject()) {
    const FieldDescriptor* field = message.FindFieldByName(member.name.GetString());
    if (field == nullptr) continue;
    auto fix = [&](rapidjson::Value& value) {
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && value.IsObject()) {
        const Descriptor& type = *field->message_type();
        if (field->is_map()) {
          const FieldDescriptor* map_value = type.FindFieldByName("value");
          if (map_value->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) return;
          for (auto& entry : value.GetObject()) {
            if (entry.value.IsObject()) {
              Int64StringsToNumbers(entry.value, *map_value->message_type(), allocator);
            }
          }
        } else {
          Int64StringsToNumbers(value, type, allocator);
        }
      } else if (value.IsString()) {
        int64_t signed_value = 0;
        uint64_t unsigned_value = 0;
        const absl::string_view text(value.GetString(), value.GetStringLength());
        if (field->cpp_type() == FieldDescriptor::CPPTYPE_INT64 &&
            absl::SimpleAtoi(text, &signed_value)) {
          value.SetInt64(signed_value);
        } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_UINT64 &&
                   absl::SimpleAtoi(text, &unsigned_value)) {
          value.SetUint64(unsigned_value);
        }
      }
    };
    if (member.value.IsArray()) {
      for (rapidjson::Value& item : member.value.GetArray()) fix(item);
    } else {
      fix(member.value);
    }
  }
}

}  // namespace

std::string ModelConfigJson(const inference::ModelConfig& config) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(config, &json, options).ok()) return "{}";
  rapidjson::Document doc;
  if (!ParseJson(json, doc).ok() || !doc.IsObject()) return json;
  Int64StringsToNumbers(doc, *inference::ModelConfig::descriptor(), doc.GetAllocator());
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  doc.Accept(writer);
  return BufferText(buffer);
}

void KServeRest::ServerLive(Reply reply) {
  const bool live = service_.Live();
  std::move(reply)(JsonResponse(ReadyBody("live", live), live ? 200 : 503));
}

void KServeRest::ServerReady(Reply reply) {
  const bool ready = service_.Ready();
  std::move(reply)(JsonResponse(ReadyBody("ready", ready), ready ? 200 : 503));
}

void KServeRest::ServerMetadata(Reply reply) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  writer.Key("name");
  writer.String("modeld");
  writer.Key("version");
  writer.String(MODELD_VERSION);
  writer.Key("extensions");
  writer.StartArray();
  for (const char* extension : kKServeExtensions) writer.String(extension);
  writer.EndArray();
  writer.EndObject();
  std::move(reply)(JsonResponse(BufferText(buffer)));
}

void KServeRest::ModelReady(absl::string_view model, absl::string_view version, Reply reply) {
  // A version that is not a number cannot be ready: health answers false, not an error.
  absl::StatusOr<std::optional<int64_t>> parsed = core::ParseModelVersion(version);
  const bool ready = parsed.ok() && service_.ModelReady(model, *parsed);
  std::move(reply)(JsonResponse(ReadyBody("ready", ready, model), ready ? 200 : 503));
}

void KServeRest::ModelMetadata(absl::string_view model, absl::string_view version, Reply reply) {
  absl::StatusOr<std::string> body = [&]() -> absl::StatusOr<std::string> {
    ASSIGN_OR_RETURN(std::optional<int64_t> parsed, core::ParseModelVersion(version));
    ASSIGN_OR_RETURN(service::ModelMetadata metadata, service_.Metadata(model, parsed));
    rapidjson::StringBuffer buffer;
    JsonWriter writer(buffer);
    writer.StartObject();
    writer.Key("name");
    WriteSanitizedString(writer, metadata.name);
    writer.Key("versions");
    writer.StartArray();
    for (int64_t v : metadata.versions) WriteString(writer, absl::StrCat(v));
    writer.EndArray();
    writer.Key("platform");
    WriteSanitizedString(writer, metadata.platform);
    writer.Key("inputs");
    WriteTensors(writer, metadata.inputs);
    writer.Key("outputs");
    WriteTensors(writer, metadata.outputs);
    writer.EndObject();
    return BufferText(buffer);
  }();
  std::move(reply)(body.ok() ? JsonResponse(*std::move(body)) : StatusResponse(body.status()));
}

void KServeRest::ModelConfig(absl::string_view model, absl::string_view version, Reply reply) {
  absl::StatusOr<std::string> body = [&]() -> absl::StatusOr<std::string> {
    ASSIGN_OR_RETURN(std::optional<int64_t> parsed, core::ParseModelVersion(version));
    ASSIGN_OR_RETURN(auto config, service_.Config(model, parsed));
    return ModelConfigJson(config->proto);
  }();
  std::move(reply)(body.ok() ? JsonResponse(*std::move(body)) : StatusResponse(body.status()));
}

void KServeRest::Infer(std::shared_ptr<const Request> request, absl::string_view model,
                       absl::string_view version, Reply reply) {
  absl::StatusOr<std::optional<int64_t>> parsed = core::ParseModelVersion(version);
  if (!parsed.ok()) {
    std::move(reply)(StatusResponse(parsed.status()));
    return;
  }
  // Binary inputs view the request body; the shared request keeps it alive until answered.
  absl::StatusOr<KServeInferRequest> decoded = DecodeInferRequest(
      request->body, request->Header("inference-header-content-length"), request, max_json_depth_);
  if (!decoded.ok()) {
    std::move(reply)(StatusResponse(decoded.status()));
    return;
  }
  decoded->request.model_name = std::string(model);
  decoded->request.model_version = *parsed;
  service_.Infer(
      std::move(decoded->request), [format = std::move(decoded->format), reply = std::move(reply)](
                                       absl::StatusOr<core::InferResponse> result) mutable {
        if (!result.ok()) {
          std::move(reply)(StatusResponse(result.status()));
          return;
        }
        absl::StatusOr<EncodedInferResponse> encoded = EncodeInferResponse(*result, format);
        if (!encoded.ok()) {
          std::move(reply)(StatusResponse(encoded.status()));
          return;
        }
        Response response = JsonResponse(std::move(encoded->body));
        if (encoded->header_length.has_value()) {
          response.content_type = "application/octet-stream";
          response.headers.emplace_back("Inference-Header-Content-Length",
                                        absl::StrCat(*encoded->header_length));
        }
        std::move(reply)(std::move(response));
      });
}

void KServeRest::Train(std::shared_ptr<const Request> request, absl::string_view model,
                       absl::string_view version, Reply reply) {
  absl::StatusOr<std::optional<int64_t>> parsed = core::ParseModelVersion(version);
  if (!parsed.ok()) return std::move(reply)(StatusResponse(parsed.status()));
  // Binary tensors view the request body; the shared request keeps it alive until answered.
  absl::StatusOr<core::TrainRequest> decoded = DecodeTrainRequest(
      request->body, request->Header("inference-header-content-length"), request, max_json_depth_);
  if (!decoded.ok()) return std::move(reply)(StatusResponse(decoded.status()));
  decoded->model_name = std::string(model);
  decoded->model_version = *parsed;
  service_.Train(*std::move(decoded), [reply = std::move(reply), request](
                                          absl::StatusOr<core::TrainResponse> result) mutable {
    std::move(reply)(result.ok() ? JsonResponse(EncodeTrainResponse(*result))
                                 : StatusResponse(result.status()));
  });
}

namespace {

// The body of a repository request: empty, or a JSON object.
absl::StatusOr<rapidjson::Document> RepositoryBody(const Request& request, int max_json_depth) {
  rapidjson::Document doc;
  doc.SetObject();
  if (request.body.empty()) return doc;
  RETURN_IF_ERROR(ParseJson(request.body, doc, max_json_depth));
  if (!doc.IsObject()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request body must be a JSON object, got ", JsonTypeName(doc)));
  }
  return doc;
}

}  // namespace

void KServeRest::RepositoryIndex(std::shared_ptr<const Request> request, Reply reply) {
  absl::StatusOr<std::string> body = [&]() -> absl::StatusOr<std::string> {
    ASSIGN_OR_RETURN(rapidjson::Document doc, RepositoryBody(*request, max_json_depth_));
    bool ready = false;
    if (auto it = doc.FindMember("ready"); it != doc.MemberEnd()) {
      if (!it->value.IsBool()) {
        return absl::InvalidArgumentError(
            absl::StrCat("\"ready\" must be a boolean, got ", JsonTypeName(it->value)));
      }
      ready = it->value.GetBool();
    }
    ASSIGN_OR_RETURN(auto index, service_.RepositoryIndex(ready));
    rapidjson::StringBuffer buffer;
    JsonWriter writer(buffer);
    writer.StartArray();
    for (const core::IndexEntry& entry : index) {
      writer.StartObject();
      writer.Key("name");
      WriteSanitizedString(writer, entry.name);
      writer.Key("version");
      WriteString(writer, entry.version);
      writer.Key("state");
      WriteString(writer, core::VersionStateName(entry.state));
      writer.Key("reason");
      WriteSanitizedString(writer, entry.reason);
      writer.EndObject();
    }
    writer.EndArray();
    return BufferText(buffer);
  }();
  std::move(reply)(body.ok() ? JsonResponse(*std::move(body)) : StatusResponse(body.status()));
}

void KServeRest::RepositoryLoad(std::shared_ptr<const Request> request, std::string model,
                                bool load, Reply reply) {
  // The names of the body's "parameters"; the service says which it takes.
  absl::StatusOr<std::vector<std::string>> parameters =
      [&]() -> absl::StatusOr<std::vector<std::string>> {
    ASSIGN_OR_RETURN(rapidjson::Document doc, RepositoryBody(*request, max_json_depth_));
    std::vector<std::string> names;
    auto it = doc.FindMember("parameters");
    if (it == doc.MemberEnd()) return names;
    if (!it->value.IsObject()) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"parameters\" must be an object, got ", JsonTypeName(it->value)));
    }
    for (const auto& parameter : it->value.GetObject()) names.push_back(parameter.name.GetString());
    return names;
  }();
  if (!parameters.ok()) {
    std::move(reply)(StatusResponse(parameters.status()));
    return;
  }
  auto done = [reply = std::move(reply)](absl::Status status) mutable {
    std::move(reply)(status.ok() ? JsonResponse("{}") : StatusResponse(status));
  };
  load ? service_.LoadModel(std::move(model), *parameters, std::move(done))
       : service_.UnloadModel(std::move(model), *parameters, std::move(done));
}

}  // namespace modeld::transport::http
