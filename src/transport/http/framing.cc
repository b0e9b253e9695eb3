#include "transport/http/framing.h"

#include <optional>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace modeld::transport::http {
namespace {

// The header's field values named `name` (lowercase), in order.
std::vector<absl::string_view> Values(const HeaderFields& fields, absl::string_view name) {
  std::vector<absl::string_view> values;
  for (const auto& [field, value] : fields) {
    if (field == name) values.push_back(value);
  }
  return values;
}

// OK unless the field appears with two different values (repeating one value is harmless).
absl::Status SingleValued(const HeaderFields& fields, absl::string_view name,
                          absl::string_view shown) {
  const std::vector<absl::string_view> values = Values(fields, name);
  for (absl::string_view value : values) {
    if (absl::StripAsciiWhitespace(value) != absl::StripAsciiWhitespace(values.front())) {
      return absl::InvalidArgumentError(absl::StrCat(shown, " is given ", values.size(),
                                                     " times with different values ('",
                                                     values.front(), "', '", value, "')"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckRequestFraming(const HeaderFields& fields) {
  const std::vector<absl::string_view> encodings = Values(fields, "transfer-encoding");
  if (!encodings.empty()) {
    if (!Values(fields, "content-length").empty()) {
      return absl::InvalidArgumentError(
          "the request has both Transfer-Encoding and Content-Length, so its length is "
          "ambiguous; send Content-Length alone");
    }
    // The codings of every field, in order (RFC 9110 §5.3: fields combine as a list).
    std::vector<std::string> codings;
    for (absl::string_view value : encodings) {
      for (absl::string_view coding : absl::StrSplit(value, ',')) {
        codings.push_back(absl::AsciiStrToLower(absl::StripAsciiWhitespace(coding)));
      }
    }
    if (codings.back() != "chunked") {
      return absl::InvalidArgumentError(
          absl::StrCat("Transfer-Encoding '", codings.back(),
                       "' does not end in chunked, so the request's length cannot be told; "
                       "send the body with a Content-Length"));
    }
  }
  if (absl::Status status = SingleValued(fields, "content-length", "Content-Length");
      !status.ok()) {
    return status;
  }
  return SingleValued(fields, "inference-header-content-length", "Inference-Header-Content-Length");
}

}  // namespace modeld::transport::http
