#include "supervisor/supervisor_flags.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::supervisor {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::StatusOr<SupervisorFlags> Parse(std::vector<const char*> args) {
  args.insert(args.begin(), "modeld-supervisor");
  return ParseSupervisorFlags(static_cast<int>(args.size()), args.data());
}

TEST(SupervisorFlagsTest, DefaultsAndCommand) {
  absl::StatusOr<SupervisorFlags> flags =
      Parse({"--", "/usr/bin/modeld", "--model-repository=/m", "--help"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_FALSE(flags->help);  // --help after "--" is the child's
  EXPECT_THAT(flags->command, ElementsAre("/usr/bin/modeld", "--model-repository=/m", "--help"));
  EXPECT_EQ(flags->policy.backoff_initial, absl::Milliseconds(500));
  EXPECT_EQ(flags->policy.backoff_max, absl::Seconds(30));
  EXPECT_EQ(flags->policy.crash_loop_restarts, 5);
  EXPECT_EQ(flags->policy.crash_loop_window, absl::Seconds(60));
}

TEST(SupervisorFlagsTest, BothSpellingsOfValues) {
  absl::StatusOr<SupervisorFlags> flags =
      Parse({"--backoff-initial-ms=10", "--backoff-max-ms", "80", "--crash-loop-restarts=0",
             "--crash-loop-window-seconds", "7", "--", "/bin/true"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->policy.backoff_initial, absl::Milliseconds(10));
  EXPECT_EQ(flags->policy.backoff_max, absl::Milliseconds(80));
  EXPECT_EQ(flags->policy.crash_loop_restarts, 0);
  EXPECT_EQ(flags->policy.crash_loop_window, absl::Seconds(7));
  EXPECT_THAT(flags->command, ElementsAre("/bin/true"));
}

TEST(SupervisorFlagsTest, Help) {
  absl::StatusOr<SupervisorFlags> flags = Parse({"--help"});
  ASSERT_TRUE(flags.ok());
  EXPECT_TRUE(flags->help);
  EXPECT_TRUE(Parse({"-h", "--no-such-flag"})->help);
  const std::string text = SupervisorHelp();
  for (const char* flag : {"--backoff-initial-ms", "--backoff-max-ms", "--crash-loop-restarts",
                           "--crash-loop-window-seconds", "--help", "MODELD_SUPERVISED"}) {
    EXPECT_THAT(text, HasSubstr(flag));
  }
}

TEST(SupervisorFlagsTest, RefusesUnknownFlagsByName) {
  EXPECT_THAT(Parse({"--no-such-flag=1", "--", "/bin/true"}).status().message(),
              HasSubstr("unknown flag --no-such-flag"));
  EXPECT_THAT(Parse({"--no-such-flag", "--", "/bin/true"}).status().message(),
              HasSubstr("unknown flag --no-such-flag"));
  EXPECT_THAT(Parse({"modeld", "--", "/bin/true"}).status().message(),
              HasSubstr("unexpected argument 'modeld'"));
}

TEST(SupervisorFlagsTest, RequiresACommand) {
  for (const std::vector<const char*>& args : std::vector<std::vector<const char*>>{
           {}, {"--"}, {"--backoff-initial-ms=5"}, {"--backoff-initial-ms=5", "--"}}) {
    absl::StatusOr<SupervisorFlags> flags = Parse(args);
    ASSERT_FALSE(flags.ok());
    EXPECT_EQ(flags.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(flags.status().message(), HasSubstr("no command to run"));
  }
  EXPECT_THAT(Parse({"--", ""}).status().message(), HasSubstr("empty"));
}

TEST(SupervisorFlagsTest, RefusesBadValues) {
  EXPECT_THAT(Parse({"--backoff-initial-ms=0", "--", "/bin/true"}).status().message(),
              HasSubstr("--backoff-initial-ms expects a whole number >= 1, got '0'"));
  EXPECT_THAT(Parse({"--backoff-max-ms=soon", "--", "/bin/true"}).status().message(),
              HasSubstr("--backoff-max-ms expects a whole number >= 1, got 'soon'"));
  EXPECT_THAT(Parse({"--crash-loop-restarts=-1", "--", "/bin/true"}).status().message(),
              HasSubstr("--crash-loop-restarts expects a whole number >= 0"));
  EXPECT_THAT(Parse({"--crash-loop-window-seconds=0", "--", "/bin/true"}).status().message(),
              HasSubstr("--crash-loop-window-seconds expects a whole number >= 1"));
  EXPECT_THAT(Parse({"--backoff-initial-ms=1000", "--backoff-max-ms=500", "--", "/bin/true"})
                  .status()
                  .message(),
              HasSubstr("--backoff-max-ms (500) is below --backoff-initial-ms (1000)"));
  EXPECT_THAT(Parse({"--backoff-max-ms", "--", "/bin/true"}).status().message(),
              HasSubstr("--backoff-max-ms needs a value"));
}

}  // namespace
}  // namespace modeld::supervisor
