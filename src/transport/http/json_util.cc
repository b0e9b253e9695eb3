#include "transport/http/json_util.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
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
// Stops the parse at a member that an object holds twice: RFC 8259 leaves its meaning open
// (parsers keep the first, the last, or both), so a request that has one is refused rather
// than read one way here and another way by a proxy in front.
class DepthLimiter {
 public:
  using Ch = char;
  DepthLimiter(rapidjson::Document& doc, int max_depth) : doc_(doc), max_depth_(max_depth) {}
  bool too_deep() const { return too_deep_; }
  // The member name an object held twice; nullopt when none did.
  const std::optional<std::string>& duplicate() const { return duplicate_; }

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
    if (!keys_.back().emplace(str, length).second) {
      duplicate_.emplace(str, length);
      return false;
    }
    return doc_.Key(str, length, copy);
  }
  bool StartObject() {
    keys_.emplace_back();
    return Enter() && doc_.StartObject();
  }
  bool EndObject(rapidjson::SizeType members) {
    --depth_;
    keys_.pop_back();
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
  std::vector<absl::flat_hash_set<std::string>> keys_;  // the open objects' member names
  std::optional<std::string> duplicate_;
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

// Whether the significant digits of a number (its integer then fraction digits, leading
// zeros skipped) start with 18446744073709551615 (UINT64_MAX) and go on with a 5 or more.
bool SignificandIsUint64Max(absl::string_view integer_digits, absl::string_view fraction_digits) {
  constexpr absl::string_view kMax = "18446744073709551615";
  size_t matched = 0;
  bool leading = true;
  for (const absl::string_view part : {integer_digits, fraction_digits}) {
    for (const char d : part) {
      if (leading && d == '0') continue;
      leading = false;
      if (matched == kMax.size()) return d >= '5';
      if (d != kMax[matched]) return false;
      ++matched;
    }
  }
  return false;
}

// The decimal exponent E of a nonzero number written as 0.d1d2... x 10^E (saturated far
// beyond any double's range).
int64_t DecimalExponent(absl::string_view integer_digits, absl::string_view fraction_digits,
                        absl::string_view exponent_text) {
  int64_t exponent = 0;
  bool negative = false;
  for (const char d : exponent_text) {
    if (d == '-') negative = true;
    if (d >= '0' && d <= '9') exponent = std::min<int64_t>(exponent * 10 + (d - '0'), 1'000'000);
  }
  if (negative) exponent = -exponent;
  const size_t first = integer_digits.find_first_not_of('0');
  if (first != absl::string_view::npos) {
    return exponent + static_cast<int64_t>(integer_digits.size() - first);
  }
  const size_t leading_zeros =
      std::min(fraction_digits.find_first_not_of('0'), fraction_digits.size());
  return exponent - static_cast<int64_t>(leading_zeros);
}

// Works around four bugs of RapidJSON 1.1's full-precision number reading, both found by
// tests/fuzz (UBSan), before RapidJSON sees `text`:
// - A zero with an exponent or a long fraction is misread: `0e66` as 2.1e-109, `0.000e99` as
//   6.4e+293, `0.` and 20 zeros at random (StrtodDiyFp normalizes a zero significand), and
//   `0.0e400` is refused as too big. Such a number is written as 0.0 and spaces before
//   parsing (the same length, so error offsets hold).
// - NaN, Inf or Infinity followed by a fraction or an exponent (`Infe40`) sends no digits to
//   StrtodFullPrecision, which then reads before its buffer: INVALID_ARGUMENT here.
// - Significant digits 18446744073709551615 followed by a 5 or more (184467440737095516155,
//   1.84467440737095516159e-7) overflow StrtodDiyFp's 64-bit significand when it rounds up:
//   such a number is written as the shortest text of its double, padded with spaces.
// - A number of 10^309 or more, or below 10^-324, that passes RapidJSON's own range checks
//   makes StrtodDiyFp read past its table of powers of ten: the first is refused as too big,
//   the second written as 0.0.
// Strings are left alone. nullopt: nothing to change (the common case; no copy is made).
absl::StatusOr<std::optional<std::string>> WorkAroundRapidJson(absl::string_view text) {
  std::optional<std::string> fixed;
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
    if (c != '-' && !is_digit(c) && c != 'N' && c != 'I') continue;
    // A number: [-] digits [. digits] [(e|E) [+|-] digits], or [-] NaN, Inf or Infinity.
    // RapidJSON judges the syntax.
    size_t j = i + (c == '-' ? 1 : 0);
    if (const absl::string_view rest = text.substr(j);
        absl::StartsWith(rest, "NaN") || absl::StartsWith(rest, "Inf")) {
      j += absl::StartsWith(rest, "Infinity") ? 8 : 3;
      if (j < text.size() && (text[j] == '.' || text[j] == 'e' || text[j] == 'E')) {
        return absl::InvalidArgumentError(absl::StrCat("malformed JSON at byte ", j, ": ",
                                                       text.substr(i, j - i),
                                                       " cannot have a fraction or an exponent"));
      }
      i = j - 1;
      continue;
    }
    const size_t mantissa = j;
    const auto skip_digits = [&] {
      const size_t first = j;
      while (j < text.size() && is_digit(text[j])) ++j;
      return text.substr(first, j - first);
    };
    const auto all_zeros = [](absl::string_view digits) {
      return digits.find_first_not_of('0') == absl::string_view::npos;
    };
    // Only a well-formed number is rewritten: what is malformed stays malformed (RapidJSON
    // refuses it before converting it).
    const absl::string_view integer_digits = skip_digits();
    bool zero = integer_digits == "0";
    bool well_formed =
        !integer_digits.empty() && (integer_digits.size() == 1 || integer_digits[0] != '0');
    absl::string_view fraction_digits;
    const bool fraction = j < text.size() && text[j] == '.';
    if (fraction) {
      ++j;
      fraction_digits = skip_digits();
      zero = zero && !fraction_digits.empty() && all_zeros(fraction_digits);
      well_formed = well_formed && !fraction_digits.empty();
    }
    bool exponent = false;
    absl::string_view exponent_text;  // [+|-] digits
    if (j < text.size() && (text[j] == 'e' || text[j] == 'E')) {
      exponent = true;
      ++j;
      const size_t first = j;
      if (j < text.size() && (text[j] == '+' || text[j] == '-')) ++j;
      const bool digits = !skip_digits().empty();
      zero = zero && digits;
      well_formed = well_formed && digits;
      exponent_text = text.substr(first, j - first);
    }
    const bool delimited = j == text.size() ||
                           absl::string_view(" \t\r\n,]}").find(text[j]) != absl::string_view::npos;
    if (well_formed && !zero) {
      // StrtodDiyFp looks up a cached power of ten for 10^-348..10^340 and checks neither end:
      // a number of 10^309 or more whose integer digits and exponent each pass RapidJSON's
      // own checks (6e99 with 300 more digits), or one below 10^-324 written with a long
      // fraction (0. and 400 zeros, then 1), reads out of its table (UBSan).
      const int64_t magnitude = DecimalExponent(integer_digits, fraction_digits, exponent_text);
      if (magnitude > 309) {  // at least 10^309, above DBL_MAX: as RapidJSON refuses 1e400
        return absl::InvalidArgumentError(
            absl::StrCat("malformed JSON at byte ", i, ": Number too big to be stored in double."));
      }
      const bool underflow = magnitude < -323;  // below 10^-324: the nearest double is 0
      // Digits 18446744073709551615 and then a 5 or more overflow StrtodDiyFp's significand
      // when it rounds up, which then reads the number as garbage (UBSan: a zero significand
      // normalized).
      if (underflow || SignificandIsUint64Max(integer_digits, fraction_digits)) {
        if (!delimited) {
          return absl::InvalidArgumentError(absl::StrCat("malformed JSON at byte ", j,
                                                         ": a number cannot be followed by '",
                                                         text.substr(j, 1), "'"));
        }
        const absl::string_view number = text.substr(i, j - i);
        std::string shortest = c == '-' ? "-0.0" : "0.0";  // as RapidJSON reads 1e-400
        if (!underflow) {
          // Written instead as the shortest text of the double it stands for.
          double value = 0;
          const std::from_chars_result read =
              std::from_chars(number.data(), number.data() + number.size(), value);
          if (read.ec == std::errc::result_out_of_range) {
            if (magnitude > 0) {
              return absl::InvalidArgumentError(absl::StrCat(
                  "malformed JSON at byte ", i, ": Number too big to be stored in double."));
            }
          } else if (read.ec != std::errc() || read.ptr != number.data() + number.size()) {
            return absl::InvalidArgumentError(
                absl::StrCat("malformed JSON at byte ", i, ": unreadable number ", number));
          } else {
            char buffer[32];
            const std::to_chars_result end = std::to_chars(buffer, buffer + sizeof(buffer), value);
            // A bare integer ("18446744073709552000") is above UINT64_MAX, so RapidJSON reads
            // a double from it too.
            shortest.assign(buffer, end.ptr - buffer);
          }
        }
        if (shortest.size() > number.size()) {  // never: 17 digits against at least 21
          return absl::InvalidArgumentError(absl::StrCat(
              "number at byte ", i, " has more digits than a double can hold: ", number));
        }
        if (!fixed.has_value()) fixed.emplace(text);
        shortest.resize(number.size(), ' ');
        fixed->replace(i, number.size(), shortest);
        i = j - 1;
        continue;
      }
    }
    // RapidJSON reads the zero right on its fast path unless it scales by more than 10^22.
    if (zero && (exponent || fraction_digits.size() > 15)) {
      if (!fixed.has_value()) fixed.emplace(text);
      // "0.0" (a float, -0.0 with its sign) only where the number ends as JSON says it must:
      // glued to what follows (0e0e66, malformed) it would start a new number (0.0e66).
      std::string zero_text(j - mantissa, ' ');  // at least 3 bytes: 0.0, 0e5
      zero_text.replace(0, delimited ? 3 : 1, delimited ? "0.0" : "0");
      fixed->replace(mantissa, j - mantissa, zero_text);
    }
    i = j > i ? j - 1 : i;  // on after the number
  }
  return fixed;
}

}  // namespace

absl::Status ParseJson(absl::string_view text, rapidjson::Document& doc, int max_depth) {
  // The document copies what it keeps (strings too), so `fixed` may go after parsing.
  absl::StatusOr<std::optional<std::string>> fixed = WorkAroundRapidJson(text);
  if (!fixed.ok()) return fixed.status();
  if (fixed->has_value()) text = **fixed;
  rapidjson::ParseResult result;
  bool too_deep = false;
  std::optional<std::string> duplicate;
  auto generate = [&](rapidjson::Document& handler) {
    DepthLimiter limiter(handler, max_depth);
    rapidjson::MemoryStream memory(text.data(), text.size());
    rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> stream(memory);
    rapidjson::Reader reader;
    result = reader.Parse<kParseFlags>(stream, limiter);
    too_deep = limiter.too_deep();
    duplicate = limiter.duplicate();
    return !result.IsError();
  };
  doc.Populate(generate);
  if (duplicate.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("a JSON object holds the member \"",
                     duplicate->size() <= 64 ? *duplicate : duplicate->substr(0, 64) + "...",
                     "\" twice (at byte ", result.Offset(), "); send each member once"));
  }
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
