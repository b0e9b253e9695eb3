#include "backend/tensorflow/tf_tensor.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace modeld::backend {
namespace {

TF_DataType ToTfDataType(core::DataType type) {
  // TF_DataType and tensorflow.DataType share their numbers.
  return static_cast<TF_DataType>(core::DataTypeToTf(type));
}

// `expected` with its single -1 (if any) worked out from `elements`; nullopt when the elements
// do not fit. With more than one -1 the shape cannot be worked out.
std::optional<core::Shape> Resolve(core::Shape expected, int64_t elements) {
  const auto unknown = std::count(expected.begin(), expected.end(), -1);
  int64_t known = 1;
  for (int64_t dim : expected) known *= dim == -1 ? 1 : dim;
  if (unknown == 0) {
    if (known != elements) return std::nullopt;
    return expected;
  }
  if (unknown > 1 || known == 0 || elements % known != 0) return std::nullopt;
  std::replace(expected.begin(), expected.end(), int64_t{-1}, elements / known);
  return expected;
}

core::Shape WithBatch(std::optional<int64_t> batch, const core::Shape& dims) {
  core::Shape shape;
  if (batch.has_value()) shape.push_back(*batch);
  shape.insert(shape.end(), dims.begin(), dims.end());
  return shape;
}

bool ShapeMatches(const core::Shape& actual, const core::Shape& expected) {
  if (actual.size() != expected.size()) return false;
  for (size_t i = 0; i < expected.size(); ++i) {
    if (expected[i] != -1 && expected[i] != actual[i]) return false;
  }
  return true;
}

std::string TypeName(TF_DataType type) {
  const auto tf_type = static_cast<tensorflow::DataType>(type);
  const std::optional<core::DataType> ours = core::DataTypeFromTf(tf_type);
  if (ours.has_value()) return std::string(core::DataTypeName(*ours));
  const std::string& name = tensorflow::DataType_Name(tf_type);
  return name.empty() ? absl::StrCat("TensorFlow dtype ", static_cast<int>(type)) : name;
}

// TF_NewTensor's deallocator: drops the copy of the input Tensor that kept its bytes alive.
void ReleaseInput(void*, size_t, void* arg) { delete static_cast<core::Tensor*>(arg); }

}  // namespace

TfTensor::~TfTensor() {
  if (tensor_ == nullptr) return;
  if (owns_strings_) {
    auto* strings = static_cast<TF_TString*>(api_->TF_TensorData(tensor_));
    const size_t count = api_->TF_TensorByteSize(tensor_) / sizeof(TF_TString);
    for (size_t i = 0; i < count; ++i) api_->TF_StringDealloc(&strings[i]);
  }
  api_->TF_DeleteTensor(tensor_);
}

absl::StatusOr<TfTensor> ToTfTensor(const TfApi& api, const core::Tensor& input,
                                    const core::TensorSpec& spec, bool batched) {
  core::Shape shape = input.shape();
  const int64_t count = core::ElementCount(shape);
  if (count < 0) {
    return absl::InternalError(
        absl::StrCat("input '", spec.name, "' has shape ", core::ShapeToString(shape)));
  }
  if (spec.reshape.has_value()) {
    std::optional<int64_t> batch;
    if (batched) batch = shape.at(0);
    std::optional<core::Shape> reshaped = Resolve(WithBatch(batch, *spec.reshape), count);
    if (!reshaped.has_value()) {
      return absl::InternalError(absl::StrCat("input '", spec.name, "' of shape ",
                                              core::ShapeToString(shape), " cannot be reshaped to ",
                                              core::ShapeToString(*spec.reshape)));
    }
    shape = *std::move(reshaped);
  }
  const int dims = static_cast<int>(shape.size());
  if (input.type() == core::DataType::kBytes) {
    ASSIGN_OR_RETURN(std::vector<absl::string_view> elements,
                     core::SplitBytesElements(input.bytes()));
    if (elements.size() != static_cast<size_t>(count)) {
      return absl::InternalError(absl::StrCat("input '", spec.name, "' holds ", elements.size(),
                                              " strings for shape ", core::ShapeToString(shape)));
    }
    TfTensor tensor(
        api,
        api.TF_AllocateTensor(TF_STRING, shape.data(), dims, elements.size() * sizeof(TF_TString)),
        /*owns_strings=*/true);
    auto* strings = static_cast<TF_TString*>(api.TF_TensorData(tensor.get()));
    for (size_t i = 0; i < elements.size(); ++i) {
      api.TF_StringInit(&strings[i]);
      api.TF_StringCopy(&strings[i], elements[i].data(), elements[i].size());
    }
    return tensor;
  }
  const size_t element_size = core::DataTypeSize(input.type());
  const size_t byte_size = input.bytes().size();
  if (byte_size != static_cast<uint64_t>(count) * element_size) {
    return absl::InternalError(
        absl::StrCat("input '", spec.name, "' has ", byte_size, " bytes, which do not hold shape ",
                     core::ShapeToString(shape), " of ", core::DataTypeName(input.type())));
  }
  const TF_DataType type = ToTfDataType(input.type());
  if (byte_size == 0) {
    // An empty buffer may have no address at all; TensorFlow allocates an empty one.
    return TfTensor(api, api.TF_AllocateTensor(type, shape.data(), dims, 0));
  }
  // TensorFlow takes a mutable pointer; a graph never writes to its feeds. It copies bytes that
  // are not aligned as Eigen wants (and then drops the input copy at once).
  void* data = const_cast<char*>(input.bytes().data());
  return TfTensor(api, api.TF_NewTensor(type, shape.data(), dims, data, byte_size, ReleaseInput,
                                        new core::Tensor(input)));
}

absl::StatusOr<core::Tensor> FromTfTensor(const TfApi& api, TfTensor output,
                                          const core::TensorSpec& spec,
                                          std::optional<int64_t> batch) {
  const std::string what = absl::StrCat("output '", spec.name, "'");
  if (output.get() == nullptr) return absl::InternalError(absl::StrCat(what, " is missing"));
  const TF_DataType type = api.TF_TensorType(output.get());
  if (type != ToTfDataType(spec.type)) {
    return absl::InternalError(absl::StrCat(what, " has datatype ", TypeName(type),
                                            " but the config declares ",
                                            core::DataTypeName(spec.type)));
  }
  core::Shape shape(api.TF_NumDims(output.get()));
  for (int i = 0; i < static_cast<int>(shape.size()); ++i) shape[i] = api.TF_Dim(output.get(), i);
  const core::Shape expected = WithBatch(batch, spec.dims);
  if (spec.reshape.has_value()) {
    // Undo the output's reshape: the API sees [batch] + dims.
    if (std::optional<core::Shape> api_shape = Resolve(expected, core::ElementCount(shape))) {
      shape = *std::move(api_shape);
    }
  }
  if (!ShapeMatches(shape, expected)) {
    return absl::InternalError(absl::StrCat(what, " has shape ", core::ShapeToString(shape),
                                            " but the config expects ",
                                            core::ShapeToString(expected)));
  }
  const size_t byte_size = api.TF_TensorByteSize(output.get());
  const char* data = static_cast<const char*>(api.TF_TensorData(output.get()));
  if (spec.type == core::DataType::kBytes) {
    const auto* strings = reinterpret_cast<const TF_TString*>(data);
    const int64_t count = core::ElementCount(shape);
    std::string bytes;
    for (int64_t i = 0; i < count; ++i) {
      core::AppendBytesElement(absl::string_view(api.TF_StringGetDataPointer(&strings[i]),
                                                 api.TF_StringGetSize(&strings[i])),
                               bytes);
    }
    return core::Tensor::Owning(spec.type, std::move(shape), std::move(bytes));
  }
  const absl::string_view bytes(data, byte_size);
  auto owner = std::make_shared<TfTensor>(std::move(output));
  return core::Tensor::Viewing(spec.type, std::move(shape), bytes, std::move(owner));
}

}  // namespace modeld::backend
