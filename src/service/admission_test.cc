#include "service/admission.h"

#include <limits>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::service {
namespace {

using ::testing::HasSubstr;

TEST(AdmissionTest, RefusesOverTheLimitNamingTheFlagAndAdmitsAgainOnceASlotIsFree) {
  metrics::Registry registry;
  Admission admission(2, &registry);
  std::vector<Admission::Ticket> held;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<Admission::Ticket> ticket = admission.Admit();
    ASSERT_TRUE(ticket.ok()) << ticket.status();
    held.push_back(*std::move(ticket));
  }
  EXPECT_EQ(admission.in_flight(), 2);
  absl::StatusOr<Admission::Ticket> refused = admission.Admit();
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("limit of 2 inference requests in flight (--max-inflight-requests=2)"));
  EXPECT_EQ(admission.in_flight(), 2);  // a refusal holds no slot
  EXPECT_THAT(registry.Render(),
              HasSubstr("modeld_requests_rejected_total{reason=\"max_inflight_requests\"} 1"));

  held.pop_back();  // a call finishes
  EXPECT_EQ(admission.in_flight(), 1);
  EXPECT_TRUE(admission.Admit().ok());  // that ticket is released at once, too
  EXPECT_EQ(admission.in_flight(), 1);
}

TEST(AdmissionTest, AMovedTicketHoldsOneSlot) {
  Admission admission(1, nullptr);
  std::optional<Admission::Ticket> moved;
  {
    absl::StatusOr<Admission::Ticket> ticket = admission.Admit();
    ASSERT_TRUE(ticket.ok());
    moved.emplace(*std::move(ticket));
  }
  EXPECT_EQ(admission.in_flight(), 1);
  EXPECT_FALSE(admission.Admit().ok());
  moved.reset();
  EXPECT_EQ(admission.in_flight(), 0);
}

TEST(AdmissionTest, ZeroMeansNoLimit) {
  Admission admission(0, nullptr);
  std::vector<Admission::Ticket> held;
  for (int i = 0; i < 1000; ++i) held.push_back(*admission.Admit());
  EXPECT_EQ(admission.in_flight(), 1000);
}

TEST(AdmissionTest, HoldTakesASlotOverTheLimitAndFreeCountsWhatIsLeft) {
  Admission admission(2, nullptr);
  EXPECT_EQ(admission.Free(), 2);
  Admission::Ticket first = admission.Hold();
  EXPECT_EQ(admission.Free(), 1);
  Admission::Ticket second = admission.Hold();
  Admission::Ticket third = admission.Hold();  // work already taken from a queue
  EXPECT_EQ(admission.in_flight(), 3);
  EXPECT_EQ(admission.Free(), 0);
  EXPECT_FALSE(admission.Admit().ok());
  EXPECT_EQ(Admission(0, nullptr).Free(), std::numeric_limits<int64_t>::max());
}

TEST(AdmissionTest, WaitForFreeReturnsWhenASlotIsGivenBackAndAtTheDeadline) {
  Admission admission(1, nullptr);
  auto held = std::make_unique<Admission::Ticket>(admission.Hold());
  EXPECT_EQ(admission.WaitForFree(absl::Now() + absl::Milliseconds(20)), 0);  // the deadline
  std::thread release([&] {
    absl::SleepFor(absl::Milliseconds(20));
    held.reset();
  });
  EXPECT_EQ(admission.WaitForFree(absl::Now() + absl::Seconds(30)), 1);
  release.join();
}

TEST(AdmissionTest, SetLimitChangesTheLimitAndTheAutomaticMessageSaysWhereItComesFrom) {
  Admission admission(1, nullptr, /*automatic=*/true);
  Admission::Ticket held = admission.Hold();
  const absl::Status refused = admission.Admit().status();
  EXPECT_THAT(std::string(refused.message()),
              HasSubstr("limit of 1 inference requests in flight (--max-inflight-requests=auto, "
                        "from the served models' instances and queues)"));
  admission.SetLimit(2);
  EXPECT_EQ(admission.limit(), 2);
  EXPECT_TRUE(admission.Admit().ok());
}

core::ModelConfig Config(int instances, int max_batch_size, const std::string& batching) {
  core::ModelConfig config;
  config.instance_count = instances;
  config.max_batch_size = max_batch_size;
  if (!batching.empty()) {
    config.proto.mutable_dynamic_batching()->mutable_default_queue_policy()->set_max_queue_size(
        std::stoi(batching));
  }
  return config;
}

TEST(AdmissionTest, AVersionsCapacityIsWhatItRunsPlusWhatItsQueueHolds) {
  // 2 instances of batches of 64, and a queue of 128.
  EXPECT_EQ(VersionCapacity(Config(2, 64, "128")), 2 * 64 + 128);
  // An unbounded queue (max_queue_size 0) counts as much again as runs.
  EXPECT_EQ(VersionCapacity(Config(2, 64, "0")), 2 * 2 * 64);
  // A model without a batch dimension runs one request per instance.
  EXPECT_EQ(VersionCapacity(Config(3, 0, "")), 2 * 3);
}

TEST(AdmissionTest, TheAutomaticLimitSumsTheServedVersionsAndHasAFloor) {
  std::vector<std::shared_ptr<const core::ModelConfig>> served;
  EXPECT_EQ(AutoLimit(served), kMinAutoLimit);
  served.push_back(std::make_shared<core::ModelConfig>(Config(1, 0, "")));
  EXPECT_EQ(AutoLimit(served), kMinAutoLimit);
  served.push_back(std::make_shared<core::ModelConfig>(Config(2, 64, "128")));
  served.push_back(std::make_shared<core::ModelConfig>(Config(1, 64, "")));
  EXPECT_EQ(AutoLimit(served), 2 + 256 + 128);
}

}  // namespace
}  // namespace modeld::service
