#include "core/data_type.h"

#include "gtest/gtest.h"

namespace modeld::core {
namespace {

TEST(DataTypeTest, NamesRoundTrip) {
  for (DataType type :
       {DataType::kBool, DataType::kUint8, DataType::kUint16, DataType::kUint32, DataType::kUint64,
        DataType::kInt8, DataType::kInt16, DataType::kInt32, DataType::kInt64, DataType::kFp16,
        DataType::kFp32, DataType::kFp64, DataType::kBytes}) {
    EXPECT_EQ(DataTypeFromName(DataTypeName(type)), type) << DataTypeName(type);
    EXPECT_EQ(DataTypeFromConfig(DataTypeToConfig(type)), type) << DataTypeName(type);
    EXPECT_EQ(DataTypeFromTf(DataTypeToTf(type)), type) << DataTypeName(type);
  }
}

TEST(DataTypeTest, TensorFlowTypes) {
  EXPECT_EQ(DataTypeToTf(DataType::kFp16), tensorflow::DT_HALF);
  EXPECT_EQ(DataTypeFromTf(tensorflow::DT_STRING), DataType::kBytes);
  EXPECT_FALSE(DataTypeFromTf(tensorflow::DT_BFLOAT16).has_value());
  EXPECT_FALSE(DataTypeFromTf(tensorflow::DT_COMPLEX64).has_value());
}

TEST(DataTypeTest, StringInConfigIsBytesOnTheWire) {
  EXPECT_EQ(DataTypeFromConfig(inference::TYPE_STRING), DataType::kBytes);
  EXPECT_EQ(DataTypeName(DataType::kBytes), "BYTES");
}

TEST(DataTypeTest, UnknownNamesAndUnservedTypes) {
  EXPECT_FALSE(DataTypeFromName("fp32").has_value());  // names are case-sensitive
  EXPECT_FALSE(DataTypeFromName("FP17").has_value());
  EXPECT_FALSE(DataTypeFromConfig(inference::TYPE_INVALID).has_value());
  EXPECT_FALSE(DataTypeFromConfig(inference::TYPE_BF16).has_value());
}

TEST(DataTypeTest, Sizes) {
  EXPECT_EQ(DataTypeSize(DataType::kBool), 1);
  EXPECT_EQ(DataTypeSize(DataType::kFp16), 2);
  EXPECT_EQ(DataTypeSize(DataType::kInt32), 4);
  EXPECT_EQ(DataTypeSize(DataType::kFp64), 8);
  EXPECT_EQ(DataTypeSize(DataType::kBytes), 0);
}

}  // namespace
}  // namespace modeld::core
