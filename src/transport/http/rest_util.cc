#include "transport/http/rest_util.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "transport/status_codes.h"

namespace modeld::transport::http {

absl::StatusOr<std::optional<int64_t>> ParseVersion(absl::string_view version) {
  if (version.empty()) return std::nullopt;
  int64_t parsed = 0;
  const bool digits =
      std::all_of(version.begin(), version.end(), [](char c) { return absl::ascii_isdigit(c); });
  if (!digits || !absl::SimpleAtoi(version, &parsed) || parsed < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model version '", version, "' is not a version number (a positive integer)"));
  }
  return parsed;
}

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
