// TensorFlow Serving REST bodies <-> core requests and responses (protocols.md §3): predict
// in row ("instances") and columnar ("inputs") form, model status and metadata.
//
// A model served by modeld has one signature (tfserving::ServedSignature: serving_default
// unless its config names another; method tensorflow/serving/predict), made from its config:
// its inputs and outputs by name, with DT_* dtypes from the config datatypes and -1 for the
// batch dimension.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/infer_request.h"
#include "core/model_config.h"
#include "service/inference_service.h"
#include "transport/http/json_limits.h"
#include "transport/tfserving/tfserving_model.h"

namespace modeld::transport::http {

struct TfPredictRequest {
  core::InferRequest request;  // model name and version are left for the caller (the URL)
  bool row_format = false;     // "instances" (answered as "predictions"), else "inputs"
};

// Decodes the body of POST /v1/models/{m}[/versions/{v}]:predict against the model's `config`.
// Row format: "instances" is a list with one item per batch row (the row count becomes the
// batch dimension, so the model must batch); items are values or nested lists for a
// one-input model, else objects naming every input. Columnar format: "inputs" is one tensor
// (one-input models) or an object of tensors by input name; shapes are taken whole. BYTES
// values are strings or {"b64": "..."}; NaN and Infinity are accepted. INVALID_ARGUMENT naming
// the problem for: malformed JSON, a signature_name other than the served one (the config's
// signature_name parameter, else serving_default), both or
// neither of instances/inputs, rows for a model without a batch dimension, unknown or missing
// inputs, ragged lists, rows that disagree on an input's shape, and values of the wrong type
// or range for the input's datatype. A batched input whose items have no dims
// (core::TensorSpec::IsScalarItem) is taken as [batch], as TensorFlow Serving takes it.
// The JSON may nest at most `max_json_depth` levels (ParseJson).
absl::StatusOr<TfPredictRequest> DecodePredictRequest(absl::string_view body,
                                                      const core::ModelConfig& config,
                                                      int max_json_depth = kDefaultMaxJsonDepth);

// {"predictions": [...]} (row format: a list of rows, each an object by output name when there
// are several outputs; every output must share the batch dimension) or {"outputs": ...}
// (columnar: the tensor, or an object of tensors by name). Outputs named *_bytes are written
// as {"b64": ...}; other BYTES as strings, or b64 when not UTF-8. INVALID_ARGUMENT when row
// format meets outputs without a common batch dimension. `config` is the model's: a batched
// output whose items have no dims (core::TensorSpec::IsScalarItem) is written as [batch].
absl::StatusOr<std::string> EncodePredictResponse(const core::InferResponse& response,
                                                  bool row_format, const core::ModelConfig& config);

// {"model_version_status": [{"version": "2", "state": "AVAILABLE", "status": {"error_code":
// "OK", ...}}, ...]}
std::string EncodeModelStatus(const std::vector<tfserving::VersionStatus>& versions);

// GetModelMetadata's JSON for `version` of the model: model_spec and the signature_def of
// its one signature, named `signature`.
std::string EncodeModelMetadata(const service::ModelMetadata& metadata, int64_t version,
                                absl::string_view signature);

// "DT_FLOAT" for FP32, ...: the TensorFlow dtype name of a datatype.
absl::string_view TfDataTypeName(core::DataType type);

}  // namespace modeld::transport::http
