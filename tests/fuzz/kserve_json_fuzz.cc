// Fuzzes KServe V2 REST inference bodies with the binary tensor extension
// (transport/http/kserve_json_codec.h), then validation and batching.
//
// Input layout: the value of the Inference-Header-Content-Length header, a newline, then the
// body; an empty first line means the request had no such header. So "\n{...}" is an
// all-JSON body and "27\n{...27 bytes...}<binary>" one with binary inputs after the JSON.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "tests/fuzz/fuzz_support.h"
#include "transport/http/kserve_json_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  if (newline == absl::string_view::npos) return 0;
  std::optional<absl::string_view> header_length;
  if (newline > 0) header_length = input.substr(0, newline);
  // The body in a buffer of its own, as the HTTP server hands it over: ASan then sees a read
  // past its end.
  auto body = std::make_shared<const std::string>(input.substr(newline + 1));
  absl::StatusOr<modeld::transport::http::KServeInferRequest> decoded =
      modeld::transport::http::DecodeInferRequest(*body, header_length, body);
  if (decoded.ok()) modeld::fuzz::ValidateAndBatch(decoded->request);
  return 0;
}
