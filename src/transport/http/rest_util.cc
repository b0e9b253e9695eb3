#include "transport/http/rest_util.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "transport/status_codes.h"

namespace modeld::transport::http {

Response JsonResponse(std::string body, int status) {
  Response response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

Response StatusResponse(const absl::Status& status) {
  return ErrorResponse(ToHttpStatus(status), status.message());
}

}  // namespace modeld::transport::http
