// KServe V2 REST inference bodies <-> core requests and responses, including Triton's binary
// tensor data extension (protocols.md §1).
//
// A body is a JSON header, optionally followed by raw tensor bytes; the request header
// `Inference-Header-Content-Length` gives the JSON's length when bytes follow. Inputs with the
// parameter `binary_data_size` take that many bytes, in input order, from after the JSON.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/infer_request.h"
#include "core/train_request.h"
#include "transport/http/json_limits.h"

namespace modeld::transport::http {

// How the client wants each output: JSON `data` or binary bytes after the JSON.
struct OutputFormat {
  bool binary_by_default = false;                 // request parameter "binary_data_output"
  absl::flat_hash_map<std::string, bool> binary;  // output parameter "binary_data", by name

  bool Binary(absl::string_view output) const;
};

struct KServeInferRequest {
  core::InferRequest request;  // model name and version are left for the caller (the URL)
  OutputFormat format;
};

// Decodes the body of POST /v2/models/{m}[/versions/{v}]/infer. `header_length` is the value of
// Inference-Header-Content-Length when the request had one. Binary inputs view `body`, which
// `owner` must keep alive. INVALID_ARGUMENT naming the problem (and the input) for: a header
// length that is not a number, is 0 (a raw binary request, not offered) or exceeds the body;
// malformed JSON or invalid UTF-8; a field of the wrong JSON type; a missing name, datatype,
// shape or data; an unknown datatype; a negative or overflowing shape; a duplicated input;
// values of the wrong type or range for the datatype; a value count that differs from the
// shape; binary sizes that run past the body or leave bytes unclaimed; `priority` or
// `timeout` (microseconds) that are not non-negative integers. UNIMPLEMENTED for the
// classification extension.
// The JSON may nest at most `max_json_depth` levels (ParseJson).
absl::StatusOr<KServeInferRequest> DecodeInferRequest(
    absl::string_view body, std::optional<absl::string_view> header_length,
    std::shared_ptr<const void> owner, int max_json_depth = kDefaultMaxJsonDepth);

// Decodes the body of POST /v2/models/{m}[/versions/{v}]/train (docs/online-learning.md):
// {"id"?, "inputs": [...], "targets": [...]}, each tensor as an inference input (JSON "data" or
// binary_data_size, inputs' bytes first). The same errors as DecodeInferRequest, naming the
// input or target.
absl::StatusOr<core::TrainRequest> DecodeTrainRequest(
    absl::string_view body, std::optional<absl::string_view> header_length,
    std::shared_ptr<const void> owner, int max_json_depth = kDefaultMaxJsonDepth);

// {"model_name", "model_version", "id" (when set), "step", "loss", "checkpoint_step"}.
std::string EncodeTrainResponse(const core::TrainResponse& response);

struct EncodedInferResponse {
  std::string body;
  // The JSON's length when binary output bytes follow it (the response's
  // Inference-Header-Content-Length); nullopt for an all-JSON body.
  std::optional<size_t> header_length;
};

// Encodes a response: every output as JSON `data` (flat, row-major) or, when `format` asks for
// it, as binary bytes after the JSON with parameter binary_data_size. FP16 always goes binary
// (it has no JSON form). INVALID_ARGUMENT when a BYTES output asked for as JSON is not UTF-8.
absl::StatusOr<EncodedInferResponse> EncodeInferResponse(const core::InferResponse& response,
                                                         const OutputFormat& format);

}  // namespace modeld::transport::http
