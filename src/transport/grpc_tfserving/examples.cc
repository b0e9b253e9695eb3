#include "transport/grpc_tfserving/examples.h"

#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "transport/tfserving/tfserving_model.h"

namespace modeld::transport::grpc_tfserving {
namespace {

constexpr char kMethodParameter[] = "signature_method_name";
constexpr char kClassesOutput[] = "classes";
constexpr char kScoresOutput[] = "scores";
constexpr char kRegressOutput[] = "outputs";

const core::Tensor* FindOutput(const core::InferResponse& response, absl::string_view name) {
  for (const core::NamedTensor& output : response.outputs) {
    if (output.name == name) return &output.tensor;
  }
  return nullptr;
}

// Rows and columns of a [n, k] output (k = 1 for [n]).
absl::Status RowsAndColumns(const core::Tensor& tensor, absl::string_view name, int64_t& rows,
                            int64_t& columns) {
  const core::Shape& shape = tensor.shape();
  if (shape.empty() || shape.size() > 2) {
    return absl::InternalError(absl::StrCat("output '", name, "' has shape ",
                                            core::ShapeToString(shape), ", not [examples, k]"));
  }
  rows = shape[0];
  columns = shape.size() == 2 ? shape[1] : 1;
  return absl::OkStatus();
}

float FloatAt(const core::Tensor& tensor, int64_t index) {
  float value;
  std::memcpy(&value, tensor.bytes().data() + index * sizeof(float), sizeof(float));
  return value;
}

}  // namespace

absl::Status CheckServesMethod(const core::ModelConfig& config, absl::string_view method,
                               absl::string_view rpc) {
  const std::string served = config.Parameter(kMethodParameter).value_or(tfserving::kPredictMethod);
  if (served != method) {
    return absl::UnimplementedError(absl::StrCat(
        rpc, " needs a signature of method ", method, "; model '", config.name,
        "' is served with signature '", tfserving::ServedSignature(config), "' (method ", served,
        "): call Predict, or serve a ", rpc, " signature with the signature_name parameter"));
  }
  if (config.inputs.size() != 1 || config.inputs[0].type != core::DataType::kBytes) {
    return absl::UnimplementedError(
        absl::StrCat(rpc, " needs a signature with one string input; model '", config.name,
                     "' has ", config.inputs.size(), " input(s)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<core::InferRequest> ExamplesRequest(const tensorflow::serving::Input& input,
                                                   const core::ModelConfig& config) {
  std::vector<std::string> examples;
  if (input.has_example_list()) {
    examples.assign(input.example_list().examples().begin(), input.example_list().examples().end());
  } else if (input.has_example_list_with_context()) {
    const auto& with_context = input.example_list_with_context();
    // Serialized protobuf messages merge when concatenated: the context's features first, so
    // an example's own value of a feature wins.
    for (const std::string& example : with_context.examples()) {
      examples.push_back(absl::StrCat(with_context.context(), example));
    }
  }
  if (examples.empty()) {
    return absl::InvalidArgumentError("input holds no examples (example_list is empty)");
  }
  std::string bytes;
  for (const std::string& example : examples) core::AppendBytesElement(example, bytes);
  core::InferRequest request;
  request.inputs[config.inputs[0].name] = core::Tensor::Owning(
      core::DataType::kBytes, {static_cast<int64_t>(examples.size())}, std::move(bytes));
  tfserving::TakeScalarItems(config, request.inputs);
  return request;
}

absl::StatusOr<tensorflow::serving::ClassificationResult> ClassificationResultOf(
    const core::InferResponse& response) {
  const core::Tensor* classes = FindOutput(response, kClassesOutput);
  const core::Tensor* scores = FindOutput(response, kScoresOutput);
  if (classes == nullptr && scores == nullptr) {
    return absl::InternalError("the classify signature has neither 'classes' nor 'scores'");
  }
  int64_t rows = 0, columns = 0;
  std::vector<absl::string_view> labels;
  if (classes != nullptr) {
    RETURN_IF_ERROR(RowsAndColumns(*classes, kClassesOutput, rows, columns));
    ASSIGN_OR_RETURN(labels, core::SplitBytesElements(classes->bytes()));
  }
  if (scores != nullptr) {
    int64_t score_rows = 0, score_columns = 0;
    RETURN_IF_ERROR(RowsAndColumns(*scores, kScoresOutput, score_rows, score_columns));
    if (scores->type() != core::DataType::kFp32 ||
        (classes != nullptr && (score_rows != rows || score_columns != columns))) {
      return absl::InternalError("output 'scores' is not FP32 of the shape of 'classes'");
    }
    rows = score_rows;
    columns = score_columns;
  }
  tensorflow::serving::ClassificationResult result;
  for (int64_t row = 0; row < rows; ++row) {
    tensorflow::serving::Classifications* classifications = result.add_classifications();
    for (int64_t column = 0; column < columns; ++column) {
      tensorflow::serving::Class* entry = classifications->add_classes();
      const int64_t index = row * columns + column;
      if (classes != nullptr) entry->set_label(std::string(labels[index]));
      if (scores != nullptr) entry->set_score(FloatAt(*scores, index));
    }
  }
  return result;
}

absl::StatusOr<tensorflow::serving::RegressionResult> RegressionResultOf(
    const core::InferResponse& response) {
  const core::Tensor* values = FindOutput(response, kRegressOutput);
  if (values == nullptr || values->type() != core::DataType::kFp32) {
    return absl::InternalError("the regress signature has no FP32 output 'outputs'");
  }
  int64_t rows = 0, columns = 0;
  RETURN_IF_ERROR(RowsAndColumns(*values, kRegressOutput, rows, columns));
  if (columns != 1) {
    return absl::InternalError(absl::StrCat("output 'outputs' has shape ",
                                            core::ShapeToString(values->shape()),
                                            ", not one value per example"));
  }
  tensorflow::serving::RegressionResult result;
  for (int64_t row = 0; row < rows; ++row) {
    result.add_regressions()->set_value(FloatAt(*values, row));
  }
  return result;
}

}  // namespace modeld::transport::grpc_tfserving
