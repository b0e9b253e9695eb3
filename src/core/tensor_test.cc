#include "core/tensor.h"

#include <limits>

#include "gtest/gtest.h"

namespace modeld::core {
namespace {

TEST(TensorTest, ElementCount) {
  EXPECT_EQ(ElementCount({}), 1);
  EXPECT_EQ(ElementCount({2, 3, 4}), 24);
  EXPECT_EQ(ElementCount({2, 0}), 0);
  EXPECT_EQ(ElementCount({2, -1}), -1);
  EXPECT_EQ(ElementCount({std::numeric_limits<int64_t>::max(), 2}), -1);
}

TEST(TensorTest, OwningKeepsBytesAcrossCopiesAndMoves) {
  Tensor original = Tensor::Owning(DataType::kUint8, {3}, "abc");
  Tensor copy = original;
  Tensor moved = std::move(original);
  EXPECT_EQ(copy.bytes(), "abc");
  EXPECT_EQ(moved.bytes(), "abc");
  EXPECT_EQ(moved.shape(), (Shape{3}));
  EXPECT_EQ(moved.type(), DataType::kUint8);
}

TEST(TensorTest, ShortOwnedBytesSurviveAMove) {
  // Short strings live inside std::string itself; the view must not point at a moved-from one.
  std::vector<Tensor> tensors;
  for (int i = 0; i < 100; ++i) tensors.push_back(Tensor::Owning(DataType::kUint8, {1}, "x"));
  for (const Tensor& tensor : tensors) EXPECT_EQ(tensor.bytes(), "x");
}

TEST(TensorTest, ViewingSharesTheOwner) {
  auto owner = std::make_shared<std::string>("wxyz");
  Tensor view =
      Tensor::Viewing(DataType::kUint8, {2}, absl::string_view(*owner).substr(1, 2), owner);
  EXPECT_EQ(owner.use_count(), 2);
  EXPECT_EQ(view.bytes(), "xy");
}

TEST(TensorTest, SliceRowsSharesTheBytes) {
  Tensor tensor = Tensor::Owning(DataType::kInt16, {3, 2}, "aabbccddeeff");
  absl::StatusOr<Tensor> middle = tensor.SliceRows(1, 2);
  ASSERT_TRUE(middle.ok()) << middle.status();
  EXPECT_EQ(middle->shape(), (Shape{2, 2}));
  EXPECT_EQ(middle->bytes(), "ccddeeff");
  EXPECT_EQ(middle->bytes().data(), tensor.bytes().data() + 4);
  EXPECT_EQ(tensor.SliceRows(3, 0)->bytes(), "");
  EXPECT_FALSE(tensor.SliceRows(2, 2).ok());
  EXPECT_FALSE(Tensor::Owning(DataType::kInt16, {}, "aa").SliceRows(0, 1).ok());
}

TEST(TensorTest, SliceRowsOfBytesTensors) {
  std::string buffer;
  for (const char* element : {"a", "bb", "", "dddd", "e", "ff"})
    AppendBytesElement(element, buffer);
  Tensor tensor = Tensor::Owning(DataType::kBytes, {3, 2}, buffer);
  absl::StatusOr<Tensor> last_two = tensor.SliceRows(1, 2);
  ASSERT_TRUE(last_two.ok()) << last_two.status();
  absl::StatusOr<std::vector<absl::string_view>> elements = SplitBytesElements(last_two->bytes());
  ASSERT_TRUE(elements.ok());
  EXPECT_EQ(*elements, (std::vector<absl::string_view>{"", "dddd", "e", "ff"}));
  absl::StatusOr<Tensor> first = tensor.SliceRows(0, 1);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(SplitBytesElements(first->bytes())->size(), 2u);
}

TEST(TensorTest, BytesElementsRoundTrip) {
  std::string buffer;
  AppendBytesElement("hello", buffer);
  AppendBytesElement("", buffer);
  AppendBytesElement(std::string(300, 'z'), buffer);
  absl::StatusOr<std::vector<absl::string_view>> elements = SplitBytesElements(buffer);
  ASSERT_TRUE(elements.ok()) << elements.status();
  ASSERT_EQ(elements->size(), 3u);
  EXPECT_EQ((*elements)[0], "hello");
  EXPECT_EQ((*elements)[1], "");
  EXPECT_EQ((*elements)[2], std::string(300, 'z'));
}

TEST(TensorTest, TruncatedBytesElementsAreRefused) {
  std::string buffer;
  AppendBytesElement("hello", buffer);
  buffer.pop_back();
  EXPECT_EQ(SplitBytesElements(buffer).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SplitBytesElements("\x01\x00").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace modeld::core
