#include "batching/worker_threads.h"

#include <algorithm>
#include <atomic>

#include "common/thread_priority.h"
#include "gtest/gtest.h"

namespace modeld::batching {
namespace {

TEST(WorkerThreadsTest, WorkersRunNicerThanTheThreadThatStartedThem) {
  const int base = common::CurrentThreadNice();
  std::atomic<int> seen{-100};
  std::atomic<bool> flagged{false};
  common::SetModelThreadNice(3);
  {
    WorkerThreads workers;
    workers.Start([&] {
      seen = common::CurrentThreadNice();
      flagged = WorkerThreads::OnWorkerThread();
    });
    workers.JoinAll();
  }
  common::SetModelThreadNice(0);
  EXPECT_EQ(seen.load(), std::min(base + 3, 19));
  EXPECT_TRUE(flagged.load());
  EXPECT_EQ(common::CurrentThreadNice(), base);  // the starting thread keeps its own
  EXPECT_FALSE(WorkerThreads::OnWorkerThread());
}

}  // namespace
}  // namespace modeld::batching
