#include "transport/http/json_tensor.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace modeld::transport::http {
namespace {

using core::DataType;

// float64 values at or beyond these round to infinity in the narrower type.
constexpr double kFloatOverflow = 0x1.ffffffp+127;  // FLT_MAX + half an ulp
constexpr double kHalfOverflow = 65520.0;           // 65504 + half an ulp

template <typename T>
void AppendRaw(T value, std::string& out) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(T));
}

template <typename T>
T LoadRaw(const char* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

std::string NumberText(const rapidjson::Value& v) {
  if (v.IsInt64()) return absl::StrCat(v.GetInt64());
  if (v.IsUint64()) return absl::StrCat(v.GetUint64());
  return absl::StrCat(v.GetDouble());
}

template <typename T>
absl::Status AppendInteger(const rapidjson::Value& v, DataType type, std::string& out) {
  if (!v.IsNumber()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected an integer for ", core::DataTypeName(type), ", got ", JsonTypeName(v)));
  }
  bool fits = false;
  T value{};
  if (v.IsInt64()) {
    fits = std::in_range<T>(v.GetInt64());
    value = static_cast<T>(v.GetInt64());
  } else if (v.IsUint64()) {
    fits = std::in_range<T>(v.GetUint64());
    value = static_cast<T>(v.GetUint64());
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected an integer for ", core::DataTypeName(type), ", got ", NumberText(v)));
  }
  if (!fits) {
    return absl::InvalidArgumentError(
        absl::StrCat("value ", NumberText(v), " does not fit ", core::DataTypeName(type)));
  }
  AppendRaw(value, out);
  return absl::OkStatus();
}

absl::StatusOr<double> NumberOf(const rapidjson::Value& v, DataType type, double overflow) {
  if (v.IsString()) {
    const absl::string_view text(v.GetString(), v.GetStringLength());
    if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
    if (text == "Infinity") return std::numeric_limits<double>::infinity();
    if (text == "-Infinity") return -std::numeric_limits<double>::infinity();
  }
  if (!v.IsNumber()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected a number for ", core::DataTypeName(type), ", got ", JsonTypeName(v)));
  }
  const double value = v.GetDouble();
  if (std::isfinite(value) && std::fabs(value) >= overflow) {
    return absl::InvalidArgumentError(
        absl::StrCat("value ", NumberText(v), " does not fit ", core::DataTypeName(type)));
  }
  return value;
}

absl::Status AppendBytes(const rapidjson::Value& v, const JsonElementRules& rules,
                         std::string& out) {
  if (v.IsString()) {
    core::AppendBytesElement(absl::string_view(v.GetString(), v.GetStringLength()), out);
    return absl::OkStatus();
  }
  if (rules.accept_b64 && v.IsObject() && v.MemberCount() == 1 && v.HasMember("b64")) {
    const rapidjson::Value& encoded = v["b64"];
    if (!encoded.IsString()) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"b64\" must be a string, got ", JsonTypeName(encoded)));
    }
    std::string decoded;
    if (!absl::Base64Unescape(absl::string_view(encoded.GetString(), encoded.GetStringLength()),
                              &decoded)) {
      return absl::InvalidArgumentError("\"b64\" is not valid base64");
    }
    core::AppendBytesElement(decoded, out);
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("expected a string",
                                                 rules.accept_b64 ? " or {\"b64\": ...}" : "",
                                                 " for BYTES, got ", JsonTypeName(v)));
}

// Appends one leaf value as `type`; the message says only what is wrong with the value.
absl::Status AppendElement(const rapidjson::Value& v, DataType type, const JsonElementRules& rules,
                           std::string& out) {
  switch (type) {
    case DataType::kBool:
      if (!v.IsBool()) {
        return absl::InvalidArgumentError(
            absl::StrCat("expected true or false for BOOL, got ", JsonTypeName(v)));
      }
      out.push_back(v.GetBool() ? 1 : 0);
      return absl::OkStatus();
    case DataType::kUint8:
      return AppendInteger<uint8_t>(v, type, out);
    case DataType::kUint16:
      return AppendInteger<uint16_t>(v, type, out);
    case DataType::kUint32:
      return AppendInteger<uint32_t>(v, type, out);
    case DataType::kUint64:
      return AppendInteger<uint64_t>(v, type, out);
    case DataType::kInt8:
      return AppendInteger<int8_t>(v, type, out);
    case DataType::kInt16:
      return AppendInteger<int16_t>(v, type, out);
    case DataType::kInt32:
      return AppendInteger<int32_t>(v, type, out);
    case DataType::kInt64:
      return AppendInteger<int64_t>(v, type, out);
    case DataType::kFp16: {
      if (!rules.accept_fp16_numbers) {
        return absl::InvalidArgumentError(
            "FP16 has no JSON form; send it as binary data (parameter binary_data_size)");
      }
      absl::StatusOr<double> value = NumberOf(v, type, kHalfOverflow);
      if (!value.ok()) return value.status();
      AppendRaw(FloatToHalf(static_cast<float>(*value)), out);
      return absl::OkStatus();
    }
    case DataType::kFp32: {
      absl::StatusOr<double> value = NumberOf(v, type, kFloatOverflow);
      if (!value.ok()) return value.status();
      AppendRaw(static_cast<float>(*value), out);
      return absl::OkStatus();
    }
    case DataType::kFp64: {
      absl::StatusOr<double> value = NumberOf(v, type, std::numeric_limits<double>::infinity());
      if (!value.ok()) return value.status();
      AppendRaw(*value, out);
      return absl::OkStatus();
    }
    case DataType::kBytes:
      return AppendBytes(v, rules, out);
  }
  return absl::InternalError("unknown datatype");
}

absl::Status ElementError(absl::string_view what, int64_t index, const absl::Status& reason) {
  return absl::InvalidArgumentError(absl::StrCat(what, " element ", index, ": ", reason.message()));
}

absl::Status WalkFlat(const rapidjson::Value& v, int depth, DataType type,
                      const JsonElementRules& rules, absl::string_view what, std::string& out,
                      int64_t& count) {
  if (!v.IsArray()) {
    if (absl::Status status = AppendElement(v, type, rules, out); !status.ok()) {
      return ElementError(what, count, status);
    }
    ++count;
    return absl::OkStatus();
  }
  if (depth >= kMaxJsonDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " data is nested deeper than ", kMaxJsonDepth, " levels"));
  }
  for (const rapidjson::Value& item : v.GetArray()) {
    if (absl::Status status = WalkFlat(item, depth + 1, type, rules, what, out, count);
        !status.ok()) {
      return status;
    }
  }
  return absl::OkStatus();
}

absl::Status WalkNested(const rapidjson::Value& v, const core::Shape& shape, size_t depth,
                        DataType type, const JsonElementRules& rules, absl::string_view what,
                        std::string& out, int64_t& count) {
  if (depth == shape.size()) {
    if (v.IsArray()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " is a ragged list: a list appears at depth ", depth,
                       " where the first element's nesting has values (shape ",
                       core::ShapeToString(shape), ")"));
    }
    if (absl::Status status = AppendElement(v, type, rules, out); !status.ok()) {
      return ElementError(what, count, status);
    }
    ++count;
    return absl::OkStatus();
  }
  if (!v.IsArray() || static_cast<int64_t>(v.Size()) != shape[depth]) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is a ragged list: ", v.IsArray() ? absl::StrCat("a list of ", v.Size()) : "a value",
        " appears at depth ", depth, " where the first element's nesting has a list of ",
        shape[depth], " (shape ", core::ShapeToString(shape), ")"));
  }
  for (const rapidjson::Value& item : v.GetArray()) {
    if (absl::Status status = WalkNested(item, shape, depth + 1, type, rules, what, out, count);
        !status.ok()) {
      return status;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<int64_t> ReadFlatData(const rapidjson::Value& data, DataType type,
                                     const JsonElementRules& rules, absl::string_view what,
                                     std::string& out) {
  if (!data.IsArray()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " \"data\" must be an array, got ", JsonTypeName(data)));
  }
  if (const int64_t size = core::DataTypeSize(type); size > 0) out.reserve(data.Size() * size);
  int64_t count = 0;
  if (absl::Status status = WalkFlat(data, 0, type, rules, what, out, count); !status.ok()) {
    return status;
  }
  return count;
}

absl::StatusOr<core::Shape> ReadNestedTensor(const rapidjson::Value& value, DataType type,
                                             const JsonElementRules& rules, absl::string_view what,
                                             std::string& out) {
  core::Shape shape;
  for (const rapidjson::Value* p = &value; p->IsArray(); p = &(*p)[0]) {
    if (shape.size() >= static_cast<size_t>(kMaxJsonDepth)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " is nested deeper than ", kMaxJsonDepth, " levels"));
    }
    shape.push_back(p->Size());
    if (p->Size() == 0) break;
  }
  int64_t count = 0;
  if (absl::Status status = WalkNested(value, shape, 0, type, rules, what, out, count);
      !status.ok()) {
    return status;
  }
  return shape;
}

absl::StatusOr<TensorJsonWriter> TensorJsonWriter::Make(const core::Tensor& tensor,
                                                        BytesStyle style, absl::string_view what,
                                                        NonFiniteStyle non_finite) {
  TensorJsonWriter writer;
  writer.tensor_ = tensor;
  writer.style_ = style;
  writer.non_finite_ = non_finite;
  writer.count_ = core::ElementCount(tensor.shape());
  if (writer.count_ < 0) {
    return absl::InternalError(
        absl::StrCat(what, " has an invalid shape ", core::ShapeToString(tensor.shape())));
  }
  if (tensor.type() != DataType::kBytes) {
    const int64_t expected = writer.count_ * core::DataTypeSize(tensor.type());
    if (static_cast<int64_t>(tensor.bytes().size()) != expected) {
      return absl::InternalError(
          absl::StrCat(what, " holds ", tensor.bytes().size(), " bytes but its shape ",
                       core::ShapeToString(tensor.shape()), " needs ", expected));
    }
    return writer;
  }
  absl::StatusOr<std::vector<absl::string_view>> elements =
      core::SplitBytesElements(tensor.bytes());
  if (!elements.ok())
    return absl::InternalError(absl::StrCat(what, ": ", elements.status().message()));
  if (static_cast<int64_t>(elements->size()) != writer.count_) {
    return absl::InternalError(absl::StrCat(what, " holds ", elements->size(),
                                            " BYTES elements but its shape needs ", writer.count_));
  }
  if (style == BytesStyle::kString) {
    for (size_t i = 0; i < elements->size(); ++i) {
      if (!IsValidUtf8((*elements)[i])) {
        return absl::InvalidArgumentError(absl::StrCat(
            what, " element ", i,
            " is not valid UTF-8, so it cannot travel as a JSON string; ask for this output "
            "as binary data (\"binary_data\": true)"));
      }
    }
  }
  writer.strings_ = *std::move(elements);
  return writer;
}

void TensorJsonWriter::WriteFloatElement(JsonWriter& writer, float value) const {
  if (!std::isfinite(value) && non_finite_ == NonFiniteStyle::kString) {
    return WriteNonFiniteString(writer, value);
  }
  WriteFloat(writer, value);
}

void TensorJsonWriter::WriteNonFiniteString(JsonWriter& writer, double value) {
  WriteString(writer, std::isnan(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity");
}

void TensorJsonWriter::WriteElement(JsonWriter& writer, int64_t index) const {
  const char* p = tensor_.bytes().data();
  switch (tensor_.type()) {
    case DataType::kBool:
      writer.Bool(p[index] != 0);
      return;
    case DataType::kUint8:
      writer.Uint(LoadRaw<uint8_t>(p + index));
      return;
    case DataType::kUint16:
      writer.Uint(LoadRaw<uint16_t>(p + 2 * index));
      return;
    case DataType::kUint32:
      writer.Uint(LoadRaw<uint32_t>(p + 4 * index));
      return;
    case DataType::kUint64:
      writer.Uint64(LoadRaw<uint64_t>(p + 8 * index));
      return;
    case DataType::kInt8:
      writer.Int(LoadRaw<int8_t>(p + index));
      return;
    case DataType::kInt16:
      writer.Int(LoadRaw<int16_t>(p + 2 * index));
      return;
    case DataType::kInt32:
      writer.Int(LoadRaw<int32_t>(p + 4 * index));
      return;
    case DataType::kInt64:
      writer.Int64(LoadRaw<int64_t>(p + 8 * index));
      return;
    case DataType::kFp16:
      WriteFloatElement(writer, HalfToFloat(LoadRaw<uint16_t>(p + 2 * index)));
      return;
    case DataType::kFp32:
      WriteFloatElement(writer, LoadRaw<float>(p + 4 * index));
      return;
    case DataType::kFp64: {
      const double value = LoadRaw<double>(p + 8 * index);
      if (!std::isfinite(value) && non_finite_ == NonFiniteStyle::kString) {
        return WriteNonFiniteString(writer, value);
      }
      WriteDouble(writer, value);
      return;
    }
    case DataType::kBytes: {
      const absl::string_view element = strings_[index];
      if (style_ == BytesStyle::kB64 ||
          (style_ == BytesStyle::kStringOrB64 && !IsValidUtf8(element))) {
        writer.StartObject();
        writer.Key("b64");
        WriteString(writer, absl::Base64Escape(element));
        writer.EndObject();
      } else {
        WriteString(writer, element);
      }
      return;
    }
  }
}

void TensorJsonWriter::WriteFlat(JsonWriter& writer, int64_t first, int64_t count) const {
  writer.StartArray();
  for (int64_t i = first; i < first + count; ++i) WriteElement(writer, i);
  writer.EndArray();
}

void TensorJsonWriter::WriteNested(JsonWriter& writer, const core::Shape& shape,
                                   int64_t first) const {
  if (shape.empty()) {
    WriteElement(writer, first);
    return;
  }
  const core::Shape inner(shape.begin() + 1, shape.end());
  const int64_t stride = core::ElementCount(inner);
  writer.StartArray();
  for (int64_t i = 0; i < shape[0]; ++i) WriteNested(writer, inner, first + i * stride);
  writer.EndArray();
}

float HalfToFloat(uint16_t half) {
  const float sign = (half & 0x8000) ? -1.0f : 1.0f;
  const int exponent = (half >> 10) & 0x1f;
  const int mantissa = half & 0x3ff;
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -24);
  if (exponent == 31) {
    return mantissa == 0 ? sign * std::numeric_limits<float>::infinity()
                         : std::numeric_limits<float>::quiet_NaN();
  }
  return sign * std::ldexp(static_cast<float>(mantissa | 0x400), exponent - 25);
}

uint16_t FloatToHalf(float value) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof(bits));
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  const uint32_t magnitude = bits & 0x7fffffff;
  if (magnitude >= 0x7f800000) return sign | (magnitude > 0x7f800000 ? 0x7e00 : 0x7c00);
  if (magnitude >= 0x477ff000) return sign | 0x7c00;  // 65520 and up round to infinity
  if (magnitude < 0x38800000) {
    // Below the smallest normal half (2^-14): a multiple of 2^-24, rounded to nearest even.
    const float scaled = std::fabs(value) * 16777216.0f;  // exact: a power of two
    return sign | static_cast<uint16_t>(std::nearbyint(scaled));
  }
  uint32_t half = ((magnitude >> 23) - 127 + 15) << 10 | ((magnitude >> 13) & 0x3ff);
  const uint32_t rest = magnitude & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) ++half;  // may carry into the exponent
  return sign | static_cast<uint16_t>(half);
}

}  // namespace modeld::transport::http
