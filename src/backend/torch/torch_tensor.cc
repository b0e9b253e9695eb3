#include "backend/torch/torch_tensor.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>

#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace modeld::backend {
namespace {

struct TypePair {
  core::DataType type;
  c10::ScalarType scalar_type;
};

constexpr std::array<TypePair, 9> kTypePairs = {{
    {core::DataType::kBool, c10::ScalarType::Bool},
    {core::DataType::kUint8, c10::ScalarType::Byte},
    {core::DataType::kInt8, c10::ScalarType::Char},
    {core::DataType::kInt16, c10::ScalarType::Short},
    {core::DataType::kInt32, c10::ScalarType::Int},
    {core::DataType::kInt64, c10::ScalarType::Long},
    {core::DataType::kFp16, c10::ScalarType::Half},
    {core::DataType::kFp32, c10::ScalarType::Float},
    {core::DataType::kFp64, c10::ScalarType::Double},
}};

std::string TypeName(c10::ScalarType type) {
  std::optional<core::DataType> ours = FromScalarType(type);
  return ours.has_value() ? std::string(core::DataTypeName(*ours))
                          : absl::StrCat("torch.", c10::toString(type));
}

// The spec's model-side dims with the batch dimension in front when the model batches.
core::Shape WithBatch(std::optional<int64_t> batch, const core::Shape& dims) {
  core::Shape shape;
  if (batch.has_value()) shape.push_back(*batch);
  shape.insert(shape.end(), dims.begin(), dims.end());
  return shape;
}

bool ShapeMatches(c10::IntArrayRef actual, const core::Shape& expected) {
  if (actual.size() != expected.size()) return false;
  for (size_t i = 0; i < expected.size(); ++i) {
    if (expected[i] != -1 && expected[i] != actual[i]) return false;
  }
  return true;
}

}  // namespace

std::optional<c10::ScalarType> ToScalarType(core::DataType type) {
  for (const TypePair& pair : kTypePairs) {
    if (pair.type == type) return pair.scalar_type;
  }
  return std::nullopt;
}

std::optional<core::DataType> FromScalarType(c10::ScalarType type) {
  for (const TypePair& pair : kTypePairs) {
    if (pair.scalar_type == type) return pair.type;
  }
  return std::nullopt;
}

absl::StatusOr<at::Tensor> ToAtenTensor(const core::Tensor& input, const core::TensorSpec& spec,
                                        bool batched) {
  const std::optional<c10::ScalarType> scalar_type = ToScalarType(input.type());
  if (!scalar_type.has_value()) {
    // Load() rejects such configs and the caller validated the input against the config.
    return absl::InternalError(absl::StrCat("input '", spec.name, "' has datatype ",
                                            core::DataTypeName(input.type()),
                                            ", which TorchScript cannot hold"));
  }
  const core::Shape& shape = input.shape();
  const int64_t count = core::ElementCount(shape);
  const size_t element_size = core::DataTypeSize(input.type());
  const size_t byte_size = input.bytes().size();
  // from_blob reads whatever the shape says; a short buffer would be read out of bounds. The
  // caller validated this; checking again costs nothing next to a model.
  if (count < 0 || byte_size % element_size != 0 ||
      static_cast<uint64_t>(count) != byte_size / element_size) {
    return absl::InternalError(
        absl::StrCat("input '", spec.name, "' has ", byte_size, " bytes, which do not hold shape ",
                     core::ShapeToString(shape), " of ", core::DataTypeName(input.type())));
  }
  const auto options = at::TensorOptions().dtype(*scalar_type);
  at::Tensor tensor;
  if (count == 0) {
    // An empty buffer may have no address at all, which from_blob does not accept.
    tensor = at::empty(shape, options);
  } else {
    // LibTorch takes a mutable pointer: a model that changes an argument in place (rare)
    // changes the caller's input bytes. The deleter holds a copy of `input`, so an output that
    // aliases this storage (a model may return its input) keeps the bytes alive.
    void* data = const_cast<char*>(input.bytes().data());
    tensor = at::from_blob(
        data, shape, [input](void*) {}, options);
  }
  if (spec.reshape.has_value()) {
    std::optional<int64_t> batch;
    if (batched) batch = shape.at(0);
    tensor = tensor.reshape(WithBatch(batch, *spec.reshape));
  }
  return tensor;
}

absl::StatusOr<core::Tensor> FromAtenTensor(const at::Tensor& output, const core::TensorSpec& spec,
                                            std::optional<int64_t> batch) {
  const std::string what = absl::StrCat("output '", spec.name, "'");
  if (!output.defined()) return absl::InternalError(absl::StrCat(what, " is an undefined tensor"));
  if (!output.device().is_cpu() || output.layout() != c10::kStrided) {
    return absl::InternalError(absl::StrCat(what, " is not a dense CPU tensor"));
  }
  const std::optional<core::DataType> type = FromScalarType(output.scalar_type());
  if (type != spec.type) {
    return absl::InternalError(absl::StrCat(what, " has datatype ", TypeName(output.scalar_type()),
                                            " but the config declares ",
                                            core::DataTypeName(spec.type)));
  }
  at::Tensor result = output;
  const core::Shape expected = WithBatch(batch, spec.dims);
  // Undo the output's reshape. torch infers a single -1 from the element count; with more than
  // one unknown the model's shape is kept and must match the dims as it is.
  const auto unknown = std::count(expected.begin(), expected.end(), -1);
  if (spec.reshape.has_value() && unknown <= 1 && (unknown == 0 || result.numel() > 0)) {
    int64_t known = 1;
    for (int64_t dim : expected) known *= dim == -1 ? 1 : dim;
    const bool fits =
        unknown == 0 ? result.numel() == known : known > 0 && result.numel() % known == 0;
    if (!fits) {
      return absl::InternalError(
          absl::StrCat(what, " has shape ", core::ShapeToString(result.sizes().vec()),
                       ", which cannot be reshaped to ", core::ShapeToString(expected)));
    }
    result = result.reshape(expected);
  }
  if (!ShapeMatches(result.sizes(), expected)) {
    return absl::InternalError(
        absl::StrCat(what, " has shape ", core::ShapeToString(result.sizes().vec()),
                     " but the config expects ", core::ShapeToString(expected)));
  }
  auto owner = std::make_shared<at::Tensor>(result.contiguous());
  const absl::string_view bytes(static_cast<const char*>(owner->data_ptr()), owner->nbytes());
  core::Shape shape = owner->sizes().vec();  // before `owner` moves into the call
  return core::Tensor::Viewing(spec.type, std::move(shape), bytes, std::move(owner));
}

}  // namespace modeld::backend
