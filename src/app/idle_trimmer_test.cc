#include "app/idle_trimmer.h"

#include <atomic>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace modeld::app {
namespace {

// Activity the test sets, and the trims the trimmer made.
class Fixture {
 public:
  Activity activity() const {
    absl::MutexLock lock(&mu_);
    return activity_;
  }
  void Set(int64_t in_flight, int64_t finished) {
    absl::MutexLock lock(&mu_);
    activity_ = {in_flight, finished};
  }
  void Trim() {
    absl::MutexLock lock(&mu_);
    ++trims_;
  }
  // Waits until `count` trims were made, or 10 s.
  bool WaitTrims(int count) {
    absl::MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return trims_ >= count; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(10));
  }
  int trims() const {
    absl::MutexLock lock(&mu_);
    return trims_;
  }

 private:
  mutable absl::Mutex mu_;
  Activity activity_ ABSL_GUARDED_BY(mu_);
  int trims_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST(IdleTrimmerTest, TrimsOnceAfterActivityWhenIdle) {
  Fixture f;
  IdleTrimmer trimmer([&] { return f.activity(); }, absl::Milliseconds(5), [&] { f.Trim(); });
  trimmer.Start();
  f.Set(0, 10);  // ten requests came and went
  ASSERT_TRUE(f.WaitTrims(1));
  // Nothing new: no more trims, however long it stays idle.
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(f.trims(), 1);
  f.Set(0, 11);
  EXPECT_TRUE(f.WaitTrims(2));
  trimmer.Stop();
}

TEST(IdleTrimmerTest, NeverTrimsWhileRequestsRun) {
  Fixture f;
  IdleTrimmer trimmer([&] { return f.activity(); }, absl::Milliseconds(5), [&] { f.Trim(); });
  trimmer.Start();
  for (int64_t finished = 1; finished <= 20; ++finished) {
    f.Set(1, finished);  // busy: one in flight, and requests keep finishing
    absl::SleepFor(absl::Milliseconds(3));
  }
  EXPECT_EQ(f.trims(), 0);
  f.Set(0, 20);
  EXPECT_TRUE(f.WaitTrims(1));
}

}  // namespace
}  // namespace modeld::app
