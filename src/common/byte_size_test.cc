#include "common/byte_size.h"

#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::common {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kKi = int64_t{1} << 10;
constexpr int64_t kMi = int64_t{1} << 20;
constexpr int64_t kGi = int64_t{1} << 30;
constexpr int64_t kTi = int64_t{1} << 40;

int64_t Parsed(const std::string& text) {
  absl::StatusOr<int64_t> bytes = ParseByteSize(text);
  EXPECT_TRUE(bytes.ok()) << text << ": " << bytes.status();
  return bytes.ok() ? *bytes : -1;
}

TEST(ParseByteSizeTest, PlainNumbersAreBytes) {
  EXPECT_EQ(Parsed("4096"), 4096);
  EXPECT_EQ(Parsed("4096B"), 4096);
  EXPECT_EQ(Parsed("4096b"), 4096);
  EXPECT_EQ(Parsed("1"), 1);
  EXPECT_EQ(Parsed("1.0"), 1);  // a whole number written with a fraction
}

TEST(ParseByteSizeTest, EveryUnitIsAPowerOf1024WithOrWithoutI) {
  EXPECT_EQ(Parsed("100K"), 100 * kKi);
  EXPECT_EQ(Parsed("512M"), 512 * kMi);
  EXPECT_EQ(Parsed("2G"), 2 * kGi);
  EXPECT_EQ(Parsed("1T"), kTi);
  for (const char* text : {"2G", "2g", "2GB", "2gb", "2Gi", "2gi", "2GiB", "2gib", "2giB"}) {
    EXPECT_EQ(Parsed(text), 2 * kGi) << text;
  }
  EXPECT_EQ(Parsed("3KiB"), 3 * kKi);
  EXPECT_EQ(Parsed("3Mi"), 3 * kMi);
  EXPECT_EQ(Parsed("3TB"), 3 * kTi);
}

TEST(ParseByteSizeTest, FractionsRoundDownToAWholeByte) {
  EXPECT_EQ(Parsed("1.5G"), kGi + kGi / 2);
  EXPECT_EQ(Parsed("1.5GiB"), kGi + kGi / 2);
  EXPECT_EQ(Parsed("0.5K"), 512);
  EXPECT_EQ(Parsed("0.1K"), 102);  // 102.4
  EXPECT_EQ(Parsed("2.25T"), 2 * kTi + kTi / 4);
  // Past 18 digits the fraction is dropped, not overflowed.
  EXPECT_EQ(Parsed("1.99999999999999999999999T"), 2 * kTi - 1);
}

TEST(ParseByteSizeTest, SpacesBetweenNumberAndUnitAndAroundTheWhole) {
  EXPECT_EQ(Parsed("2 GB"), 2 * kGi);
  EXPECT_EQ(Parsed("2  G"), 2 * kGi);
  EXPECT_EQ(Parsed(" 512M "), 512 * kMi);
  EXPECT_EQ(Parsed("\t1.5 GiB\n"), kGi + kGi / 2);
}

TEST(ParseByteSizeTest, TheLargestSizeFits) {
  EXPECT_EQ(Parsed("9223372036854775807"), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(Parsed("8388607T"), 8388607 * kTi);
  // The fraction rounds down, so the most it can add is a byte short of the next T.
  EXPECT_EQ(Parsed("8388607.99999999999999999T"), std::numeric_limits<int64_t>::max());
}

void ExpectRefused(const std::string& text, const std::string& why) {
  absl::StatusOr<int64_t> bytes = ParseByteSize(text);
  ASSERT_FALSE(bytes.ok()) << text << " parsed as " << *bytes;
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument) << text;
  EXPECT_THAT(bytes.status().message(), HasSubstr("'" + text + "' is not a size")) << text;
  EXPECT_THAT(bytes.status().message(), HasSubstr(why)) << text;
  EXPECT_THAT(bytes.status().message(), HasSubstr("expects a size such as 2G, 512M or 1.5GiB"))
      << text;
}

TEST(ParseByteSizeTest, RefusesWhatIsNotAPositiveSize) {
  ExpectRefused("", "empty");
  ExpectRefused("   ", "empty");
  ExpectRefused("-1G", "negative");
  ExpectRefused("-5", "negative");
  ExpectRefused("0", "zero");
  ExpectRefused("0G", "zero");
  ExpectRefused("0.0M", "zero");
  ExpectRefused("0.0001K", "less than one byte");
  ExpectRefused("G", "does not start with a number");
  ExpectRefused("two gigs", "does not start with a number");
  ExpectRefused("+2G", "does not start with a number");
  ExpectRefused(".5G", "does not start with a number");
  ExpectRefused("2.G", "'.' must be followed by digits");
  ExpectRefused("1.5", "whole");
  ExpectRefused("1.5B", "whole");
}

TEST(ParseByteSizeTest, RefusesUnknownUnits) {
  ExpectRefused("2X", "unknown unit 'X'");
  ExpectRefused("2P", "unknown unit 'P'");
  ExpectRefused("2iB", "unknown unit 'iB'");
  ExpectRefused("2GBs", "unknown unit 'GBs'");
  ExpectRefused("2G B", "unknown unit 'G B'");
  ExpectRefused("2e9", "unknown unit 'e9'");
  ExpectRefused("1,5G", "unknown unit ',5G'");
  ExpectRefused("2 G 3", "unknown unit 'G 3'");
}

TEST(ParseByteSizeTest, RefusesOverflowPastInt64) {
  ExpectRefused("9223372036854775808", "larger than 2^63 - 1 bytes");
  ExpectRefused("99999999999999999999999", "larger than 2^63 - 1 bytes");
  ExpectRefused("8388608T", "larger than 2^63 - 1 bytes");
  ExpectRefused("9007199254740992K", "larger than 2^63 - 1 bytes");
}

TEST(ParseByteSizeTest, EscapesWhatItQuotes) {
  absl::StatusOr<int64_t> bytes = ParseByteSize(std::string("2G\x01", 3));
  ASSERT_FALSE(bytes.ok());
  EXPECT_THAT(bytes.status().message(), HasSubstr("'2G\\x01'"));
}

TEST(FormatBytesTest, WholeNumbersBelowAGiBFromTenUp) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(17), "17 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1024), "1.0 KiB");
  EXPECT_EQ(FormatBytes(512 * kKi), "512 KiB");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");  // under 10 of a unit: one decimal
  EXPECT_EQ(FormatBytes(3 * kMi / 2), "1.5 MiB");
  EXPECT_EQ(FormatBytes(10 * kMi), "10 MiB");
  EXPECT_EQ(FormatBytes(900 * kMi), "900 MiB");
  EXPECT_EQ(FormatBytes(700 * kMi + 300 * kKi), "700 MiB");
}

TEST(FormatBytesTest, OneDecimalFromAGiBUp) {
  EXPECT_EQ(FormatBytes(2 * kGi), "2.0 GiB");
  EXPECT_EQ(FormatBytes(kGi + kGi / 2), "1.5 GiB");
  EXPECT_EQ(FormatBytes(static_cast<int64_t>(3.1 * static_cast<double>(kGi))), "3.1 GiB");
  EXPECT_EQ(FormatBytes(kTi + kTi / 2), "1.5 TiB");
  EXPECT_EQ(FormatBytes(std::numeric_limits<int64_t>::max()), "8.0 EiB");
}

TEST(FormatBytesTest, ARoundedValueOf1024MovesToTheNextUnit) {
  EXPECT_EQ(FormatBytes(kKi * 1023 + 1000), "1.0 MiB");       // 1023.98 KiB
  EXPECT_EQ(FormatBytes(kGi - 300 * kKi), "1.0 GiB");         // 1023.7 MiB
  EXPECT_EQ(FormatBytes(1024 * kGi - kGi / 100), "1.0 TiB");  // 1023.99 GiB
  EXPECT_EQ(FormatBytes(1023 * kMi), "1023 MiB");
}

TEST(FormatBytesTest, NegativeSizesKeepTheirSign) {
  EXPECT_EQ(FormatBytes(-17), "-17 B");
  EXPECT_EQ(FormatBytes(-2 * kGi), "-2.0 GiB");
  EXPECT_EQ(FormatBytes(std::numeric_limits<int64_t>::min()), "-8.0 EiB");
}

TEST(FormatBytesTest, ReadsBackThroughParseByteSize) {
  // What a message shows, a user can paste into the flag ("900 MiB" parses).
  for (int64_t bytes : {int64_t{17}, 512 * kKi, 900 * kMi, 2 * kGi, kGi + kGi / 2}) {
    EXPECT_EQ(Parsed(FormatBytes(bytes)), bytes) << FormatBytes(bytes);
  }
}

}  // namespace
}  // namespace modeld::common
