#include "common/byte_size.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace modeld::common {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

absl::Status NotASize(absl::string_view text, absl::string_view why) {
  // CHexEscape keeps a message on one line whatever a flag's value holds.
  return absl::InvalidArgumentError(absl::StrCat("'", absl::CHexEscape(text), "' is not a size (",
                                                 why,
                                                 "): expects a size such as 2G, 512M or 1.5GiB"));
}

// The power of 1024 a unit stands for, or -1 for an unknown unit. `unit` is upper-case.
int UnitShift(absl::string_view unit) {
  if (unit.empty() || unit == "B") return 0;
  const size_t prefix = absl::string_view("KMGT").find(unit.front());
  if (prefix == absl::string_view::npos) return -1;
  const int shift = 10 * static_cast<int>(prefix + 1);
  unit.remove_prefix(1);
  absl::ConsumePrefix(&unit, "I");  // "Ki", "KiB": an "i" only ever follows a prefix
  if (unit.empty() || unit == "B") return shift;
  return -1;
}

}  // namespace

absl::StatusOr<int64_t> ParseByteSize(absl::string_view text) {
  absl::string_view rest = absl::StripAsciiWhitespace(text);
  if (rest.empty()) return NotASize(text, "it is empty");
  if (rest.front() == '-') return NotASize(text, "it is negative");

  // The whole part, with an overflow check: up to uint64 here, INT64_MAX once scaled.
  uint64_t whole = 0;
  bool whole_overflow = false;
  size_t i = 0;
  for (; i < rest.size() && absl::ascii_isdigit(rest[i]); ++i) {
    const uint64_t digit = static_cast<uint64_t>(rest[i] - '0');
    if (whole > (std::numeric_limits<uint64_t>::max() - digit) / 10) whole_overflow = true;
    if (!whole_overflow) whole = whole * 10 + digit;
  }
  if (i == 0) return NotASize(text, "it does not start with a number");

  // The fraction as numerator / 10^digits. Digits past the 18th are dropped: they are worth
  // less than 2^40 / 10^18 of a byte, and 10^18 still fits the long division below.
  uint64_t fraction = 0;
  uint64_t denominator = 1;
  bool has_fraction = false;
  if (i < rest.size() && rest[i] == '.') {
    ++i;
    const size_t first = i;
    for (; i < rest.size() && absl::ascii_isdigit(rest[i]); ++i) {
      if (denominator < 1'000'000'000'000'000'000ULL) {
        fraction = fraction * 10 + static_cast<uint64_t>(rest[i] - '0');
        denominator *= 10;
      }
    }
    if (i == first) return NotASize(text, "a '.' must be followed by digits");
    has_fraction = fraction != 0;
  }

  absl::string_view unit_text = absl::StripLeadingAsciiWhitespace(rest.substr(i));
  const std::string unit = absl::AsciiStrToUpper(unit_text);
  const int shift = UnitShift(unit);
  if (shift < 0) {
    return NotASize(text, absl::StrCat("unknown unit '", absl::CHexEscape(unit_text),
                                       "'; the units are K, M, G and T, each optionally "
                                       "followed by i and B, all powers of 1024"));
  }
  if (has_fraction && shift == 0) {
    return NotASize(text, "a number of bytes must be whole");
  }

  if (whole_overflow || whole > (static_cast<uint64_t>(kMax) >> shift)) {
    return NotASize(text, "it is larger than 2^63 - 1 bytes");
  }
  uint64_t bytes = whole << shift;
  // floor(fraction * 2^shift / denominator) by binary long division: fraction * 2^40
  // would overflow, the remainder (below denominator <= 10^18) doubled does not.
  uint64_t quotient = 0;
  uint64_t remainder = fraction;
  for (int bit = 0; bit < shift; ++bit) {
    remainder *= 2;
    quotient = quotient * 2 + remainder / denominator;
    remainder %= denominator;
  }
  if (quotient > static_cast<uint64_t>(kMax) - bytes) {
    return NotASize(text, "it is larger than 2^63 - 1 bytes");
  }
  bytes += quotient;
  if (bytes == 0) {
    return NotASize(text, fraction == 0 ? "it is zero" : "it is less than one byte");
  }
  return static_cast<int64_t>(bytes);
}

std::string FormatBytes(int64_t bytes) {
  // The magnitude as unsigned, so INT64_MIN has one too.
  const uint64_t magnitude =
      bytes < 0 ? uint64_t{0} - static_cast<uint64_t>(bytes) : static_cast<uint64_t>(bytes);
  const char* sign = bytes < 0 ? "-" : "";
  if (magnitude < 1024) return absl::StrCat(sign, magnitude, " B");

  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  constexpr int kUnitCount = sizeof(kUnits) / sizeof(kUnits[0]);
  for (int u = 0; u < kUnitCount; ++u) {
    // A double is exact enough for a message: 53 bits of a 64-bit size.
    const double value = std::ldexp(static_cast<double>(magnitude), -10 * (u + 1));
    // GiB and up, and anything under 10 of its unit ("1.5 MiB", not "2 MiB").
    const bool one_decimal = u >= 2 || value < 9.95;
    const double rounded = one_decimal ? std::round(value * 10) / 10 : std::round(value);
    // 1023.7 MiB rounds to 1024: the next unit says it better ("1.0 GiB").
    if (rounded >= 1024 && u + 1 < kUnitCount) continue;
    if (one_decimal) return absl::StrFormat("%s%.1f %s", sign, rounded, kUnits[u]);
    return absl::StrFormat("%s%.0f %s", sign, rounded, kUnits[u]);
  }
  return "";  // not reached: the last unit always returns
}

}  // namespace modeld::common
