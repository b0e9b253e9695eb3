// Small pieces shared by the REST APIs: version path segments and turning a Status or a JSON
// text into a Response.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "transport/http/handler.h"

namespace modeld::transport::http {

// 200 (or `status`) with a JSON body.
Response JsonResponse(std::string body, int status = 200);

// {"error": message} with the HTTP status of the code (transport/status_codes.h). Never OK.
Response StatusResponse(const absl::Status& status);

}  // namespace modeld::transport::http
