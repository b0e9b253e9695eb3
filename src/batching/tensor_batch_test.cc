#include "batching/tensor_batch.h"

#include "gtest/gtest.h"

namespace modeld::batching {
namespace {

std::vector<core::TensorSpec> Specs() {
  return {{"a", core::DataType::kInt8, {2}, std::nullopt},
          {"s", core::DataType::kBytes, {1}, std::nullopt}};
}

core::TensorMap Part(const std::string& a, const std::vector<std::string>& strings) {
  std::string s;
  for (const std::string& element : strings) core::AppendBytesElement(element, s);
  const int64_t rows = static_cast<int64_t>(strings.size());
  return {{"a", core::Tensor::Owning(core::DataType::kInt8, {rows, 2}, a)},
          {"s", core::Tensor::Owning(core::DataType::kBytes, {rows, 1}, s)}};
}

TEST(TensorBatchTest, ConcatenateThenSplitRoundTrips) {
  const core::TensorMap one = Part("ab", {"x"});
  const core::TensorMap two = Part("cdef", {"", "yz"});
  core::TensorMap batch = Concatenate({&one, &two}, Specs());
  EXPECT_EQ(batch.at("a").shape(), (core::Shape{3, 2}));
  EXPECT_EQ(batch.at("a").bytes(), "abcdef");
  EXPECT_EQ(batch.at("s").shape(), (core::Shape{3, 1}));

  absl::StatusOr<std::vector<core::TensorMap>> parts = Split(batch, {1, 2});
  ASSERT_TRUE(parts.ok()) << parts.status();
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].at("a").bytes(), "ab");
  EXPECT_EQ((*parts)[1].at("a").bytes(), "cdef");
  EXPECT_EQ((*parts)[1].at("a").shape(), (core::Shape{2, 2}));
  EXPECT_EQ((*parts)[0].at("s").bytes(), one.at("s").bytes());
  EXPECT_EQ((*parts)[1].at("s").bytes(), two.at("s").bytes());
  // Split views the batch's bytes rather than copying them.
  EXPECT_EQ((*parts)[1].at("a").bytes().data(), batch.at("a").bytes().data() + 2);
}

TEST(TensorBatchTest, SplitRefusesOutputsWithTheWrongBatchSize) {
  const core::TensorMap outputs = Part("abcd", {"x", "y"});
  absl::Status status = Split(outputs, {1, 2}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_NE(status.message().find("the batch holds 3 rows"), absl::string_view::npos);
}

TEST(TensorBatchTest, SameItemShapes) {
  const core::TensorMap a = Part("ab", {"x"});
  const core::TensorMap b = Part("cdef", {"", "yz"});
  EXPECT_TRUE(SameItemShapes(a, b));
  core::TensorMap c = a;
  c["a"] = core::Tensor::Owning(core::DataType::kInt8, {1, 3}, "abc");
  EXPECT_FALSE(SameItemShapes(a, c));
}

}  // namespace
}  // namespace modeld::batching
