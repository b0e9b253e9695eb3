#include "transport/http/json_tensor.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::transport::http {
namespace {

using ::testing::HasSubstr;

uint32_t FloatBits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  return bits;
}

float BitsFloat(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

std::string FloatText(float value) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  WriteFloat(writer, value);
  return BufferText(buffer);
}

// Deeper than the default depth limit, so the tensor readers' own limits can be tested.
rapidjson::Document Parse(absl::string_view text) {
  rapidjson::Document doc;
  absl::Status status = ParseJson(text, doc, /*max_depth=*/1000);
  EXPECT_TRUE(status.ok()) << status;
  return doc;
}

// How every JSON client reads a float32: parse as float64, then round to float32.
float ReadBackAsClientsDo(const std::string& text) {
  return static_cast<float>(std::strtod(text.c_str(), nullptr));
}

TEST(JsonFloatTest, Fp32ReadsBackBitExactlyThroughFloat64) {
  // The one float whose shortest float32 text double-rounds (found by an exhaustive check).
  for (uint32_t bits : {0x15ae43fdu, 0x95ae43fdu}) {
    EXPECT_EQ(FloatBits(ReadBackAsClientsDo(FloatText(BitsFloat(bits)))), bits)
        << FloatText(BitsFloat(bits));
  }
  // A spread of every binade, subnormals included; and both signs.
  for (uint64_t bits = 1; bits < 0x7f800000u; bits += 9973) {
    for (uint32_t sign : {0u, 0x80000000u}) {
      const uint32_t value_bits = static_cast<uint32_t>(bits) | sign;
      const std::string text = FloatText(BitsFloat(value_bits));
      ASSERT_EQ(FloatBits(ReadBackAsClientsDo(text)), value_bits) << text;
    }
  }
  EXPECT_EQ(FloatText(0.1f), "0.1");  // shortest, not 0.10000000149011612
  // RapidJSON (full precision) reads them back the same way modeld's parser does.
  rapidjson::Document doc = Parse(absl::StrCat("[", FloatText(BitsFloat(0x15ae43fd)), "]"));
  EXPECT_EQ(FloatBits(static_cast<float>(doc[0].GetDouble())), 0x15ae43fdu);
}

TEST(JsonFloatTest, NonFiniteValuesAreWrittenAsNaNAndInfinity) {
  EXPECT_EQ(FloatText(std::numeric_limits<float>::quiet_NaN()), "NaN");
  EXPECT_EQ(FloatText(std::numeric_limits<float>::infinity()), "Infinity");
  EXPECT_EQ(FloatText(-std::numeric_limits<float>::infinity()), "-Infinity");
  EXPECT_EQ(FloatText(-0.0f), "-0.0");  // "-0" would read back as the integer 0
}

TEST(JsonFloatTest, Fp64ReadsBackBitExactly) {
  for (double value : {0.1, 1.0 / 3.0, 1e308, 5e-324, -2.5e-300, 123456789.123456789}) {
    rapidjson::StringBuffer buffer;
    JsonWriter writer(buffer);
    WriteDouble(writer, value);
    EXPECT_EQ(std::strtod(buffer.GetString(), nullptr), value) << buffer.GetString();
  }
}

TEST(ParseJsonTest, NamesTheProblemAndItsOffset) {
  rapidjson::Document doc;
  absl::Status status = ParseJson("{\"a\": [1, 2,]}", doc);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("malformed JSON at byte 12"));

  status = ParseJson("{\"a\": \"\xff\xfe\"}", doc);
  EXPECT_THAT(status.message(), HasSubstr("Invalid encoding"));

  status = ParseJson("{} trailing", doc);
  EXPECT_THAT(status.message(), HasSubstr("malformed JSON"));

  // Deep nesting is parsed iteratively: an error, never a stack overflow.
  const std::string deep(1 << 20, '[');
  status = ParseJson(deep, doc);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);

  EXPECT_TRUE(ParseJson("[NaN, Infinity, -Infinity]", doc).ok());
  EXPECT_TRUE(std::isnan(doc[0].GetDouble()));
}

TEST(ParseJsonTest, RefusesNestingDeeperThanTheLimit) {
  rapidjson::Document doc;
  // Three levels: the object, "a"'s array, the inner array.
  const std::string three = R"({"a": [[1], {"b": 2}]})";
  EXPECT_TRUE(ParseJson(three, doc, 3).ok());
  EXPECT_EQ(doc["a"][1]["b"].GetInt(), 2);
  absl::Status status = ParseJson(three, doc, 2);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("JSON nested deeper than 2 levels"));
  EXPECT_THAT(status.message(), HasSubstr("--http-max-json-depth=2"));
  // The default limit stops a well-formed deep document too.
  const std::string deep = std::string(65, '[') + std::string(65, ']');
  EXPECT_THAT(ParseJson(deep, doc).message(), HasSubstr("nested deeper than 64 levels"));
  EXPECT_TRUE(ParseJson(deep.substr(1, 128), doc).ok());
}

// RapidJSON 1.1 alone reads 0e66 as 2.1e-109 and 0.000e99 as 6.4e+293, refuses 0.0e400, and
// misreads a long fraction of zeros (found by tests/fuzz): every zero is zero.
TEST(ParseJsonTest, ZeroIsZeroWithAnyExponent) {
  rapidjson::Document doc;
  ASSERT_TRUE(ParseJson("[0e66, 0.000e99, 0.0e400, -0E+5, 0e-400, 0.0, 1e2, 10e-1, 0.5e1, "
                        "0.000000000000000000000000000000, -0.00000000000000000000000000000]",
                        doc)
                  .ok());
  const std::vector<double> expected = {0, 0, 0, -0.0, 0, 0, 100, 1, 5, 0, -0.0};
  ASSERT_EQ(doc.Size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(doc[i].GetDouble(), expected[i]) << i;
    EXPECT_EQ(std::signbit(doc[i].GetDouble()), std::signbit(expected[i])) << i;
  }
  // Strings keep what looks like numbers; a key may too.
  ASSERT_TRUE(ParseJson(R"({"0e5": "0e66 \" 0e7", "k": [0e9]})", doc).ok());
  EXPECT_STREQ(doc["0e5"].GetString(), "0e66 \" 0e7");
  EXPECT_EQ(doc["k"][0].GetDouble(), 0);
  // What is malformed stays malformed, at the same offset.
  absl::Status status = ParseJson("[0e, 1]", doc);
  EXPECT_THAT(status.message(), HasSubstr("malformed JSON at byte 3"));
  status = ParseJson("[0e66, ]", doc);
  EXPECT_THAT(status.message(), HasSubstr("malformed JSON at byte 7"));
  EXPECT_EQ(ParseJson("0e0e66", doc).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseJson("[0.0e5e66]", doc).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseJson("[00.0e5]", doc).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseJson("[0.e5]", doc).code(), absl::StatusCode::kInvalidArgument);
}

// RapidJSON 1.1 reads before its buffer for Inf, NaN or Infinity with a fraction or an
// exponent (found by tests/fuzz): refused, naming the byte.
TEST(ParseJsonTest, NaNAndInfinityTakeNoFractionOrExponent) {
  rapidjson::Document doc;
  for (const char* text : {"[Infe40]", "[-Infe1]", "[NaNE5]", "[Infinity.5]", "[1, NaN.]"}) {
    absl::Status status = ParseJson(text, doc);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(status.message(), HasSubstr("cannot have a fraction or an exponent")) << text;
  }
  EXPECT_THAT(ParseJson("[Infe40]", doc).message(), HasSubstr("malformed JSON at byte 4: Inf"));
  ASSERT_TRUE(ParseJson(R"([Inf, -Infinity, NaN, "Infe40"])", doc).ok());
  EXPECT_TRUE(std::isinf(doc[0].GetDouble()));
  EXPECT_STREQ(doc[3].GetString(), "Infe40");
}

// RapidJSON 1.1 overflows its 64-bit significand on the digits of UINT64_MAX followed by a
// 5 or more (found by tests/fuzz, UBSan): such numbers read as the double they stand for.
TEST(ParseJsonTest, DigitsOfUint64MaxAndMoreReadAsTheirDouble) {
  const std::vector<std::string> numbers = {"184467440737095516155",
                                            "-18446744073709551615999",
                                            "18446744073709551615.5",
                                            "1.84467440737095516159e-7",
                                            "0.000184467440737095516155E+3",
                                            "184467440737095516155e-400",
                                            "-0.00018446744073709551615500e300"};
  std::string array = "[";
  for (const std::string& number : numbers) array += number + ", ";
  array += "184467440737095516149, 1]";
  rapidjson::Document doc;
  absl::Status status = ParseJson(array, doc);
  ASSERT_TRUE(status.ok()) << status;
  for (size_t k = 0; k < numbers.size(); ++k) {
    ASSERT_TRUE(doc[k].IsDouble()) << numbers[k];
    EXPECT_EQ(doc[k].GetDouble(), std::strtod(numbers[k].c_str(), nullptr)) << numbers[k];
  }
  EXPECT_EQ(doc[numbers.size()].GetDouble(), 184467440737095516149.0);
  EXPECT_EQ(doc[numbers.size() + 1].GetInt(), 1);
  // Strings stay as they are; what follows the number is still judged.
  ASSERT_TRUE(ParseJson(R"({"184467440737095516155": "184467440737095516155"})", doc).ok());
  EXPECT_STREQ(doc["184467440737095516155"].GetString(), "184467440737095516155");
  EXPECT_THAT(ParseJson("[184467440737095516155e400]", doc).message(),
              HasSubstr("malformed JSON at byte 1: Number too big"));
  EXPECT_THAT(ParseJson("[184467440737095516155e5e5]", doc).message(),
              HasSubstr("malformed JSON at byte 24: a number cannot be followed by 'e'"));
  // The fuzzer's input (a root number, then more): malformed, and read without UB.
  EXPECT_EQ(ParseJson("\n18446744073709551615516]:", doc).code(),
            absl::StatusCode::kInvalidArgument);
  // As tensor data: out of range of every integer datatype, a float for FP64.
  // (The magnitudes RapidJSON's table of powers of ten does not reach: see below.)
  std::string bytes;
  doc = Parse("[184467440737095516155]");
  EXPECT_THAT(
      std::string(
          ReadFlatData(doc, core::DataType::kUint64, {}, "input 'x'", bytes).status().message()),
      HasSubstr("input 'x' element 0"));
  EXPECT_TRUE(ReadFlatData(doc, core::DataType::kFp64, {}, "x", bytes).ok());
}

// RapidJSON 1.1 reads past its table of powers of ten for numbers of 10^309 or more, or below
// 10^-324, that pass its own range checks (found by tests/fuzz, UBSan): too big is refused,
// too small reads 0.
TEST(ParseJsonTest, NumbersBeyondADoublesRangeAreRefusedOrZero) {
  rapidjson::Document doc;
  const std::string big = "6" + std::string(306, '6') + "e99";  // 10^406, exponent < 308
  EXPECT_THAT(ParseJson("[1, " + big + "]", doc).message(),
              HasSubstr("malformed JSON at byte 4: Number too big"));
  EXPECT_THAT(ParseJson("[0.0000001e316]", doc).message(), HasSubstr("Number too big"));
  const std::string tiny = "0." + std::string(400, '0') + "1";
  ASSERT_TRUE(
      ParseJson("[" + tiny + ", -" + tiny + "e5, 1e-320, 1.7976931348623157e308]", doc).ok());
  EXPECT_EQ(doc[0].GetDouble(), 0.0);
  EXPECT_TRUE(std::signbit(doc[1].GetDouble()));
  EXPECT_EQ(doc[2].GetDouble(), 1e-320);
  EXPECT_EQ(doc[3].GetDouble(), 1.7976931348623157e308);
  EXPECT_EQ(ParseJson("[" + tiny + "x]", doc).code(), absl::StatusCode::kInvalidArgument);
}

TEST(Utf8Test, ValidatesAndSanitizes) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));              // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  WriteSanitizedString(writer, "a\xffz");
  EXPECT_EQ(BufferText(buffer), "\"a\xef\xbf\xbdz\"");
}

TEST(ReadFlatDataTest, ReadsFlatAndNestedValues) {
  rapidjson::Document doc = Parse("[[1, 2], [3, 4.5]]");
  std::string bytes;
  absl::StatusOr<int64_t> count = ReadFlatData(doc, core::DataType::kFp32, {}, "input 'x'", bytes);
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(*count, 4);
  ASSERT_EQ(bytes.size(), 16u);
  float values[4];
  std::memcpy(values, bytes.data(), 16);
  EXPECT_EQ(values[3], 4.5f);
}

TEST(ReadFlatDataTest, RefusesWrongTypesAndRangesNamingTheElement) {
  struct Case {
    const char* json;
    core::DataType type;
    const char* fragment;
  };
  const Case cases[] = {
      {"[1, \"2\"]", core::DataType::kFp32,
       "input 'x' element 1: expected a number for FP32, got a string"},
      {"[true, 1]", core::DataType::kBool,
       "element 1: expected true or false for BOOL, got a number"},
      {"[1.5]", core::DataType::kInt32, "expected an integer for INT32, got 1.5"},
      {"[128]", core::DataType::kInt8, "value 128 does not fit INT8"},
      {"[-1]", core::DataType::kUint8, "value -1 does not fit UINT8"},
      {"[18446744073709551615]", core::DataType::kInt64, "does not fit INT64"},
      {"[1e39]", core::DataType::kFp32, "does not fit FP32"},
      {"[1]", core::DataType::kFp16, "FP16 has no JSON form"},
      {"[{\"b64\": \"AA==\"}]", core::DataType::kBytes,
       "expected a string for BYTES, got an object"},
      {"[null]", core::DataType::kFp64, "got null"},
      {"{\"a\": 1}", core::DataType::kFp32, "\"data\" must be an array, got an object"},
  };
  for (const Case& c : cases) {
    rapidjson::Document doc = Parse(c.json);
    std::string bytes;
    absl::StatusOr<int64_t> count = ReadFlatData(doc, c.type, {}, "input 'x'", bytes);
    EXPECT_EQ(count.status().code(), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_THAT(std::string(count.status().message()), HasSubstr(c.fragment)) << c.json;
  }
  // The largest finite values still fit.
  rapidjson::Document doc = Parse("[3.4028235e+38, -3.4028234663852886e+38, 18446744073709551615]");
  std::string bytes;
  EXPECT_TRUE(ReadFlatData(doc, core::DataType::kFp32, {}, "x", bytes).ok());
  const std::string deep = std::string(100, '[') + "1" + std::string(100, ']');
  doc = Parse(deep);
  EXPECT_THAT(ReadFlatData(doc, core::DataType::kFp32, {}, "input 'x'", bytes).status().message(),
              HasSubstr("nested deeper than 64 levels"));
}

TEST(ReadNestedTensorTest, InfersTheShapeAndRefusesRaggedLists) {
  rapidjson::Document doc = Parse("[[1, 2, 3], [4, 5, 6]]");
  std::string bytes;
  absl::StatusOr<core::Shape> shape =
      ReadNestedTensor(doc, core::DataType::kInt64, {}, "input 'x'", bytes);
  ASSERT_TRUE(shape.ok()) << shape.status();
  EXPECT_EQ(*shape, (core::Shape{2, 3}));
  EXPECT_EQ(bytes.size(), 48u);

  doc = Parse("7");
  bytes.clear();
  shape = ReadNestedTensor(doc, core::DataType::kInt64, {}, "input 'x'", bytes);
  ASSERT_TRUE(shape.ok());
  EXPECT_TRUE(shape->empty());

  for (const char* ragged : {"[[1, 2], [3]]", "[[1, 2], 3]", "[1, [2]]"}) {
    doc = Parse(ragged);
    bytes.clear();
    shape = ReadNestedTensor(doc, core::DataType::kInt64, {}, "input 'x'", bytes);
    EXPECT_THAT(std::string(shape.status().message()), HasSubstr("input 'x' is a ragged list"))
        << ragged;
  }

  doc = Parse("[{\"b64\": \"aGk=\"}, \"there\"]");
  bytes.clear();
  shape = ReadNestedTensor(doc, core::DataType::kBytes, {.accept_b64 = true}, "input 's'", bytes);
  ASSERT_TRUE(shape.ok()) << shape.status();
  EXPECT_EQ(bytes, std::string("\x02\0\0\0hi\x05\0\0\0there", 15));
  doc = Parse("[{\"b64\": \"!!\"}]");
  shape = ReadNestedTensor(doc, core::DataType::kBytes, {.accept_b64 = true}, "input 's'", bytes);
  EXPECT_THAT(std::string(shape.status().message()),
              HasSubstr("input 's' element 0: \"b64\" is not valid base64"));
}

TEST(TensorJsonWriterTest, WritesNestedAndBytesStyles) {
  std::string bytes;
  for (int32_t v : {1, 2, 3, 4, 5, 6}) bytes.append(reinterpret_cast<const char*>(&v), 4);
  core::Tensor tensor = core::Tensor::Owning(core::DataType::kInt32, {2, 3}, bytes);
  absl::StatusOr<TensorJsonWriter> writer =
      TensorJsonWriter::Make(tensor, BytesStyle::kString, "y");
  ASSERT_TRUE(writer.ok());
  rapidjson::StringBuffer buffer;
  JsonWriter json(buffer);
  writer->WriteNested(json, tensor.shape(), 0);
  EXPECT_EQ(BufferText(buffer), "[[1,2,3],[4,5,6]]");

  std::string strings;
  core::AppendBytesElement("ok", strings);
  core::AppendBytesElement("\xff", strings);
  core::Tensor text = core::Tensor::Owning(core::DataType::kBytes, {2}, strings);
  EXPECT_THAT(TensorJsonWriter::Make(text, BytesStyle::kString, "output 's'").status().message(),
              HasSubstr("output 's' element 1 is not valid UTF-8"));
  for (auto [style, expected] :
       {std::pair{BytesStyle::kB64, "[{\"b64\":\"b2s=\"},{\"b64\":\"/w==\"}]"},
        std::pair{BytesStyle::kStringOrB64, "[\"ok\",{\"b64\":\"/w==\"}]"}}) {
    absl::StatusOr<TensorJsonWriter> w = TensorJsonWriter::Make(text, style, "s");
    ASSERT_TRUE(w.ok());
    rapidjson::StringBuffer out;
    JsonWriter out_json(out);
    w->WriteFlat(out_json, 0, 2);
    EXPECT_EQ(BufferText(out), expected);
  }
}

// KServe answers NaN and the infinities as strings (strict JSON); TF Serving as its literals.
// Both read back.
TEST(TensorJsonWriterTest, NonFiniteValuesAsStringsOrLiterals) {
  std::string bytes;
  for (float v : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                  -std::numeric_limits<float>::infinity(), 1.5f}) {
    bytes.append(reinterpret_cast<const char*>(&v), 4);
  }
  std::string doubles;
  for (double v : {-std::numeric_limits<double>::infinity(), 0.25}) {
    doubles.append(reinterpret_cast<const char*>(&v), 8);
  }
  const core::Tensor fp32 = core::Tensor::Owning(core::DataType::kFp32, {4}, bytes);
  const core::Tensor fp64 = core::Tensor::Owning(core::DataType::kFp64, {2}, doubles);
  auto text = [](const core::Tensor& tensor, NonFiniteStyle style) {
    absl::StatusOr<TensorJsonWriter> w =
        TensorJsonWriter::Make(tensor, BytesStyle::kString, "y", style);
    EXPECT_TRUE(w.ok());
    rapidjson::StringBuffer out;
    JsonWriter json(out);
    w->WriteFlat(json, 0, w->size());
    return BufferText(out);
  };
  EXPECT_EQ(text(fp32, NonFiniteStyle::kString), R"(["NaN","Infinity","-Infinity",1.5])");
  EXPECT_EQ(text(fp32, NonFiniteStyle::kLiteral), "[NaN,Infinity,-Infinity,1.5]");
  EXPECT_EQ(text(fp64, NonFiniteStyle::kString), R"(["-Infinity",0.25])");

  // The strings come back as their values.
  rapidjson::Document doc = Parse(R"(["NaN", "Infinity", "-Infinity", 1.5])");
  std::string read;
  ASSERT_TRUE(ReadFlatData(doc, core::DataType::kFp32, {}, "input 'x'", read).ok());
  EXPECT_EQ(read.substr(4), bytes.substr(4));
  float nan = 0;
  std::memcpy(&nan, read.data(), 4);
  EXPECT_TRUE(std::isnan(nan));
  doc = Parse(R"(["nan"])");
  EXPECT_FALSE(ReadFlatData(doc, core::DataType::kFp32, {}, "input 'x'", read).ok());
}

TEST(HalfTest, EveryHalfRoundTripsThroughFloat) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(FloatToHalf(f), h) << h;
  }
  EXPECT_EQ(FloatToHalf(1.0f + 1.0f / 2048), 0x3c00);  // tie rounds to even
  EXPECT_EQ(FloatToHalf(65519.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);
  EXPECT_EQ(FloatToHalf(1e-9f), 0x0000);
}

}  // namespace
}  // namespace modeld::transport::http
