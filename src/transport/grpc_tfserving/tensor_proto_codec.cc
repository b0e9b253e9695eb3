#include "transport/grpc_tfserving/tensor_proto_codec.h"

#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace modeld::transport::grpc_tfserving {
namespace {

template <typename T>
T Load(const char* data) {
  T value;
  std::memcpy(&value, data, sizeof(T));
  return value;
}

// When one value (`given` == 1) fills `count` elements of `element_bytes` each, takes their
// bytes from `budget`, refusing what it cannot pay. Checked before anything is allocated.
absl::Status TakeFill(int64_t given, int64_t count, int64_t element_bytes, absl::string_view what,
                      absl::string_view field_name, int64_t& budget) {
  if (given != 1 || count <= 1) return absl::OkStatus();
  if (count > budget / element_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has one value in ", field_name, " to fill ", count,
                     " elements; modeld fills at most ", kMaxFilledBytes,
                     " bytes per request from single values: send every value "
                     "(tensor_content holds them most compactly)"));
  }
  budget -= count * element_bytes;
  return absl::OkStatus();
}

// The values of one typed field as `count` elements of T: as many values as elements, or one
// value for them all.
template <typename T, typename Field, typename Convert>
absl::StatusOr<std::string> FromField(const Field& field, int64_t count, absl::string_view what,
                                      absl::string_view field_name, Convert convert,
                                      int64_t& budget) {
  const int64_t given = field.size();
  if (given != count && !(given == 1 && count > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " holds ", given, " values in ",
                                                   field_name, " for ", count,
                                                   " elements of its shape"));
  }
  RETURN_IF_ERROR(TakeFill(given, count, sizeof(T), what, field_name, budget));
  std::string bytes;
  bytes.reserve(count * sizeof(T));
  for (int64_t i = 0; i < count; ++i) {
    ASSIGN_OR_RETURN(const T value, convert(field.Get(given == 1 ? 0 : i)));
    core::AppendElement<T>(value, bytes);
  }
  return bytes;
}

// int_val entries narrowed to T, refusing values T cannot hold.
template <typename T>
auto Narrow(absl::string_view what) {
  return [what](int32_t value) -> absl::StatusOr<T> {
    if (value < std::numeric_limits<T>::min() || value > std::numeric_limits<T>::max()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " holds ", value, ", outside the range of its dtype"));
    }
    return static_cast<T>(value);
  };
}

template <typename T>
absl::StatusOr<T> Same(T value) {
  return value;
}

absl::StatusOr<std::string> TypedValues(const tensorflow::TensorProto& proto, core::DataType type,
                                        int64_t count, absl::string_view what, int64_t& budget) {
  switch (type) {
    case core::DataType::kFp32:
      return FromField<float>(proto.float_val(), count, what, "float_val", Same<float>, budget);
    case core::DataType::kFp64:
      return FromField<double>(proto.double_val(), count, what, "double_val", Same<double>, budget);
    case core::DataType::kInt32:
      return FromField<int32_t>(proto.int_val(), count, what, "int_val", Same<int32_t>, budget);
    case core::DataType::kInt16:
      return FromField<int16_t>(proto.int_val(), count, what, "int_val", Narrow<int16_t>(what),
                                budget);
    case core::DataType::kInt8:
      return FromField<int8_t>(proto.int_val(), count, what, "int_val", Narrow<int8_t>(what),
                               budget);
    case core::DataType::kUint8:
      return FromField<uint8_t>(proto.int_val(), count, what, "int_val", Narrow<uint8_t>(what),
                                budget);
    case core::DataType::kUint16:
      return FromField<uint16_t>(proto.int_val(), count, what, "int_val", Narrow<uint16_t>(what),
                                 budget);
    case core::DataType::kFp16:
      // Each half_val holds the 16-bit pattern of one value.
      return FromField<uint16_t>(proto.half_val(), count, what, "half_val", Narrow<uint16_t>(what),
                                 budget);
    case core::DataType::kInt64:
      return FromField<int64_t>(proto.int64_val(), count, what, "int64_val", Same<int64_t>, budget);
    case core::DataType::kBool:
      return FromField<uint8_t>(
          proto.bool_val(), count, what, "bool_val",
          [](bool value) -> absl::StatusOr<uint8_t> { return value; }, budget);
    case core::DataType::kUint32:
      return FromField<uint32_t>(proto.uint32_val(), count, what, "uint32_val", Same<uint32_t>,
                                 budget);
    case core::DataType::kUint64:
      return FromField<uint64_t>(proto.uint64_val(), count, what, "uint64_val", Same<uint64_t>,
                                 budget);
    case core::DataType::kBytes: {
      const int64_t given = proto.string_val_size();
      if (given != count && !(given == 1 && count > 0)) {
        return absl::InvalidArgumentError(absl::StrCat(
            what, " holds ", given, " values in string_val for ", count, " elements of its shape"));
      }
      // Each element is stored as a 4-byte length and its bytes.
      const int64_t element_bytes =
          4 + static_cast<int64_t>(given == 1 ? proto.string_val(0).size() : 0);
      RETURN_IF_ERROR(TakeFill(given, count, element_bytes, what, "string_val", budget));
      std::string bytes;
      for (int64_t i = 0; i < count; ++i) {
        core::AppendBytesElement(proto.string_val(given == 1 ? 0 : i), bytes);
      }
      return bytes;
    }
  }
  return absl::InternalError("unknown datatype");
}

}  // namespace

absl::StatusOr<core::Tensor> DecodeTensorProto(const tensorflow::TensorProto& proto,
                                               absl::string_view what) {
  int64_t budget = kMaxFilledBytes;
  return DecodeTensorProto(proto, what, budget);
}

absl::StatusOr<core::Tensor> DecodeTensorProto(const tensorflow::TensorProto& proto,
                                               absl::string_view what, int64_t& fill_budget) {
  const std::optional<core::DataType> type = core::DataTypeFromTf(proto.dtype());
  if (!type.has_value()) {
    const std::string& name = tensorflow::DataType_Name(proto.dtype());
    return absl::InvalidArgumentError(absl::StrCat(
        what, " has dtype ", name.empty() ? absl::StrCat(static_cast<int>(proto.dtype())) : name,
        ", which modeld does not serve"));
  }
  if (proto.tensor_shape().unknown_rank()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has a shape of unknown rank"));
  }
  core::Shape shape;
  for (const auto& dim : proto.tensor_shape().dim()) {
    if (dim.size() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " has a dimension of size ", dim.size()));
    }
    shape.push_back(dim.size());
  }
  const int64_t count = core::ElementCount(shape);
  if (count < 0) return absl::InvalidArgumentError(absl::StrCat(what, " has too many elements"));
  if (!proto.tensor_content().empty()) {
    if (*type == core::DataType::kBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " is DT_STRING: send its values in string_val, not tensor_content"));
    }
    const int64_t element_size = core::DataTypeSize(*type);
    // Checked before multiplying: a huge shape must not wrap around to the bytes given.
    if (count > std::numeric_limits<int64_t>::max() / element_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " has shape ", core::ShapeToString(shape), ", whose byte size is too large"));
    }
    const uint64_t expected = static_cast<uint64_t>(count * element_size);
    if (proto.tensor_content().size() != expected) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " has ", proto.tensor_content().size(),
                       " bytes of tensor_content; shape ", core::ShapeToString(shape), " of ",
                       tensorflow::DataType_Name(proto.dtype()), " needs ", expected));
    }
    return core::Tensor::Viewing(*type, std::move(shape), proto.tensor_content(), nullptr);
  }
  ASSIGN_OR_RETURN(std::string bytes, TypedValues(proto, *type, count, what, fill_budget));
  return core::Tensor::Owning(*type, std::move(shape), std::move(bytes));
}

absl::Status EncodeTensorProto(const core::Tensor& tensor, const core::Shape& shape,
                               tensorflow::TensorProto* out) {
  out->set_dtype(core::DataTypeToTf(tensor.type()));
  for (int64_t dim : shape) out->mutable_tensor_shape()->add_dim()->set_size(dim);
  const absl::string_view bytes = tensor.bytes();
  const char* data = bytes.data();
  const size_t size = core::DataTypeSize(tensor.type());
  const size_t count = size == 0 ? 0 : bytes.size() / size;
  switch (tensor.type()) {
    case core::DataType::kFp32:
      for (size_t i = 0; i < count; ++i) out->add_float_val(Load<float>(data + i * size));
      break;
    case core::DataType::kFp64:
      for (size_t i = 0; i < count; ++i) out->add_double_val(Load<double>(data + i * size));
      break;
    case core::DataType::kInt32:
      for (size_t i = 0; i < count; ++i) out->add_int_val(Load<int32_t>(data + i * size));
      break;
    case core::DataType::kInt16:
      for (size_t i = 0; i < count; ++i) out->add_int_val(Load<int16_t>(data + i * size));
      break;
    case core::DataType::kInt8:
      for (size_t i = 0; i < count; ++i) out->add_int_val(Load<int8_t>(data + i * size));
      break;
    case core::DataType::kUint8:
      for (size_t i = 0; i < count; ++i) out->add_int_val(Load<uint8_t>(data + i * size));
      break;
    case core::DataType::kUint16:
      for (size_t i = 0; i < count; ++i) out->add_int_val(Load<uint16_t>(data + i * size));
      break;
    case core::DataType::kFp16:
      for (size_t i = 0; i < count; ++i) out->add_half_val(Load<uint16_t>(data + i * size));
      break;
    case core::DataType::kInt64:
      for (size_t i = 0; i < count; ++i) out->add_int64_val(Load<int64_t>(data + i * size));
      break;
    case core::DataType::kBool:
      for (size_t i = 0; i < count; ++i) out->add_bool_val(data[i] != 0);
      break;
    case core::DataType::kUint32:
      for (size_t i = 0; i < count; ++i) out->add_uint32_val(Load<uint32_t>(data + i * size));
      break;
    case core::DataType::kUint64:
      for (size_t i = 0; i < count; ++i) out->add_uint64_val(Load<uint64_t>(data + i * size));
      break;
    case core::DataType::kBytes: {
      ASSIGN_OR_RETURN(std::vector<absl::string_view> elements, core::SplitBytesElements(bytes));
      for (absl::string_view element : elements) out->add_string_val(std::string(element));
      break;
    }
  }
  return absl::OkStatus();
}

}  // namespace modeld::transport::grpc_tfserving
