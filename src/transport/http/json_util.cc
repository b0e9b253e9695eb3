#include "transport/http/json_util.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "rapidjson/error/en.h"

namespace modeld::transport::http {
namespace {

constexpr unsigned kParseFlags =
    rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag |
    rapidjson::kParseFullPrecisionFlag | rapidjson::kParseNanAndInfFlag;

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

// RapidJSON 1.1 reads a number whose digits are all zero but that has an exponent wrongly at
// full precision: `0e66` as 2.1e-109 and `0.000e99` as 6.4e+293 (StrtodDiyFp normalizes a zero
// significand, undefined behaviour that tests/fuzz found), and refuses `0.0e400` as too big.
// Such a number is zero, so this writes it as one: its exponent becomes ".0" (when it has no
// fraction, so it stays a float, -0.0 included) and spaces, keeping every byte offset for
// error messages. Strings are left alone. nullopt: nothing to blank (the common case; no
// copy is made).
std::optional<std::string> BlankZeroExponents(absl::string_view text) {
  std::optional<std::string> blanked;
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, which may be a quote
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      continue;
    }
    if (c != '-' && !is_digit(c)) continue;
    // A number: [-] digits [. digits] [(e|E) [+|-] digits]. RapidJSON judges its syntax.
    size_t j = i + (c == '-' ? 1 : 0);
    bool any_digit = false;
    bool all_zero = true;
    const auto skip_digits = [&] {
      for (; j < text.size() && is_digit(text[j]); ++j) {
        any_digit = true;
        all_zero = all_zero && text[j] == '0';
      }
    };
    skip_digits();
    const bool fraction = j < text.size() && text[j] == '.';
    if (fraction) {
      ++j;
      skip_digits();
    }
    const size_t exponent = j;
    if (j < text.size() && (text[j] == 'e' || text[j] == 'E')) {
      ++j;
      if (j < text.size() && (text[j] == '+' || text[j] == '-')) ++j;
      const size_t exponent_digits = j;
      while (j < text.size() && is_digit(text[j])) ++j;
      if (any_digit && all_zero && j > exponent_digits) {
        if (!blanked.has_value()) blanked.emplace(text);
        std::string replacement(j - exponent, ' ');  // at least 2: the 'e' and a digit
        // ".0" only where the number ends as JSON says it must: glued to what follows (0e0e66,
        // malformed) it would make a new number of its own (0.0e66).
        const bool delimited = j == text.size() || absl::string_view(" \t\r\n,]}").find(text[j]) !=
                                                       absl::string_view::npos;
        if (!fraction && delimited) replacement.replace(0, 2, ".0");
        blanked->replace(exponent, j - exponent, replacement);
      }
    }
    i = j > i ? j - 1 : i;  // on after the number
  }
  return blanked;
}

}  // namespace

absl::Status ParseJson(absl::string_view text, rapidjson::Document& doc) {
  // The document copies what it keeps (strings too), so `blanked` may go after parsing.
  const std::optional<std::string> blanked = BlankZeroExponents(text);
  if (blanked.has_value()) text = *blanked;
  doc.Parse<kParseFlags>(text.data(), text.size());
  if (doc.HasParseError()) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed JSON at byte ", doc.GetErrorOffset(), ": ",
                     rapidjson::GetParseError_En(doc.GetParseError())));
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
