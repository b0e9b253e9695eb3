// Classify and Regress on TensorFlow Serving's gRPC API: tf.Example inputs in, classes,
// scores and values out, for a model served with a classify or regress signature (the
// signature_method_name parameter its config was completed with).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/infer_request.h"
#include "core/infer_response.h"
#include "core/model_config.h"
#include "tensorflow_serving/classification.pb.h"

namespace modeld::transport::grpc_tfserving {

inline constexpr char kClassifyMethod[] = "tensorflow/serving/classify";
inline constexpr char kRegressMethod[] = "tensorflow/serving/regress";

// OK when `config` serves a signature of `method` taking one string input; else
// UNIMPLEMENTED naming the RPC, the model and the method it does serve (Predict serves every
// model).
absl::Status CheckServesMethod(const core::ModelConfig& config, absl::string_view method,
                               absl::string_view rpc);

// The request for `config`'s one input: the examples of `input`, each serialized, with the
// context's features merged in (an example's own features win). INVALID_ARGUMENT when the
// input holds no examples.
absl::StatusOr<core::InferRequest> ExamplesRequest(const tensorflow::serving::Input& input,
                                                   const core::ModelConfig& config);

// Outputs "classes" (BYTES [n, k]) and/or "scores" (FP32 [n, k]) of a classify signature as
// one Classifications per example. INTERNAL when neither is there or their shapes differ.
absl::StatusOr<tensorflow::serving::ClassificationResult> ClassificationResultOf(
    const core::InferResponse& response);

// Output "outputs" (FP32 [n] or [n, 1]) of a regress signature as one Regression per example.
absl::StatusOr<tensorflow::serving::RegressionResult> RegressionResultOf(
    const core::InferResponse& response);

}  // namespace modeld::transport::grpc_tfserving
