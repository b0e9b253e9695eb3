#include "repository/load_waiters.h"

#include <atomic>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::repository {
namespace {

using ::testing::HasSubstr;

TEST(LoadWaitersTest, TheFirstWaiterStartsTheLoadAndAllAreAnswered) {
  std::vector<std::string> answered;
  LoadWaiters waiters([&](const std::string& model, absl::Duration, bool ok) {
    answered.push_back(model + (ok ? ":ok" : ":failed"));
  });
  int calls = 0;
  std::vector<std::optional<int64_t>> versions;
  auto done = [&](absl::StatusOr<ModelHandle> handle) {
    ++calls;
    EXPECT_EQ(handle.status().code(), absl::StatusCode::kUnavailable);
  };
  const absl::Time later = absl::Now() + absl::Seconds(30);
  EXPECT_TRUE(waiters.Add("m", std::nullopt, later, done));
  EXPECT_FALSE(waiters.Add("m", 2, later, done));
  EXPECT_TRUE(waiters.Add("other", std::nullopt, later, done));
  EXPECT_EQ(waiters.Waiting("m"), 2u);
  waiters.ResolveAll("m", [&](std::optional<int64_t> version) -> absl::StatusOr<ModelHandle> {
    versions.push_back(version);
    return absl::UnavailableError("loaded, but not here");
  });
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(versions.size(), 2u);
  EXPECT_EQ(waiters.Waiting("m"), 0u);
  EXPECT_EQ(waiters.Waiting("other"), 1u);
  EXPECT_EQ(answered, (std::vector<std::string>{"m:failed", "m:failed"}));
  // The load ended: the next waiter starts another.
  EXPECT_TRUE(waiters.Add("m", std::nullopt, later, done));
  waiters.Close();  // answers the two left while `calls` still lives
  EXPECT_EQ(calls, 4);
}

TEST(LoadWaitersTest, ADeadlineAnswersAloneAndTheLoadStaysPending) {
  LoadWaiters waiters;
  absl::Notification expired;
  absl::Status status;
  EXPECT_TRUE(waiters.Add("slow", std::nullopt, absl::Now() + absl::Milliseconds(30),
                          [&](absl::StatusOr<ModelHandle> handle) {
                            status = handle.status();
                            expired.Notify();
                          }));
  ASSERT_TRUE(expired.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(status.message(), HasSubstr("model 'slow' is still loading"));
  // Its load is still pending: a new waiter does not start another.
  EXPECT_FALSE(waiters.Add("slow", std::nullopt, absl::Now() + absl::Seconds(30),
                           [](absl::StatusOr<ModelHandle>) {}));
}

TEST(LoadWaitersTest, AfterCloseAddAnswersAtOnce) {
  LoadWaiters waiters;
  waiters.Close();
  absl::Status status;
  EXPECT_FALSE(waiters.Add("m", std::nullopt, absl::InfiniteFuture(),
                           [&](absl::StatusOr<ModelHandle> h) { status = h.status(); }));
  EXPECT_THAT(status.message(), HasSubstr("shutting down"));
  waiters.Close();  // idempotent
}

TEST(LoadWaitersTest, WaitersLeftAtShutdownAreAnswered) {
  std::atomic<int> answered{0};
  {
    LoadWaiters waiters;
    for (int i = 0; i < 3; ++i) {
      waiters.Add("m", std::nullopt, absl::InfiniteFuture(), [&](absl::StatusOr<ModelHandle> h) {
        EXPECT_THAT(h.status().message(), HasSubstr("shutting down"));
        ++answered;
      });
    }
  }
  EXPECT_EQ(answered.load(), 3);
}

}  // namespace
}  // namespace modeld::repository
