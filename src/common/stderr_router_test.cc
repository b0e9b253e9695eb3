#include "common/stderr_router.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::common {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Optional;

TEST(ParseForeignLogLineTest, AbseilLinesBeforeAndAfterAbseilIsSetUp) {
  std::optional<ForeignLogLine> early = ParseForeignLogLine(
      "I0000 00:00:1796636996.963283   28845 mlir_graph_optimization_pass.cc:401] MLIR V1 "
      "optimization pass is not enabled");
  ASSERT_TRUE(early.has_value());
  EXPECT_EQ(early->level, spdlog::level::debug);
  EXPECT_EQ(early->where, "mlir_graph_optimization_pass.cc:401");
  EXPECT_EQ(early->message, "MLIR V1 optimization pass is not enabled");

  std::optional<ForeignLogLine> later =
      ParseForeignLogLine("E1207 09:49:56.963283 28845 saved_model/loader.cc:12] no file\n");
  ASSERT_TRUE(later.has_value());
  EXPECT_EQ(later->level, spdlog::level::err);
  EXPECT_EQ(later->where, "saved_model/loader.cc:12");
  EXPECT_EQ(later->message, "no file");
}

TEST(ParseForeignLogLineTest, TslLinesAtEachLevel) {
  std::optional<ForeignLogLine> line = ParseForeignLogLine(
      "2026-12-07 09:49:56.963283: W tensorflow/core/framework/op_kernel.cc:1840] "
      "OP_REQUIRES failed");
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ(line->level, spdlog::level::warn);
  EXPECT_EQ(line->where, "tensorflow/core/framework/op_kernel.cc:1840");
  EXPECT_EQ(line->message, "OP_REQUIRES failed");
  EXPECT_EQ(ParseForeignLogLine("2026-12-07 09:49:56.963283: F a.cc:1] dying")->level,
            spdlog::level::critical);
  EXPECT_EQ(ParseForeignLogLine("2026-12-07 09:49:56.963283: I a.cc:1] note")->level,
            spdlog::level::debug);
}

TEST(ParseForeignLogLineTest, OtherTextIsLeftAlone) {
  EXPECT_EQ(ParseForeignLogLine(""), std::nullopt);
  EXPECT_EQ(ParseForeignLogLine("terminate called after throwing an instance of 'x'"),
            std::nullopt);
  EXPECT_EQ(ParseForeignLogLine("2026-12-07 09:49:56.963 info model 'linear' is ready"),
            std::nullopt);  // modeld's own format
  EXPECT_EQ(ParseForeignLogLine("I0000 not a log line"), std::nullopt);
  EXPECT_EQ(ParseForeignLogLine("I1207 09:49:56.9 28845 no_line_number.cc] x"), std::nullopt);
  EXPECT_EQ(ParseForeignLogLine("Warning: something"), std::nullopt);
  EXPECT_TRUE(IsAbseilStartupNotice(
      "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"));
  EXPECT_FALSE(IsAbseilStartupNotice("WARNING: disk is full"));
}

std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// Routes this test process's stderr, whose original is a temporary file, and writes to fd 2
// as a framework would.
TEST(RouteStderrThroughLogTest, FrameworkLinesAreLoggedInModeldsFormatAndTheRestPassesThrough) {
  if (!StderrRoutingAvailable()) GTEST_SKIP() << "sanitizer builds never route stderr";
  char path[] = "/tmp/modeld-stderr-XXXXXX";
  const int file = mkstemp(path);
  ASSERT_GE(file, 0);
  ASSERT_EQ(dup2(file, STDERR_FILENO), STDERR_FILENO);
  ASSERT_TRUE(InitLogging("debug").ok());
  ASSERT_TRUE(RouteStderrThroughLog().ok());
  ASSERT_TRUE(RouteStderrThroughLog().ok());  // a second call does nothing

  const std::string lines =
      "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
      "I0000 00:00:1796636996.963283   28845 mlir_pass.cc:401] MLIR V1 pass is not enabled\n"
      "terminate called without an active exception\n"
      "2026-12-07 09:49:56.963283: W tensorflow/core/kernel.cc:1840] OP_REQUIRES failed\n"
      "a prompt without a newline";
  ASSERT_EQ(write(STDERR_FILENO, lines.data(), lines.size()), static_cast<ssize_t>(lines.size()));
  spdlog::info("modeld's own line");

  std::string text;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    text = ReadFile(path);
    if (absl::StrContains(text, "OP_REQUIRES") && absl::StrContains(text, "a prompt")) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  unlink(path);
  EXPECT_THAT(text, Not(HasSubstr("absl::InitializeLog")));
  EXPECT_THAT(text, Not(HasSubstr("I0000")));
  EXPECT_THAT(text, HasSubstr(" debug mlir_pass.cc:401: MLIR V1 pass is not enabled\n"));
  EXPECT_THAT(text, HasSubstr(" warning tensorflow/core/kernel.cc:1840: OP_REQUIRES failed\n"));
  EXPECT_THAT(text, HasSubstr("\nterminate called without an active exception\n"));
  EXPECT_THAT(text, HasSubstr("a prompt without a newline"));
  EXPECT_THAT(text, HasSubstr(" info modeld's own line\n"));
}

// A process that aborts right after printing still prints it, and still dies of SIGABRT.
TEST(RouteStderrThroughLogTest, AFatalSignalStillEndsTheProcessAfterItsLastWords) {
  if (!StderrRoutingAvailable()) GTEST_SKIP() << "sanitizer builds never route stderr";
  char path[] = "/tmp/modeld-stderr-XXXXXX";
  const int file = mkstemp(path);
  ASSERT_GE(file, 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    dup2(file, STDERR_FILENO);
    if (!RouteStderrThroughLog().ok()) _exit(3);
    std::fputs("free(): invalid pointer\n", stderr);
    std::fputs("I1207 09:49:56.9 1 a.cc:1] cut short", stderr);  // held back: no newline
    std::fflush(stderr);
    std::abort();
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  const std::string text = ReadFile(path);
  unlink(path);
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << status;
  EXPECT_EQ(WTERMSIG(status), SIGABRT);
  EXPECT_THAT(text, HasSubstr("free(): invalid pointer\n"));
  EXPECT_THAT(text, HasSubstr("a.cc:1] cut short"));
}

}  // namespace
}  // namespace modeld::common
