#include "backend/torch/package_config.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "core/model_config.h"

namespace modeld::backend {
namespace {

template <typename Tensor>
std::string Describe(const Tensor& tensor) {
  return absl::StrCat("'", tensor.name(), "' ", inference::DataType_Name(tensor.data_type()), " [",
                      absl::StrJoin(tensor.dims(), ", "), "]");
}

template <typename Tensor>
bool Matches(const Tensor& declared, const Tensor& packaged) {
  if (declared.name() != packaged.name() || declared.data_type() != packaged.data_type() ||
      declared.dims_size() != packaged.dims_size()) {
    return false;
  }
  for (int i = 0; i < declared.dims_size(); ++i) {
    if (packaged.dims(i) != -1 && declared.dims(i) != packaged.dims(i)) return false;
  }
  return true;
}

template <typename Tensors>
absl::Status CheckTensors(const Tensors& declared, const Tensors& packaged, absl::string_view kind,
                          absl::string_view package) {
  if (declared.size() != packaged.size()) {
    return absl::InvalidArgumentError(absl::StrCat("config.pbtxt declares ", declared.size(), " ",
                                                   kind, "(s) but ", package, " takes ",
                                                   packaged.size()));
  }
  for (int i = 0; i < declared.size(); ++i) {
    if (!Matches(declared[i], packaged[i])) {
      return absl::InvalidArgumentError(absl::StrCat(kind, " ", i, " of config.pbtxt is ",
                                                     Describe(declared[i]), " but ", package,
                                                     " states ", Describe(packaged[i])));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CompleteConfigFromPackage(const std::optional<std::string>& stated,
                                       absl::string_view package, inference::ModelConfig& config) {
  if (!stated.has_value()) {
    if (config.input().empty() || config.output().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(package,
                       " does not state its inputs and outputs (package it with "
                       "modeld.torch_export.export_package, or list them in config.pbtxt)"));
    }
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(
      const inference::ModelConfig packaged,
      core::ParseModelConfigProto(*stated, absl::StrCat(package, " (", kPackageConfigKey, ")")));
  const bool fill_inputs = config.input().empty();
  const bool fill_outputs = config.output().empty();
  if (fill_inputs && fill_outputs && config.max_batch_size() == 0 &&
      !config.has_dynamic_batching()) {
    config.set_max_batch_size(packaged.max_batch_size());
    if (packaged.max_batch_size() > 0) config.mutable_dynamic_batching();
  }
  if (fill_inputs) *config.mutable_input() = packaged.input();
  if (fill_outputs) *config.mutable_output() = packaged.output();

  const int declared_batch = config.max_batch_size();
  const int packaged_batch = packaged.max_batch_size();
  if ((declared_batch > 0) != (packaged_batch > 0) || declared_batch > packaged_batch) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.pbtxt sets max_batch_size ", declared_batch, " but ", package,
        packaged_batch > 0
            ? absl::StrCat(" batches up to ", packaged_batch, " (set 1 to ", packaged_batch, ")")
            : " has no batch dimension (set 0)"));
  }
  RETURN_IF_ERROR(CheckTensors(config.input(), packaged.input(), "input", package));
  return CheckTensors(config.output(), packaged.output(), "output", package);
}

}  // namespace modeld::backend
