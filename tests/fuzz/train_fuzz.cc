// Fuzzes the decoders of online learning's training steps (docs/online-learning.md), then the
// element limit and core::ValidateTrainRequest (tests/fuzz/fuzz_support.h ValidateTrain):
// - gRPC Training.Train: bytes -> modeld.training.TrainRequest (as gRPC parses it) ->
//   core::TrainRequest (transport/kserve/codec.h DecodeTrainRequest);
// - HTTP POST /v2/models/{m}/train: a JSON body with the binary tensor extension
//   (transport/http/kserve_json_codec.h DecodeTrainRequest).
// The Redis envelope's `train` payload is fuzzed by redis_envelope_fuzz.
//
// Input layout: a first byte 'h', then the HTTP layout of kserve_json_fuzz (the
// Inference-Header-Content-Length value, a newline, the body); any other first byte, then the
// serialized TrainRequest.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "modeld/training.pb.h"
#include "tests/fuzz/fuzz_support.h"
#include "transport/http/kserve_json_codec.h"
#include "transport/kserve/codec.h"

namespace {

void FuzzGrpc(absl::string_view bytes) {
  modeld::training::TrainRequest message;
  if (!message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return;
  absl::StatusOr<modeld::core::TrainRequest> request =
      modeld::transport::kserve::DecodeTrainRequest(message);
  if (request.ok()) modeld::fuzz::ValidateTrain(*request);
}

void FuzzHttp(absl::string_view input) {
  const size_t newline = input.find('\n');
  if (newline == absl::string_view::npos) return;
  std::optional<absl::string_view> header_length;
  if (newline > 0) header_length = input.substr(0, newline);
  // The body in a buffer of its own, as the HTTP server hands it over: ASan then sees a read
  // past its end.
  auto body = std::make_shared<const std::string>(input.substr(newline + 1));
  absl::StatusOr<modeld::core::TrainRequest> request =
      modeld::transport::http::DecodeTrainRequest(*body, header_length, body);
  if (request.ok()) modeld::fuzz::ValidateTrain(*request);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const absl::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] == 'h') {
    FuzzHttp(input);
  } else {
    FuzzGrpc(input);
  }
  return 0;
}
