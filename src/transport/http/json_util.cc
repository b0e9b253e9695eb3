#include "transport/http/json_util.h"

#include <charconv>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "rapidjson/encodedstream.h"
#include "rapidjson/error/en.h"
#include "rapidjson/memorystream.h"
#include "rapidjson/reader.h"

namespace modeld::transport::http {
namespace {

constexpr unsigned kParseFlags =
    rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag |
    rapidjson::kParseFullPrecisionFlag | rapidjson::kParseNanAndInfFlag;

// A SAX handler that builds `doc` and stops the parse when arrays and objects nest deeper
// than `max_depth`.
class DepthLimiter {
 public:
  using Ch = char;
  DepthLimiter(rapidjson::Document& doc, int max_depth) : doc_(doc), max_depth_(max_depth) {}
  bool too_deep() const { return too_deep_; }

  bool Null() { return doc_.Null(); }
  bool Bool(bool b) { return doc_.Bool(b); }
  bool Int(int i) { return doc_.Int(i); }
  bool Uint(unsigned i) { return doc_.Uint(i); }
  bool Int64(int64_t i) { return doc_.Int64(i); }
  bool Uint64(uint64_t i) { return doc_.Uint64(i); }
  bool Double(double d) { return doc_.Double(d); }
  bool RawNumber(const Ch* str, rapidjson::SizeType length, bool copy) {
    return doc_.RawNumber(str, length, copy);
  }
  bool String(const Ch* str, rapidjson::SizeType length, bool copy) {
    return doc_.String(str, length, copy);
  }
  bool Key(const Ch* str, rapidjson::SizeType length, bool copy) {
    return doc_.Key(str, length, copy);
  }
  bool StartObject() { return Enter() && doc_.StartObject(); }
  bool EndObject(rapidjson::SizeType members) {
    --depth_;
    return doc_.EndObject(members);
  }
  bool StartArray() { return Enter() && doc_.StartArray(); }
  bool EndArray(rapidjson::SizeType elements) {
    --depth_;
    return doc_.EndArray(elements);
  }

 private:
  bool Enter() {
    if (++depth_ > max_depth_) too_deep_ = true;
    return !too_deep_;
  }
  rapidjson::Document& doc_;
  const int max_depth_;
  int depth_ = 0;
  bool too_deep_ = false;
};

// The length of the UTF-8 sequence starting at `p` (at most `left` bytes), or 0 when it is
// malformed.
size_t Utf8SequenceLength(const unsigned char* p, size_t left) {
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  size_t length = 0;
  uint32_t min = 0;
  uint32_t code = 0;
  if ((c & 0xe0) == 0xc0) {
    length = 2, min = 0x80, code = c & 0x1f;
  } else if ((c & 0xf0) == 0xe0) {
    length = 3, min = 0x800, code = c & 0x0f;
  } else if ((c & 0xf8) == 0xf0) {
    length = 4, min = 0x10000, code = c & 0x07;
  } else {
    return 0;
  }
  if (length > left) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    code = (code << 6) | (p[i] & 0x3f);
  }
  if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return 0;
  return length;
}

}  // namespace

absl::Status ParseJson(absl::string_view text, rapidjson::Document& doc, int max_depth) {
  rapidjson::ParseResult result;
  bool too_deep = false;
  auto generate = [&](rapidjson::Document& handler) {
    DepthLimiter limiter(handler, max_depth);
    rapidjson::MemoryStream memory(text.data(), text.size());
    rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> stream(memory);
    rapidjson::Reader reader;
    result = reader.Parse<kParseFlags>(stream, limiter);
    too_deep = limiter.too_deep();
    return !result.IsError();
  };
  doc.Populate(generate);
  if (too_deep) {
    return absl::InvalidArgumentError(
        absl::StrCat("JSON nested deeper than ", max_depth, " levels at byte ", result.Offset(),
                     " (the limit is --http-max-json-depth=", max_depth, ")"));
  }
  if (result.IsError()) {
    return absl::InvalidArgumentError(absl::StrCat("malformed JSON at byte ", result.Offset(), ": ",
                                                   rapidjson::GetParseError_En(result.Code())));
  }
  return absl::OkStatus();
}

const char* JsonTypeName(const rapidjson::Value& value) {
  switch (value.GetType()) {
    case rapidjson::kNullType:
      return "null";
    case rapidjson::kFalseType:
      return "false";
    case rapidjson::kTrueType:
      return "true";
    case rapidjson::kObjectType:
      return "an object";
    case rapidjson::kArrayType:
      return "an array";
    case rapidjson::kStringType:
      return "a string";
    case rapidjson::kNumberType:
      return "a number";
  }
  return "a value";
}

bool IsValidUtf8(absl::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t left = bytes.size();
  while (left > 0) {
    const size_t length = Utf8SequenceLength(p, left);
    if (length == 0) return false;
    p += length;
    left -= length;
  }
  return true;
}

void WriteSanitizedString(JsonWriter& writer, absl::string_view text) {
  if (IsValidUtf8(text)) {
    WriteString(writer, text);
    return;
  }
  std::string clean;
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  size_t left = text.size();
  while (left > 0) {
    const size_t length = Utf8SequenceLength(p, left);
    if (length == 0) {
      clean += "\xef\xbf\xbd";  // U+FFFD REPLACEMENT CHARACTER
      ++p, --left;
    } else {
      clean.append(reinterpret_cast<const char*>(p), length);
      p += length, left -= length;
    }
  }
  WriteString(writer, clean);
}

void WriteDouble(JsonWriter& writer, double value) {
  if (!std::isfinite(value)) {
    writer.Double(value);  // NaN, Infinity, -Infinity (kWriteNanAndInfFlag)
    return;
  }
  if (value == 0 && std::signbit(value)) {
    // "-0" reads back as the integer 0 in Python (and loses its sign); "-0.0" is a float.
    writer.RawValue("-0.0", 4, rapidjson::kNumberType);
    return;
  }
  char text[32];
  const std::to_chars_result end = std::to_chars(text, text + sizeof(text), value);
  writer.RawValue(text, end.ptr - text, rapidjson::kNumberType);
}

void WriteFloat(JsonWriter& writer, float value) {
  if (!std::isfinite(value)) {
    writer.Double(value);
    return;
  }
  // The shortest text that reads back as this float32 reads back through float64 (how JSON
  // clients parse) to the same float32 for every finite float but one pair: an exhaustive check
  // of all 2^31 magnitudes found only 0x15ae43fd (7.038531e-26), whose text lands on a float32
  // rounding midpoint as a float64. That one is printed as its exact float64 value instead,
  // and so is -0 (see WriteDouble).
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7fffffffu) == 0x15ae43fdu || bits == 0x80000000u) {
    WriteDouble(writer, value);
    return;
  }
  char text[32];
  const std::to_chars_result end = std::to_chars(text, text + sizeof(text), value);
  writer.RawValue(text, end.ptr - text, rapidjson::kNumberType);
}

}  // namespace modeld::transport::http
