#include "supervisor/restart_policy.h"

#include <sys/wait.h>

#include <csignal>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::supervisor {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const absl::Time kStart = absl::UnixEpoch() + absl::Hours(1000);

RestartPolicyOptions SmallOptions() {
  RestartPolicyOptions options;
  options.backoff_initial = absl::Milliseconds(100);
  options.backoff_max = absl::Milliseconds(1000);
  options.crash_loop_restarts = 5;
  options.crash_loop_window = absl::Seconds(60);
  return options;
}

// A child that starts at `*now`, runs for `run`, and exits as `exit`; `*now` moves to the
// restart time when the policy restarts it.
Decision RunOnce(RestartPolicy& policy, absl::Time* now, absl::Duration run, ChildExit exit) {
  policy.ChildStarted(*now);
  *now += run;
  Decision decision = policy.ChildExited(exit, *now);
  if (decision.action == Decision::Action::kRestart) *now += decision.delay;
  return decision;
}

TEST(ChildExitTest, DescribesStatusesAndSignals) {
  EXPECT_EQ(ChildExit::Exited(1).Describe(), "exited with status 1");
  EXPECT_EQ(ChildExit::Exited(0).Describe(), "exited with status 0");
  EXPECT_EQ(ChildExit::Signaled(SIGKILL).Describe(), "killed by signal SIGKILL (9)");
  EXPECT_EQ(ChildExit::Signaled(SIGTERM).Describe(), "killed by signal SIGTERM (15)");
  ChildExit dumped = ChildExit::Signaled(SIGSEGV);
  dumped.core_dumped = true;
  EXPECT_EQ(dumped.Describe(), "killed by signal SIGSEGV (11) (core dumped)");
  EXPECT_THAT(ChildExit::Signaled(SIGRTMIN + 3).Describe(), HasSubstr("killed by signal "));
}

TEST(ChildExitTest, FromWaitStatus) {
  // Linux's encoding: exit status in bits 8..15, terminating signal in bits 0..6.
  const ChildExit exited = ChildExit::FromWaitStatus(3 << 8);
  EXPECT_EQ(exited.kind, ChildExit::Kind::kExited);
  EXPECT_EQ(exited.value, 3);
  const ChildExit killed = ChildExit::FromWaitStatus(SIGKILL);
  EXPECT_EQ(killed.kind, ChildExit::Kind::kSignaled);
  EXPECT_EQ(killed.value, SIGKILL);
  EXPECT_FALSE(killed.core_dumped);
  const ChildExit dumped = ChildExit::FromWaitStatus(SIGSEGV | 0x80);
  EXPECT_EQ(dumped.kind, ChildExit::Kind::kSignaled);
  EXPECT_TRUE(dumped.core_dumped);
}

TEST(RestartPolicyTest, CleanExitStopsWithZero) {
  RestartPolicy policy(SmallOptions());
  policy.ChildStarted(kStart);
  const Decision decision = policy.ChildExited(ChildExit::Exited(0), kStart + absl::Seconds(5));
  EXPECT_EQ(decision.action, Decision::Action::kExit);
  EXPECT_EQ(decision.exit_code, 0);
}

TEST(RestartPolicyTest, UsageErrorIsNotRestarted) {
  RestartPolicy policy(SmallOptions());
  policy.ChildStarted(kStart);
  const Decision decision = policy.ChildExited(ChildExit::Exited(2), kStart);
  EXPECT_EQ(decision.action, Decision::Action::kExit);
  EXPECT_EQ(decision.exit_code, 2);
}

TEST(RestartPolicyTest, FailuresAndSignalsAreRestarted) {
  RestartPolicy policy(SmallOptions());
  absl::Time now = kStart;
  for (ChildExit exit : {ChildExit::Exited(1), ChildExit::Exited(127), ChildExit::Signaled(SIGKILL),
                         ChildExit::Signaled(SIGTERM)}) {
    const Decision decision = RunOnce(policy, &now, absl::Minutes(5), exit);
    EXPECT_EQ(decision.action, Decision::Action::kRestart) << exit.Describe();
    EXPECT_EQ(decision.delay, absl::Milliseconds(100)) << exit.Describe();
    EXPECT_EQ(decision.reason, "restarting in 100 ms");
  }
  EXPECT_EQ(policy.restarts(), 3);
}

TEST(RestartPolicyTest, BackoffDoublesUpToTheMaximum) {
  RestartPolicyOptions options = SmallOptions();
  options.crash_loop_restarts = 100;
  RestartPolicy policy(options);
  absl::Time now = kStart;
  std::vector<int64_t> delays_ms;
  for (int i = 0; i < 7; ++i) {
    const Decision decision = RunOnce(policy, &now, absl::Seconds(1), ChildExit::Exited(1));
    ASSERT_EQ(decision.action, Decision::Action::kRestart);
    delays_ms.push_back(absl::ToInt64Milliseconds(decision.delay));
  }
  EXPECT_THAT(delays_ms, ElementsAre(100, 200, 400, 800, 1000, 1000, 1000));
}

TEST(RestartPolicyTest, ALongRunResetsTheBackoff) {
  RestartPolicyOptions options = SmallOptions();
  options.crash_loop_restarts = 100;
  RestartPolicy policy(options);
  absl::Time now = kStart;
  RunOnce(policy, &now, absl::Seconds(1), ChildExit::Exited(1));
  RunOnce(policy, &now, absl::Seconds(1), ChildExit::Exited(1));
  EXPECT_EQ(RunOnce(policy, &now, absl::Seconds(1), ChildExit::Exited(1)).delay,
            absl::Milliseconds(400));
  // Just short of the window: the backoff keeps growing.
  EXPECT_EQ(RunOnce(policy, &now, absl::Seconds(59), ChildExit::Exited(1)).delay,
            absl::Milliseconds(800));
  // A full window: back to the initial delay, then doubling again.
  EXPECT_EQ(RunOnce(policy, &now, absl::Seconds(60), ChildExit::Signaled(SIGKILL)).delay,
            absl::Milliseconds(100));
  EXPECT_EQ(RunOnce(policy, &now, absl::Seconds(1), ChildExit::Exited(1)).delay,
            absl::Milliseconds(200));
}

TEST(RestartPolicyTest, GivesUpOnACrashLoop) {
  RestartPolicyOptions options = SmallOptions();
  options.crash_loop_restarts = 3;
  RestartPolicy policy(options);
  absl::Time now = kStart;
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(RunOnce(policy, &now, absl::Seconds(1), ChildExit::Exited(1)).action,
              Decision::Action::kRestart);
  }
  const Decision decision = RunOnce(policy, &now, absl::Seconds(1), ChildExit::Exited(1));
  EXPECT_EQ(decision.action, Decision::Action::kExit);
  EXPECT_EQ(decision.exit_code, 1);
  EXPECT_EQ(decision.reason, "crash loop: 3 restarts in 60 s; giving up");
  EXPECT_EQ(policy.restarts(), 3);
}

TEST(RestartPolicyTest, RestartsOutsideTheWindowDoNotCount) {
  RestartPolicyOptions options = SmallOptions();
  options.crash_loop_restarts = 2;
  options.backoff_max = absl::Milliseconds(100);
  RestartPolicy policy(options);
  absl::Time now = kStart;
  // A failure every 40 s: at most 2 restarts within any 60 s, never more, so never a loop.
  for (int i = 0; i < 20; ++i) {
    const Decision decision = RunOnce(policy, &now, absl::Seconds(40) - absl::Milliseconds(100),
                                      ChildExit::Signaled(SIGSEGV));
    ASSERT_EQ(decision.action, Decision::Action::kRestart) << "exit " << i << decision.reason;
  }
  // A quick failure then finds the restart 41 s ago and its own within the window: a third
  // restart would be more than 2.
  const Decision decision = RunOnce(policy, &now, absl::Seconds(1), ChildExit::Exited(1));
  EXPECT_EQ(decision.action, Decision::Action::kExit);
  EXPECT_THAT(decision.reason, HasSubstr("crash loop: 2 restarts in 60 s"));
}

TEST(RestartPolicyTest, ZeroRestartsAllowedGivesUpAtTheFirstFailure) {
  RestartPolicyOptions options = SmallOptions();
  options.crash_loop_restarts = 0;
  RestartPolicy policy(options);
  policy.ChildStarted(kStart);
  const Decision decision = policy.ChildExited(ChildExit::Exited(1), kStart + absl::Hours(1));
  EXPECT_EQ(decision.action, Decision::Action::kExit);
  EXPECT_EQ(decision.exit_code, 1);
}

TEST(RestartPolicyTest, AfterAStopRequestNothingIsRestarted) {
  for (const auto& [exit, code] :
       std::vector<std::pair<ChildExit, int>>{{ChildExit::Exited(0), 0},
                                              {ChildExit::Exited(1), 1},
                                              {ChildExit::Exited(2), 1},
                                              {ChildExit::Signaled(SIGTERM), 1},
                                              {ChildExit::Signaled(SIGKILL), 1}}) {
    RestartPolicy policy(SmallOptions());
    policy.ChildStarted(kStart);
    policy.StopRequested();
    EXPECT_TRUE(policy.stop_requested());
    const Decision decision = policy.ChildExited(exit, kStart + absl::Seconds(1));
    EXPECT_EQ(decision.action, Decision::Action::kExit) << exit.Describe();
    EXPECT_EQ(decision.exit_code, code) << exit.Describe();
  }
}

TEST(FormatDelayTest, WholeMilliseconds) {
  EXPECT_EQ(FormatDelay(absl::Milliseconds(500)), "500 ms");
  EXPECT_EQ(FormatDelay(absl::Seconds(30)), "30000 ms");
}

}  // namespace
}  // namespace modeld::supervisor
