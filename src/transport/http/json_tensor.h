// Tensor values <-> JSON, shared by the KServe and TensorFlow Serving REST codecs.
//
// Reading never trusts the JSON: every value's type and range is checked against the
// datatype, nesting depth is bounded, and errors say which element is wrong and why. The
// messages start with `what` (e.g. "input 'x'") so the caller need not re-wrap them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/data_type.h"
#include "core/tensor.h"
#include "rapidjson/document.h"
#include "transport/http/json_util.h"

namespace modeld::transport::http {

// Nested lists deeper than this are refused (no tensor has that many dimensions).
inline constexpr int kMaxJsonDepth = 64;

// How values of a datatype may be given. BYTES takes strings (their UTF-8 bytes) and, with
// `accept_b64`, {"b64": "<base64>"} objects; BOOL takes true/false; integer types take
// integral numbers in range; FP32/FP64 take any number, NaN/Infinity/-Infinity, and the strings
// "NaN", "Infinity" and "-Infinity" (NonFiniteStyle::kString's answers, sent back); FP16 takes
// numbers only with `accept_fp16_numbers` (rounded to nearest even), else it has no JSON form.
struct JsonElementRules {
  bool accept_b64 = false;
  bool accept_fp16_numbers = false;
};

// KServe `data`: an array, flat or nested to any depth (row-major), whose leaves are the
// values. Appends them as little-endian `type` elements to `out` and returns their count.
absl::StatusOr<int64_t> ReadFlatData(const rapidjson::Value& data, core::DataType type,
                                     const JsonElementRules& rules, absl::string_view what,
                                     std::string& out);

// TensorFlow Serving: one value or a rectangular nested list; the shape is its nesting
// ([] for a bare value). Appends the values to `out`. INVALID_ARGUMENT for ragged lists.
absl::StatusOr<core::Shape> ReadNestedTensor(const rapidjson::Value& value, core::DataType type,
                                             const JsonElementRules& rules, absl::string_view what,
                                             std::string& out);

// How NaN and the infinities are written.
enum class NonFiniteStyle {
  kLiteral,  // NaN, Infinity, -Infinity: TensorFlow Serving's REST API documents these
  kString,   // "NaN", "Infinity", "-Infinity": strict JSON (KServe V2), which numpy, Python's
             // float(), JavaScript's Number() and tritonclient read back as the value
};

// How BYTES elements are written.
enum class BytesStyle {
  kString,       // a string; INVALID_ARGUMENT when an element is not UTF-8 (KServe)
  kB64,          // {"b64": "<base64>"} (TensorFlow Serving outputs whose name ends in _bytes)
  kStringOrB64,  // a string when it is UTF-8, else {"b64": ...} (other TF Serving outputs)
};

// Writes the elements of one tensor. FP16 is written as numbers (its exact float value).
class TensorJsonWriter {
 public:
  // INVALID_ARGUMENT (starting with `what`) when the tensor's bytes do not match its shape, or
  // a BYTES element cannot be written in `style`.
  static absl::StatusOr<TensorJsonWriter> Make(
      const core::Tensor& tensor, BytesStyle style, absl::string_view what,
      NonFiniteStyle non_finite = NonFiniteStyle::kLiteral);

  int64_t size() const { return count_; }
  // Element `index` (row-major), 0 <= index < size().
  void WriteElement(JsonWriter& writer, int64_t index) const;
  // Elements [first, first + count) as one flat array.
  void WriteFlat(JsonWriter& writer, int64_t first, int64_t count) const;
  // Elements from `first` nested by `shape` (a bare value when `shape` is empty).
  void WriteNested(JsonWriter& writer, const core::Shape& shape, int64_t first) const;

 private:
  void WriteFloatElement(JsonWriter& writer, float value) const;
  static void WriteNonFiniteString(JsonWriter& writer, double value);

  core::Tensor tensor_;
  BytesStyle style_ = BytesStyle::kString;
  NonFiniteStyle non_finite_ = NonFiniteStyle::kLiteral;
  int64_t count_ = 0;
  std::vector<absl::string_view> strings_;  // BYTES elements
};

// IEEE binary16 <-> binary32, rounding to nearest even.
float HalfToFloat(uint16_t half);
uint16_t FloatToHalf(float value);

}  // namespace modeld::transport::http
