#include "transport/message/backoff.h"

#include "gtest/gtest.h"

namespace modeld::transport::message {
namespace {

// Each wait is its step within ±20%; steps double up to the maximum; Reset starts over.
TEST(BackoffTest, DoublesWithJitterUpToTheMaximumAndResets) {
  Backoff backoff(absl::Milliseconds(100), absl::Milliseconds(350));
  const absl::Duration steps[] = {absl::Milliseconds(100), absl::Milliseconds(200),
                                  absl::Milliseconds(350), absl::Milliseconds(350)};
  for (absl::Duration step : steps) {
    const absl::Duration wait = backoff.Next();
    EXPECT_GE(wait, step * 0.8);
    EXPECT_LE(wait, step * 1.2);
  }
  backoff.Reset();
  const absl::Duration first = backoff.Next();
  EXPECT_GE(first, absl::Milliseconds(80));
  EXPECT_LE(first, absl::Milliseconds(120));
}

TEST(BackoffTest, WaitsAreJittered) {
  Backoff a(absl::Seconds(1), absl::Seconds(1));
  bool differs = false;
  const absl::Duration first = a.Next();
  for (int i = 0; i < 20 && !differs; ++i) differs = a.Next() != first;
  EXPECT_TRUE(differs);
}

}  // namespace
}  // namespace modeld::transport::message
