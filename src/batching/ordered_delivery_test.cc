#include "batching/ordered_delivery.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::batching {
namespace {

TEST(OrderedDeliveryTest, DeliversInSequenceWhateverTheArrivalOrder) {
  OrderedDelivery delivery;
  std::vector<std::string> delivered;
  auto callback = [&](std::string id) {
    return [&delivered, id](absl::StatusOr<core::InferResponse>) { delivered.push_back(id); };
  };
  delivery.Deliver(2, callback("c"), core::InferResponse{});
  delivery.Deliver(1, callback("b"), absl::InternalError("x"));
  EXPECT_TRUE(delivered.empty());  // 0 has not arrived
  delivery.Deliver(0, callback("a"), core::InferResponse{});
  EXPECT_THAT(delivered, ::testing::ElementsAre("a", "b", "c"));
  delivery.Deliver(3, callback("d"), core::InferResponse{});
  EXPECT_THAT(delivered, ::testing::ElementsAre("a", "b", "c", "d"));
}

}  // namespace
}  // namespace modeld::batching
