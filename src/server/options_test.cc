#include "server/options.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::server {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<ParsedFlags> Parse(std::vector<const char*> args) {
  args.insert(args.begin(), "modeld");
  return ParseFlags(static_cast<int>(args.size()), args.data());
}

TEST(OptionsTest, DefaultsBindLoopback) {
  absl::StatusOr<ParsedFlags> flags = Parse({"--model-repository=/models"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->options.model_repository, "/models");
  EXPECT_EQ(flags->options.grpc_address, "127.0.0.1:8001");
  EXPECT_EQ(flags->options.grpc_max_message_bytes, 64 << 20);
  EXPECT_EQ(flags->options.http_address, "127.0.0.1:8000");
  EXPECT_EQ(flags->options.http_threads, 2);
  EXPECT_EQ(flags->options.http_max_body_bytes, 64 << 20);
  EXPECT_EQ(flags->options.http_header_timeout_seconds, 10);
  EXPECT_EQ(flags->options.http_idle_timeout_seconds, 60);
  EXPECT_FALSE(flags->help);
}

TEST(OptionsTest, BothSpellingsOfValues) {
  absl::StatusOr<ParsedFlags> flags =
      Parse({"--model-repository", "/m", "--grpc-address=0.0.0.0:9000", "--grpc-max-message-bytes",
             "1024", "--log-level=debug", "--drain-timeout-seconds=5"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->options.model_repository, "/m");
  EXPECT_EQ(flags->options.grpc_address, "0.0.0.0:9000");
  EXPECT_EQ(flags->options.grpc_max_message_bytes, 1024);
  EXPECT_EQ(flags->options.log_level, "debug");
  EXPECT_EQ(flags->options.drain_timeout_seconds, 5);
}

TEST(OptionsTest, HttpFlags) {
  absl::StatusOr<ParsedFlags> flags =
      Parse({"--model-repository=/m", "--http-address=127.0.0.1:0", "--http-threads", "4",
             "--http-max-body-bytes=2048", "--http-header-timeout-seconds=3",
             "--http-idle-timeout-seconds=7"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->options.http_address, "127.0.0.1:0");
  EXPECT_EQ(flags->options.http_threads, 4);
  EXPECT_EQ(flags->options.http_max_body_bytes, 2048);
  EXPECT_EQ(flags->options.http_header_timeout_seconds, 3);
  EXPECT_EQ(flags->options.http_idle_timeout_seconds, 7);
  EXPECT_THAT(Parse({"--model-repository=/m", "--http-threads=0"}).status().message(),
              HasSubstr("--http-threads expects a positive integer, got '0'"));
}

TEST(OptionsTest, HelpListsEveryFlag) {
  absl::StatusOr<ParsedFlags> flags = Parse({"--help"});
  ASSERT_TRUE(flags.ok());
  EXPECT_TRUE(flags->help);
  const std::string help = FlagsHelp();
  for (const char* flag :
       {"--model-repository", "--grpc-address", "--grpc-max-message-bytes", "--http-address",
        "--http-threads", "--http-max-body-bytes", "--http-header-timeout-seconds",
        "--http-idle-timeout-seconds", "--drain-timeout-seconds", "--log-level", "--help"}) {
    EXPECT_THAT(help, HasSubstr(flag));
  }
  EXPECT_THAT(help, HasSubstr("(default: 127.0.0.1:8001)"));
  EXPECT_THAT(help, HasSubstr("(default: 127.0.0.1:8000)"));
}

TEST(OptionsTest, ErrorsNameTheFlag) {
  EXPECT_THAT(Parse({"--model-repository=/m", "--grcp-address=x"}).status().message(),
              HasSubstr("unknown flag --grcp-address"));
  EXPECT_THAT(Parse({"--model-repository"}).status().message(),
              HasSubstr("--model-repository needs a value"));
  EXPECT_THAT(Parse({"--model-repository=/m", "--grpc-max-message-bytes=-1"}).status().message(),
              HasSubstr("--grpc-max-message-bytes expects a positive integer, got '-1'"));
  EXPECT_THAT(Parse({}).status().message(), HasSubstr("--model-repository is required"));
  EXPECT_THAT(Parse({"/models"}).status().message(), HasSubstr("unexpected argument '/models'"));
}

}  // namespace
}  // namespace modeld::server
