#include "service/admission.h"

#include <optional>
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

}  // namespace
}  // namespace modeld::service
