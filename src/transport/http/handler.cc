#include "transport/http/handler.h"

#include "transport/http/json_util.h"

namespace modeld::transport::http {

std::optional<absl::string_view> Request::Header(absl::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return absl::string_view(value);
  }
  return std::nullopt;
}

absl::string_view Request::Path() const {
  const absl::string_view full = target;
  return full.substr(0, full.find('?'));
}

Response ErrorResponse(int status, absl::string_view message) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  writer.Key("error");
  WriteSanitizedString(writer, message);
  writer.EndObject();
  Response response;
  response.status = status;
  response.body = BufferText(buffer);
  return response;
}

}  // namespace modeld::transport::http
