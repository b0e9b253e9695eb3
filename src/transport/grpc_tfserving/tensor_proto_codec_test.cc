#include "transport/grpc_tfserving/tensor_proto_codec.h"

#include <cstring>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "testing/tensors.h"

namespace modeld::transport::grpc_tfserving {
namespace {

using ::modeld::testing::Values;

using ::testing::ElementsAre;
using ::testing::HasSubstr;

tensorflow::TensorProto Proto(const std::string& text) {
  tensorflow::TensorProto proto;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &proto)) << text;
  return proto;
}

TEST(DecodeTensorProto, TypedFieldsOfEveryKind) {
  absl::StatusOr<core::Tensor> t =
      DecodeTensorProto(Proto("dtype: DT_FLOAT tensor_shape { dim { size: 2 } dim { size: 2 } } "
                              "float_val: [1, 2, 3, 4.5]"),
                        "input 'x'");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->type(), core::DataType::kFp32);
  EXPECT_EQ(t->shape(), (core::Shape{2, 2}));
  EXPECT_THAT(Values<float>(*t), ElementsAre(1, 2, 3, 4.5f));

  t = DecodeTensorProto(
      Proto("dtype: DT_INT8 tensor_shape { dim { size: 3 } } int_val: [-128, 0, 127]"), "x");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(Values<int8_t>(*t), ElementsAre(-128, 0, 127));

  // FP16 travels as the 16-bit pattern in half_val: 0x3C00 is 1.0.
  t = DecodeTensorProto(
      Proto("dtype: DT_HALF tensor_shape { dim { size: 2 } } half_val: [15360, 49152]"), "x");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->type(), core::DataType::kFp16);
  EXPECT_THAT(Values<uint16_t>(*t), ElementsAre(0x3C00, 0xC000));

  t = DecodeTensorProto(Proto("dtype: DT_STRING tensor_shape { dim { size: 2 } } "
                              "string_val: ['a', '']"),
                        "x");
  ASSERT_TRUE(t.ok()) << t.status();
  absl::StatusOr<std::vector<absl::string_view>> strings = core::SplitBytesElements(t->bytes());
  ASSERT_TRUE(strings.ok());
  EXPECT_THAT(*strings, ElementsAre("a", ""));

  t = DecodeTensorProto(
      Proto("dtype: DT_BOOL tensor_shape { dim { size: 2 } } bool_val: [true, false]"), "x");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(Values<uint8_t>(*t), ElementsAre(1, 0));

  t = DecodeTensorProto(Proto("dtype: DT_UINT64 tensor_shape { dim { size: 1 } } "
                              "uint64_val: 18446744073709551615"),
                        "x");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(Values<uint64_t>(*t), ElementsAre(UINT64_MAX));
}

TEST(DecodeTensorProto, OneValueFillsTheShapeAndContentIsViewed) {
  absl::StatusOr<core::Tensor> t = DecodeTensorProto(
      Proto("dtype: DT_INT64 tensor_shape { dim { size: 3 } } int64_val: 7"), "x");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(Values<int64_t>(*t), ElementsAre(7, 7, 7));

  tensorflow::TensorProto proto = Proto("dtype: DT_DOUBLE tensor_shape { dim { size: 2 } }");
  const double values[2] = {0.25, -8};
  proto.set_tensor_content(std::string(reinterpret_cast<const char*>(values), sizeof(values)));
  t = DecodeTensorProto(proto, "x");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->bytes().data(), proto.tensor_content().data());  // viewed, not copied
  EXPECT_THAT(Values<double>(*t), ElementsAre(0.25, -8));

  // Up to kMaxFilledBytes from single values, across the tensors of one request.
  int64_t budget = kMaxFilledBytes;
  const tensorflow::TensorProto half =
      Proto("dtype: DT_FLOAT tensor_shape { dim { size: 8388608 } } float_val: 0.5");
  for (int i = 0; i < 2; ++i) {
    t = DecodeTensorProto(half, "x", budget);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->bytes().size(), kMaxFilledBytes / 2);
  }
  EXPECT_EQ(budget, 0);
  t = DecodeTensorProto(half, "input 'z'", budget);
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("input 'z' has one value in float_val to fill"));
  // Values given one by one take nothing from the budget.
  t = DecodeTensorProto(Proto("dtype: DT_INT32 tensor_shape { dim { size: 2 } } int_val: [1, 2]"),
                        "x", budget);
  EXPECT_TRUE(t.ok()) << t.status();

  t = DecodeTensorProto(Proto("dtype: DT_FLOAT tensor_shape { dim { size: 0 } dim { size: 4 } }"),
                        "x");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->shape(), (core::Shape{0, 4}));
}

TEST(DecodeTensorProto, BadTensorsAreNamed) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"dtype: DT_BFLOAT16 tensor_shape { dim { size: 1 } } half_val: 1",
       "input 'x' has dtype DT_BFLOAT16, which modeld does not serve"},
      {"dtype: DT_FLOAT tensor_shape { unknown_rank: true } float_val: 1",
       "input 'x' has a shape of unknown rank"},
      {"dtype: DT_FLOAT tensor_shape { dim { size: -1 } } float_val: 1",
       "input 'x' has a dimension of size -1"},
      {"dtype: DT_FLOAT tensor_shape { dim { size: 3 } } float_val: [1, 2]",
       "input 'x' holds 2 values in float_val for 3 elements of its shape"},
      {"dtype: DT_FLOAT tensor_shape { dim { size: 2 } }",
       "input 'x' holds 0 values in float_val for 2 elements"},
      {"dtype: DT_INT8 tensor_shape { dim { size: 1 } } int_val: 300",
       "input 'x' holds 300, outside the range of its dtype"},
      {"dtype: DT_UINT8 tensor_shape { dim { size: 1 } } int_val: -1",
       "input 'x' holds -1, outside the range"},
      {"dtype: DT_FLOAT tensor_shape { dim { size: 2 } } tensor_content: 'abc'",
       "input 'x' has 3 bytes of tensor_content; shape [2] of DT_FLOAT needs 8"},
      {"dtype: DT_STRING tensor_shape { dim { size: 1 } } tensor_content: 'abc'",
       "send its values in string_val, not tensor_content"},
      // Found by tests/fuzz: one value may not fill terabytes, and a shape whose byte size
      // wraps around 2^64 must not match a few bytes of tensor_content.
      {"dtype: DT_FLOAT tensor_shape { dim { size: 1000000000 } dim { size: 1000 } } "
       "float_val: 7",
       "input 'x' has one value in float_val to fill 1000000000000 elements; modeld fills at "
       "most 67108864 bytes per request from single values"},
      {"dtype: DT_STRING tensor_shape { dim { size: 4000000 } } string_val: 'abcdefghijklmn'",
       "input 'x' has one value in string_val to fill 4000000 elements"},
      {"dtype: DT_FLOAT tensor_shape { dim { size: 2305843009213693953 } } "
       "tensor_content: '12345678'",
       "input 'x' has shape [2305843009213693953], whose byte size is too large"},
  };
  for (const auto& [text, message] : cases) {
    absl::StatusOr<core::Tensor> t = DecodeTensorProto(Proto(text), "input 'x'");
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(t.status().message(), HasSubstr(message)) << text;
  }
}

TEST(EncodeTensorProto, TypedFieldsAsTensorFlowServingAnswers) {
  const int16_t shorts[3] = {-2, 0, 300};
  tensorflow::TensorProto out;
  ASSERT_TRUE(
      EncodeTensorProto(core::Tensor::Owning(core::DataType::kInt16, {3},
                                             std::string(reinterpret_cast<const char*>(shorts), 6)),
                        {3}, &out)
          .ok());
  EXPECT_EQ(out.dtype(), tensorflow::DT_INT16);
  EXPECT_THAT(out.int_val(), ElementsAre(-2, 0, 300));
  EXPECT_TRUE(out.tensor_content().empty());

  std::string bytes;
  core::AppendBytesElement("xy", bytes);
  core::AppendBytesElement(std::string("\0z", 2), bytes);
  out.Clear();
  // Shown as [2] although modeld holds [2, 1] (a signature's [-1] string output).
  ASSERT_TRUE(
      EncodeTensorProto(core::Tensor::Owning(core::DataType::kBytes, {2, 1}, bytes), {2}, &out)
          .ok());
  EXPECT_EQ(out.dtype(), tensorflow::DT_STRING);
  ASSERT_EQ(out.tensor_shape().dim_size(), 1);
  EXPECT_EQ(out.tensor_shape().dim(0).size(), 2);
  EXPECT_THAT(out.string_val(), ElementsAre("xy", std::string("\0z", 2)));

  const uint16_t halves[1] = {0x3C00};
  out.Clear();
  ASSERT_TRUE(
      EncodeTensorProto(core::Tensor::Owning(core::DataType::kFp16, {1},
                                             std::string(reinterpret_cast<const char*>(halves), 2)),
                        {1}, &out)
          .ok());
  EXPECT_THAT(out.half_val(), ElementsAre(0x3C00));

  // Every type decodes back to what was encoded.
  for (int i = 0; i < static_cast<int>(core::DataType::kBytes); ++i) {
    const auto type = static_cast<core::DataType>(i);
    std::string raw(2 * core::DataTypeSize(type), '\0');
    raw[0] = 1;
    raw.back() = type == core::DataType::kBool ? 1 : 0x40;
    out.Clear();
    ASSERT_TRUE(EncodeTensorProto(core::Tensor::Owning(type, {2}, raw), {2}, &out).ok());
    absl::StatusOr<core::Tensor> back = DecodeTensorProto(out, "x");
    ASSERT_TRUE(back.ok()) << core::DataTypeName(type) << ": " << back.status();
    EXPECT_EQ(back->bytes(), raw) << core::DataTypeName(type);
  }
}

}  // namespace
}  // namespace modeld::transport::grpc_tfserving
