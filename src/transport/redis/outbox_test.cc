#include "transport/redis/outbox.h"

#include <thread>

#include "gtest/gtest.h"

namespace modeld::transport::redis {
namespace {

std::unique_ptr<RedisJob> JobFor(const std::string& id) {
  auto job = std::make_unique<RedisJob>();
  job->entry.id = id;
  return job;
}

TEST(OutboxTest, TakesQueuedJobsInOrderUpToTheMaximum) {
  Outbox outbox;
  for (const char* id : {"1", "2", "3"}) ASSERT_TRUE(outbox.Push(JobFor(id)));
  std::vector<std::unique_ptr<RedisJob>> taken;
  ASSERT_TRUE(outbox.Take(absl::InfiniteFuture(), 2, taken));
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(taken[0]->entry.id, "1");
  EXPECT_EQ(taken[1]->entry.id, "2");
  ASSERT_TRUE(outbox.Take(absl::InfiniteFuture(), 8, taken));
  ASSERT_EQ(taken.size(), 3u);
  EXPECT_EQ(taken[2]->entry.id, "3");
}

TEST(OutboxTest, TakeWaitsUntilItsDeadlineWhenEmpty) {
  Outbox outbox;
  std::vector<std::unique_ptr<RedisJob>> taken;
  EXPECT_TRUE(outbox.Take(absl::Now() + absl::Milliseconds(10), 8, taken));
  EXPECT_TRUE(taken.empty());
}

TEST(OutboxTest, StopWakesAWaitingTakeAndEndsItOnceTheDeadlinePasses) {
  Outbox outbox;
  std::vector<std::unique_ptr<RedisJob>> taken;
  bool result = false;
  std::thread writer([&] { result = outbox.Take(absl::InfiniteFuture(), 8, taken); });
  outbox.Stop(absl::Now() + absl::Hours(1));
  writer.join();  // woken by Stop although nothing was queued
  EXPECT_TRUE(result);
  EXPECT_TRUE(outbox.stopping());
  // With the write deadline past, Take says the writer is done.
  outbox.Stop(absl::InfinitePast());
  EXPECT_FALSE(outbox.Take(absl::InfiniteFuture(), 8, taken));
}

TEST(OutboxTest, AClosedOutboxDropsWhatIsPushed) {
  Outbox outbox;
  ASSERT_TRUE(outbox.Push(JobFor("queued")));
  outbox.Close();
  EXPECT_FALSE(outbox.Push(JobFor("late")));
  std::vector<std::unique_ptr<RedisJob>> taken;
  EXPECT_TRUE(outbox.Take(absl::Now(), 8, taken));
  EXPECT_TRUE(taken.empty());
}

}  // namespace
}  // namespace modeld::transport::redis
