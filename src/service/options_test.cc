#include "service/options.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::service {
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

TEST(OptionsTest, SecurityAndLimitDefaults) {
  absl::StatusOr<ParsedFlags> flags = Parse({"--model-repository=/m"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  const ServerOptions& o = flags->options;
  EXPECT_EQ(o.model_control_mode, "none");
  EXPECT_EQ(o.grpc_tls_cert, "");
  EXPECT_EQ(o.http_tls_cert, "");
  EXPECT_EQ(o.auth_token_file, "");
  EXPECT_EQ(o.auth_health, "open");
  EXPECT_EQ(o.http_max_connections, 1024);
  EXPECT_EQ(o.http_max_header_bytes, 64 << 10);
  EXPECT_EQ(o.http_max_json_depth, 64);
  EXPECT_EQ(o.max_request_elements, 16 << 20);
  EXPECT_EQ(o.max_inflight_requests, kAutoInflightLimit);
}

TEST(OptionsTest, MaxInflightRequestsTakesAutoOrACount) {
  EXPECT_EQ(Parse({"--model-repository=/m", "--max-inflight-requests=auto"})
                ->options.max_inflight_requests,
            kAutoInflightLimit);
  EXPECT_EQ(Parse({"--model-repository=/m", "--max-inflight-requests=0"})
                ->options.max_inflight_requests,
            0);
  EXPECT_EQ(Parse({"--model-repository=/m", "--max-inflight-requests=300"})
                ->options.max_inflight_requests,
            300);
  EXPECT_THAT(
      Parse({"--model-repository=/m", "--max-inflight-requests=lots"}).status().message(),
      HasSubstr("--max-inflight-requests expects 'auto' or a non-negative integer, got 'lots'"));
}

TEST(OptionsTest, SecurityAndLimitFlags) {
  absl::StatusOr<ParsedFlags> flags =
      Parse({"--model-repository=/m", "--grpc-tls-cert=g.crt", "--grpc-tls-key=g.key",
             "--grpc-tls-client-ca=ca.crt", "--http-tls-cert=h.crt", "--http-tls-key=h.key",
             "--http-tls-client-ca=hca.crt", "--auth-token-file=/t", "--auth-health=token",
             "--http-max-connections=8", "--http-max-header-bytes=4096", "--http-max-json-depth=5",
             "--max-request-elements=0"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  const ServerOptions& o = flags->options;
  EXPECT_EQ(o.grpc_tls_cert, "g.crt");
  EXPECT_EQ(o.grpc_tls_key, "g.key");
  EXPECT_EQ(o.grpc_tls_client_ca, "ca.crt");
  EXPECT_EQ(o.http_tls_cert, "h.crt");
  EXPECT_EQ(o.http_tls_key, "h.key");
  EXPECT_EQ(o.http_tls_client_ca, "hca.crt");
  EXPECT_EQ(o.auth_token_file, "/t");
  EXPECT_EQ(o.auth_health, "token");
  EXPECT_EQ(o.http_max_connections, 8);
  EXPECT_EQ(o.http_max_header_bytes, 4096);
  EXPECT_EQ(o.http_max_json_depth, 5);
  EXPECT_EQ(o.max_request_elements, 0);
}

TEST(OptionsTest, SecurityFlagErrors) {
  auto message = [](std::vector<const char*> args) {
    args.insert(args.begin(), "--model-repository=/m");
    return std::string(Parse(args).status().message());
  };
  EXPECT_THAT(message({"--grpc-tls-cert=c"}),
              HasSubstr("--grpc-tls-cert and --grpc-tls-key go together"));
  EXPECT_THAT(message({"--http-tls-key=k"}),
              HasSubstr("--http-tls-cert and --http-tls-key go together"));
  EXPECT_THAT(message({"--http-tls-client-ca=ca"}),
              HasSubstr("--http-tls-client-ca needs --http-tls-cert"));
  EXPECT_THAT(message({"--auth-health=token"}), HasSubstr("--auth-health needs --auth-token-file"));
  EXPECT_THAT(message({"--auth-token-file=/t", "--auth-health=closed"}),
              HasSubstr("--auth-health expects open or token, got 'closed'"));
  EXPECT_THAT(message({"--max-request-elements=-1"}), HasSubstr("--max-request-elements expects"));
  EXPECT_THAT(message({"--http-max-connections=0"}),
              HasSubstr("--http-max-connections expects a positive integer"));
}

TEST(OptionsTest, RedisDefaults) {
  absl::StatusOr<ParsedFlags> flags = Parse({"--model-repository=/m"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  const ServerOptions& o = flags->options;
  EXPECT_EQ(o.redis_url, "");
  EXPECT_EQ(o.redis_stream, "modeld:requests");
  EXPECT_EQ(o.redis_group, "modeld");
  EXPECT_EQ(o.redis_list, "");
  EXPECT_EQ(o.redis_consumer, "");
  EXPECT_EQ(o.redis_read_count, 64);
  EXPECT_EQ(o.redis_max_in_flight, 256);
  EXPECT_EQ(o.redis_visibility_timeout_ms, 30000);
  EXPECT_EQ(o.redis_max_deliveries, 3);
  EXPECT_EQ(o.redis_reply_ttl_ms, 60000);
  EXPECT_EQ(o.redis_dead_letter_maxlen, 10000);
}

TEST(OptionsTest, RedisFlags) {
  absl::StatusOr<ParsedFlags> flags = Parse(
      {"--model-repository=/m", "--redis-url=redis://:pw@10.0.0.1:6380/2", "--redis-stream=jobs",
       "--redis-group=g", "--redis-consumer=me", "--redis-read-count=8", "--redis-max-in-flight=32",
       "--redis-visibility-timeout-ms=500", "--redis-max-deliveries=5", "--redis-reply-ttl-ms=1000",
       "--redis-dead-letter-maxlen=7"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  const ServerOptions& o = flags->options;
  EXPECT_EQ(o.redis_url, "redis://:pw@10.0.0.1:6380/2");
  EXPECT_EQ(o.redis_stream, "jobs");
  EXPECT_EQ(o.redis_group, "g");
  EXPECT_EQ(o.redis_consumer, "me");
  EXPECT_EQ(o.redis_read_count, 8);
  EXPECT_EQ(o.redis_max_in_flight, 32);
  EXPECT_EQ(o.redis_visibility_timeout_ms, 500);
  EXPECT_EQ(o.redis_max_deliveries, 5);
  EXPECT_EQ(o.redis_reply_ttl_ms, 1000);
  EXPECT_EQ(o.redis_dead_letter_maxlen, 7);

  flags = Parse({"--model-repository=/m", "--redis-url=redis://localhost", "--redis-list=q"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  EXPECT_EQ(flags->options.redis_list, "q");
}

TEST(OptionsTest, AmqpFlags) {
  absl::StatusOr<ParsedFlags> flags =
      Parse({"--model-repository=/m", "--amqp-url=amqps://u:pw@mq:5671/prod",
             "--amqp-tls-ca=/etc/ca.pem", "--amqp-queue=jobs", "--amqp-max-priority=9",
             "--amqp-prefetch=16", "--amqp-max-deliveries=5"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  const ServerOptions& o = flags->options;
  EXPECT_EQ(o.amqp_url, "amqps://u:pw@mq:5671/prod");
  EXPECT_EQ(o.amqp_tls_ca, "/etc/ca.pem");
  EXPECT_EQ(o.amqp_queue, "jobs");
  EXPECT_EQ(o.amqp_queue_type, "classic");
  EXPECT_EQ(o.amqp_max_priority, 9);
  EXPECT_EQ(o.amqp_prefetch, 16);
  EXPECT_EQ(o.amqp_max_deliveries, 5);
}

TEST(OptionsTest, MemoryBudgetFlags) {
  absl::StatusOr<ParsedFlags> flags =
      Parse({"--model-repository=/m", "--model-memory-budget=1.5GiB", "--preload-models=false",
             "--model-load-timeout=5", "--model-min-residency=3"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  const ServerOptions& o = flags->options;
  EXPECT_EQ(o.model_memory_budget_bytes, int64_t{3} << 29);
  EXPECT_FALSE(o.model_preload);
  EXPECT_EQ(o.model_load_timeout_s, 5);
  EXPECT_EQ(o.model_min_residency_s, 3);
  const ServerOptions defaults;
  EXPECT_EQ(defaults.model_memory_budget_bytes, 0);
  EXPECT_TRUE(defaults.model_preload);
  EXPECT_EQ(defaults.model_load_timeout_s, 60);
  EXPECT_EQ(defaults.model_min_residency_s, 0);
}

TEST(OptionsTest, MemoryBudgetFlagErrors) {
  EXPECT_THAT(Parse({"--model-repository=/m", "--model-memory-budget=lots"}).status().message(),
              HasSubstr("--model-memory-budget: 'lots' is not a size"));
  EXPECT_THAT(Parse({"--model-repository=/m", "--preload-models=false"}).status().message(),
              HasSubstr("--preload-models needs --model-memory-budget"));
  EXPECT_THAT(Parse({"--model-repository=/m", "--model-memory-budget=2G",
                     "--model-min-residency=-1"})
                  .status()
                  .message(),
              HasSubstr("--model-min-residency expects a number of seconds"));
}

TEST(OptionsTest, CeleryFlags) {
  absl::StatusOr<ParsedFlags> flags =
      Parse({"--model-repository=/m", "--celery-broker=redis://cache:6379/2",
             "--celery-queue=ml", "--celery-result-backend=rpc://",
             "--celery-result-expires=600", "--celery-track-started=true",
             "--celery-default-queue=python", "--celery-prefetch=16"});
  ASSERT_TRUE(flags.ok()) << flags.status();
  const ServerOptions& o = flags->options;
  EXPECT_EQ(o.celery_broker, "redis://cache:6379/2");
  EXPECT_EQ(o.celery_queue, "ml");
  EXPECT_EQ(o.celery_result_backend, "rpc://");
  EXPECT_EQ(o.celery_result_expires_s, 600);
  EXPECT_TRUE(o.celery_track_started);
  EXPECT_EQ(o.celery_default_queue, "python");
  EXPECT_EQ(o.celery_prefetch, 16);
  const ServerOptions defaults;
  EXPECT_EQ(defaults.celery_queue, "modeld");
  EXPECT_FALSE(defaults.celery_track_started);
}

TEST(OptionsTest, CeleryFlagErrors) {
  EXPECT_THAT(Parse({"--model-repository=/m", "--celery-broker=sqs://q"}).status().message(),
              HasSubstr("--celery-broker expects amqp://, amqps:// or redis://"));
  EXPECT_THAT(Parse({"--model-repository=/m", "--celery-queue=ml"}).status().message(),
              HasSubstr("--celery-queue needs --celery-broker"));
  EXPECT_THAT(Parse({"--model-repository=/m", "--celery-broker=redis://h",
                     "--celery-result-backend=db+sqlite:///r.db"})
                  .status()
                  .message(),
              HasSubstr("--celery-result-backend expects redis://host:port/db or rpc://"));
  EXPECT_THAT(Parse({"--model-repository=/m", "--celery-broker=redis://h",
                     "--celery-track-started=yes"})
                  .status()
                  .message(),
              HasSubstr("expects true or false"));
  EXPECT_THAT(Parse({"--model-repository=/m", "--celery-broker=amqp://h",
                     "--celery-tls-ca=/ca.pem"})
                  .status()
                  .message(),
              HasSubstr("--celery-tls-ca needs an amqps://"));
}

TEST(OptionsTest, AmqpFlagErrors) {
  EXPECT_THAT(Parse({"--model-repository=/m", "--amqp-url=rabbit:5672"}).status().message(),
              HasSubstr("--amqp-url expects amqp://"));
  EXPECT_THAT(Parse({"--model-repository=/m", "--amqp-queue=jobs"}).status().message(),
              HasSubstr("--amqp-queue needs --amqp-url"));
  EXPECT_THAT(Parse({"--model-repository=/m", "--amqp-url=amqp://h", "--amqp-queue-type=stream"})
                  .status()
                  .message(),
              HasSubstr("--amqp-queue-type expects classic or quorum"));
  EXPECT_THAT(Parse({"--model-repository=/m", "--amqp-url=amqp://h", "--amqp-max-priority=256"})
                  .status()
                  .message(),
              HasSubstr("--amqp-max-priority expects 0 to 255"));
}

TEST(OptionsTest, RedisFlagErrors) {
  EXPECT_THAT(Parse({"--model-repository=/m", "--redis-url=localhost:6379"}).status().message(),
              HasSubstr("--redis-url expects redis://"));
  EXPECT_THAT(Parse({"--model-repository=/m", "--redis-stream=jobs"}).status().message(),
              HasSubstr("--redis-stream needs --redis-url"));
  EXPECT_THAT(
      Parse({"--model-repository=/m", "--redis-url=redis://h", "--redis-list=q", "--redis-group=g"})
          .status()
          .message(),
      HasSubstr("--redis-group is for streams mode"));
  EXPECT_THAT(Parse({"--model-repository=/m", "--redis-url=redis://h", "--redis-stream="})
                  .status()
                  .message(),
              HasSubstr("--redis-stream needs a non-empty value"));
  EXPECT_THAT(Parse({"--model-repository=/m", "--redis-url=redis://h", "--redis-max-deliveries=0"})
                  .status()
                  .message(),
              HasSubstr("--redis-max-deliveries expects a positive integer"));
}

TEST(OptionsTest, HelpListsRedisFlags) {
  const std::string help = FlagsHelp();
  for (const char* flag :
       {"--redis-url", "--redis-stream", "--redis-group", "--redis-list", "--redis-consumer",
        "--redis-read-count", "--redis-max-in-flight", "--redis-visibility-timeout-ms",
        "--redis-max-deliveries", "--redis-reply-ttl-ms", "--redis-dead-letter-maxlen"}) {
    EXPECT_THAT(help, HasSubstr(flag));
  }
  EXPECT_THAT(help, HasSubstr("(default: modeld:requests)"));
}

}  // namespace
}  // namespace modeld::service
