#include "service/options.h"

#include <functional>
#include <optional>
#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/byte_size.h"

namespace modeld::service {
namespace {

struct Flag {
  absl::string_view name;
  absl::string_view value_name;
  absl::string_view help;
  std::function<absl::Status(ServerOptions&, absl::string_view)> set;
  std::function<std::string(const ServerOptions&)> show;
};

absl::Status ParsePositive(absl::string_view flag, absl::string_view text, int64_t* out) {
  if (!absl::SimpleAtoi(text, out) || *out <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " expects a positive integer, got '", text, "'"));
  }
  return absl::OkStatus();
}

absl::Status ParseNonEmpty(absl::string_view flag, absl::string_view text, std::string* out) {
  if (text.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " needs a non-empty value"));
  }
  *out = std::string(text);
  return absl::OkStatus();
}

const std::vector<Flag>& Flags() {
  static const auto* flags = new std::vector<Flag>{
      {"model-repository", "PATH",
       "Folder with one sub-folder per model: numeric version folders (<model>/1/...) and a "
       "<model>/config.pbtxt, which ONNX models, SavedModels and .pt2 packages may leave out.",
       [](ServerOptions& o, absl::string_view v) {
         o.model_repository = std::string(v);
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return o.model_repository; }},
      {"grpc-address", "HOST:PORT",
       "Where to serve gRPC (KServe V2). Port 0 picks a free port and logs it.",
       [](ServerOptions& o, absl::string_view v) {
         o.grpc_address = std::string(v);
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return o.grpc_address; }},
      {"tfserving-grpc-address", "HOST:PORT",
       "Also serve TensorFlow Serving's gRPC API (PredictionService, ModelService) alone here, "
       "as on port 8500 (it is on --grpc-address too); empty: off.",
       [](ServerOptions& o, absl::string_view v) {
         o.tfserving_grpc_address = std::string(v);
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return o.tfserving_grpc_address; }},
      {"grpc-max-message-bytes", "N",
       "Largest gRPC message received or sent; larger requests get RESOURCE_EXHAUSTED.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("grpc-max-message-bytes", v, &o.grpc_max_message_bytes);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.grpc_max_message_bytes); }},
      {"grpc-receive-timeout-seconds", "N",
       "How long a gRPC inference call may take to deliver its whole request message; then it "
       "gets DEADLINE_EXCEEDED.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("grpc-receive-timeout-seconds", v, &o.grpc_receive_timeout_seconds);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.grpc_receive_timeout_seconds); }},
      {"max-inflight-requests", "N|auto",
       "Most inference calls at work at once (gRPC ModelInfer, REST infer and predict, Redis "
       "entries taken); one more gets RESOURCE_EXHAUSTED (HTTP 429) at once, before its payload "
       "is parsed. auto: what the served models run and queue at once (instances x max batch "
       "size, plus each queue's max_queue_size or as much again), at least 128. 0: no limit.",
       [](ServerOptions& o, absl::string_view v) {
         if (v == "auto") {
           o.max_inflight_requests = kAutoInflightLimit;
           return absl::OkStatus();
         }
         if (!absl::SimpleAtoi(v, &o.max_inflight_requests) || o.max_inflight_requests < 0) {
           return absl::InvalidArgumentError(absl::StrCat(
               "--max-inflight-requests expects 'auto' or a non-negative integer, got '", v,
               "'"));
         }
         return absl::OkStatus();
       },
       [](const ServerOptions& o) {
         return o.max_inflight_requests == kAutoInflightLimit
                    ? std::string("auto")
                    : absl::StrCat(o.max_inflight_requests);
       }},
      {"grpc-max-concurrent-streams", "N",
       "Most calls open at once on one gRPC connection; a client waits for one to end before "
       "opening more.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("grpc-max-concurrent-streams", v, &o.grpc_max_concurrent_streams);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.grpc_max_concurrent_streams); }},
      {"grpc-max-connections", "N",
       "Most gRPC connections open at once on each gRPC port; one more is closed at once (its "
       "calls fail UNAVAILABLE) and counted in modeld_connections_rejected_total. 0: no limit.",
       [](ServerOptions& o, absl::string_view v) {
         if (!absl::SimpleAtoi(v, &o.grpc_max_connections) || o.grpc_max_connections < 0) {
           return absl::InvalidArgumentError(absl::StrCat(
               "--grpc-max-connections expects a non-negative integer, got '", v, "'"));
         }
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return absl::StrCat(o.grpc_max_connections); }},
      {"model-thread-nice", "N",
       "How much nicer (0..19) than the gRPC, HTTP and Redis threads the threads that run models "
       "are, so that a request arriving while every core computes is read, admitted or refused "
       "at once. 0: the same priority.",
       [](ServerOptions& o, absl::string_view v) {
         if (!absl::SimpleAtoi(v, &o.model_thread_nice) || o.model_thread_nice < 0 ||
             o.model_thread_nice > 19) {
           return absl::InvalidArgumentError(absl::StrCat(
               "--model-thread-nice expects an integer from 0 to 19, got '", v, "'"));
         }
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return absl::StrCat(o.model_thread_nice); }},
      {"grpc-memory-quota-bytes", "N",
       "gRPC's memory quota: what each gRPC server may buffer before it shrinks flow-control "
       "windows and cancels calls. 0: none.",
       [](ServerOptions& o, absl::string_view v) {
         if (!absl::SimpleAtoi(v, &o.grpc_memory_quota_bytes) || o.grpc_memory_quota_bytes < 0) {
           return absl::InvalidArgumentError(absl::StrCat(
               "--grpc-memory-quota-bytes expects a non-negative integer, got '", v, "'"));
         }
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return absl::StrCat(o.grpc_memory_quota_bytes); }},
      {"http-address", "HOST:PORT",
       "Where to serve HTTP (KServe V2 REST, TensorFlow Serving REST, /metrics). Port 0 picks a "
       "free port and logs it.",
       [](ServerOptions& o, absl::string_view v) {
         o.http_address = std::string(v);
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return o.http_address; }},
      {"http-threads", "N", "I/O threads serving HTTP connections.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("http-threads", v, &o.http_threads);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.http_threads); }},
      {"http-max-body-bytes", "N", "Largest HTTP request body; larger requests get 413.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("http-max-body-bytes", v, &o.http_max_body_bytes);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.http_max_body_bytes); }},
      {"http-header-timeout-seconds", "N",
       "How long an HTTP client may take to send a request's headers, from its first byte.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("http-header-timeout-seconds", v, &o.http_header_timeout_seconds);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.http_header_timeout_seconds); }},
      {"http-idle-timeout-seconds", "N",
       "How long an HTTP connection may stay silent (between requests, mid-body, mid-write) "
       "before it is closed.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("http-idle-timeout-seconds", v, &o.http_idle_timeout_seconds);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.http_idle_timeout_seconds); }},
      {"http-max-connections", "N",
       "Most HTTP connections open at once; one more is answered 503 and closed (up to 8 "
       "more may each carry one health probe).",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("http-max-connections", v, &o.http_max_connections);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.http_max_connections); }},
      {"http-max-header-bytes", "N",
       "Largest HTTP request line and headers together; larger requests get 431.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("http-max-header-bytes", v, &o.http_max_header_bytes);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.http_max_header_bytes); }},
      {"http-max-json-depth", "N",
       "Deepest nesting of arrays and objects in an HTTP JSON body; deeper bodies get 400.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("http-max-json-depth", v, &o.http_max_json_depth);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.http_max_json_depth); }},
      {"max-request-elements", "N",
       "Most tensor elements one inference request may hold over all its inputs (every "
       "transport); larger requests get INVALID_ARGUMENT / 400. 0: no limit.",
       [](ServerOptions& o, absl::string_view v) {
         if (!absl::SimpleAtoi(v, &o.max_request_elements) || o.max_request_elements < 0) {
           return absl::InvalidArgumentError(absl::StrCat(
               "--max-request-elements expects a whole number (0: no limit), got '", v, "'"));
         }
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return absl::StrCat(o.max_request_elements); }},
      {"grpc-tls-cert", "PEM",
       "Serve gRPC (both gRPC ports) over TLS with this certificate chain; needs "
       "--grpc-tls-key.",
       [](ServerOptions& o, absl::string_view v) {
         return ParseNonEmpty("grpc-tls-cert", v, &o.grpc_tls_cert);
       },
       [](const ServerOptions& o) { return o.grpc_tls_cert; }},
      {"grpc-tls-key", "PEM", "The private key of --grpc-tls-cert (unencrypted PEM).",
       [](ServerOptions& o, absl::string_view v) {
         return ParseNonEmpty("grpc-tls-key", v, &o.grpc_tls_key);
       },
       [](const ServerOptions& o) { return o.grpc_tls_key; }},
      {"grpc-tls-client-ca", "PEM",
       "Require gRPC clients to present a certificate signed by one of these CAs (mTLS).",
       [](ServerOptions& o, absl::string_view v) {
         return ParseNonEmpty("grpc-tls-client-ca", v, &o.grpc_tls_client_ca);
       },
       [](const ServerOptions& o) { return o.grpc_tls_client_ca; }},
      {"http-tls-cert", "PEM",
       "Serve HTTPS instead of HTTP with this certificate chain; needs --http-tls-key.",
       [](ServerOptions& o, absl::string_view v) {
         return ParseNonEmpty("http-tls-cert", v, &o.http_tls_cert);
       },
       [](const ServerOptions& o) { return o.http_tls_cert; }},
      {"http-tls-key", "PEM", "The private key of --http-tls-cert (unencrypted PEM).",
       [](ServerOptions& o, absl::string_view v) {
         return ParseNonEmpty("http-tls-key", v, &o.http_tls_key);
       },
       [](const ServerOptions& o) { return o.http_tls_key; }},
      {"http-tls-client-ca", "PEM",
       "Require HTTPS clients to present a certificate signed by one of these CAs (mTLS).",
       [](ServerOptions& o, absl::string_view v) {
         return ParseNonEmpty("http-tls-client-ca", v, &o.http_tls_client_ca);
       },
       [](const ServerOptions& o) { return o.http_tls_client_ca; }},
      {"auth-token-file", "PATH",
       "Bearer tokens, one per line ('#' starts a comment), re-read on SIGHUP: every gRPC "
       "call and HTTP request needs 'authorization: Bearer <token>' (see --auth-health).",
       [](ServerOptions& o, absl::string_view v) {
         return ParseNonEmpty("auth-token-file", v, &o.auth_token_file);
       },
       [](const ServerOptions& o) { return o.auth_token_file; }},
      {"auth-health", "MODE",
       "With --auth-token-file: open (health calls and /metrics need no token) or token "
       "(they need one too).",
       [](ServerOptions& o, absl::string_view v) {
         if (v != "open" && v != "token") {
           return absl::InvalidArgumentError(
               absl::StrCat("--auth-health expects open or token, got '", v, "'"));
         }
         o.auth_health = std::string(v);
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return o.auth_health; }},
      {"drain-timeout-seconds", "N",
       "On SIGTERM/SIGINT, how long in-flight requests may take before they are cancelled.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("drain-timeout-seconds", v, &o.drain_timeout_seconds);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.drain_timeout_seconds); }},
      {"model-control-mode", "MODE",
       "none: load the repository once at start; poll: rescan it every "
       "--repository-poll-secs (and on SIGHUP) and load, reload or unload what changed; "
       "explicit: load and unload through the repository API (index, load, unload).",
       [](ServerOptions& o, absl::string_view v) {
         if (v != "none" && v != "poll" && v != "explicit") {
           return absl::InvalidArgumentError(
               absl::StrCat("--model-control-mode expects none, poll or explicit, got '", v, "'"));
         }
         o.model_control_mode = std::string(v);
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return o.model_control_mode; }},
      {"repository-poll-secs", "N", "With --model-control-mode=poll: seconds between rescans.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("repository-poll-secs", v, &o.repository_poll_secs);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.repository_poll_secs); }},
      {"idle-trim-ms", "N",
       "Once no request has run for N ms after a burst, hand the memory it freed back to the "
       "system, so RSS falls back. 0: never.",
       [](ServerOptions& o, absl::string_view v) {
         if (!absl::SimpleAtoi(v, &o.idle_trim_ms) || o.idle_trim_ms < 0) {
           return absl::InvalidArgumentError(absl::StrCat(
               "--idle-trim-ms expects a whole number of milliseconds (0: never), got '", v, "'"));
         }
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return absl::StrCat(o.idle_trim_ms); }},
      {"watchdog-seconds", "N",
       "A model instance inside one run for longer than this is stuck: the model and the "
       "server report not ready and not live (a supervised server exits to be restarted). "
       "0: off.",
       [](ServerOptions& o, absl::string_view v) {
         if (!absl::SimpleAtoi(v, &o.watchdog_seconds) || o.watchdog_seconds < 0) {
           return absl::InvalidArgumentError(absl::StrCat(
               "--watchdog-seconds expects a whole number of seconds (0: off), got '", v, "'"));
         }
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return absl::StrCat(o.watchdog_seconds); }},
      {"checkpoint-dir", "DIR",
       "Where models with training on keep their checkpoints, one folder per model; empty: "
       "a checkpoints folder inside each model's folder.",
       [](ServerOptions& o, absl::string_view v) {
         o.checkpoint_dir = std::string(v);
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return o.checkpoint_dir; }},
      {"model-memory-budget", "SIZE",
       "More models than memory: the models loaded at once may use this much (2G, 512M, "
       "1.5GiB; measured at each load). Models load at start while they fit and otherwise on "
       "their first request; the least recently used are unloaded to make room. Empty: every "
       "model loads at start.",
       [](ServerOptions& o, absl::string_view v) {
         absl::StatusOr<int64_t> bytes = common::ParseByteSize(v);
         if (!bytes.ok()) {
           return absl::InvalidArgumentError(
               absl::StrCat("--model-memory-budget: ", bytes.status().message()));
         }
         o.model_memory_budget_bytes = *bytes;
         return absl::OkStatus();
       },
       [](const ServerOptions& o) {
         return o.model_memory_budget_bytes > 0 ? common::FormatBytes(o.model_memory_budget_bytes)
                                                : std::string();
       }},
      {"preload-models", "BOOL",
       "With --model-memory-budget: true loads at start the models that fit; false loads "
       "every model on its first request.",
       [](ServerOptions& o, absl::string_view v) {
         if (v != "true" && v != "false") {
           return absl::InvalidArgumentError(
               absl::StrCat("--preload-models expects true or false, got '", v, "'"));
         }
         o.model_preload = v == "true";
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return o.model_preload ? "true" : "false"; }},
      {"model-load-timeout", "SECONDS",
       "With --model-memory-budget: the longest a request waits for its model to load on "
       "demand (its own deadline may be shorter); the load itself goes on.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("model-load-timeout", v, &o.model_load_timeout_s);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.model_load_timeout_s); }},
      {"model-min-residency", "SECONDS",
       "With --model-memory-budget: a model loaded less than this ago is never evicted, so "
       "two models that take turns do not unload each other on every request.",
       [](ServerOptions& o, absl::string_view v) {
         if (!absl::SimpleAtoi(v, &o.model_min_residency_s) || o.model_min_residency_s < 0) {
           return absl::InvalidArgumentError(absl::StrCat(
               "--model-min-residency expects a number of seconds (0 or more), got '", v, "'"));
         }
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return absl::StrCat(o.model_min_residency_s); }},
      {"log-level", "LEVEL", "trace, debug, info, warn, error, critical or off.",
       [](ServerOptions& o, absl::string_view v) {
         o.log_level = std::string(v);
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return o.log_level; }},
      {"tensorflow-library", "PATH",
       "The libtensorflow_cc.so.2 opened for the first TensorFlow model; empty: the copy "
       "installed beside modeld (<prefix>/lib/modeld), else the one found when modeld was "
       "built (the tensorflow-cpu wheel in .venv).",
       [](ServerOptions& o, absl::string_view v) {
         o.tensorflow_library = std::string(v);
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return o.tensorflow_library; }},
      {"onnxruntime-library", "PATH",
       "The libonnxruntime.so opened for the first ONNX model; empty: the copy installed "
       "beside modeld (<prefix>/lib/modeld), else the one found when modeld was built (the "
       "onnxruntime wheel in .venv).",
       [](ServerOptions& o, absl::string_view v) {
         o.onnxruntime_library = std::string(v);
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return o.onnxruntime_library; }},
      {"redis-url", "URL",
       "Turns the Redis queue worker on: redis://[[user]:password@]host[:port][/db] "
       "(docs/redis.md).",
       [](ServerOptions& o, absl::string_view v) {
         if (!absl::StartsWith(v, "redis://")) {
           return absl::InvalidArgumentError(absl::StrCat(
               "--redis-url expects redis://[[user]:password@]host[:port][/db], got '", v, "'"));
         }
         o.redis_url = std::string(v);
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return o.redis_url; }},
      {"redis-stream", "KEY",
       "Streams mode: the stream producers XADD requests to (field 'envelope').",
       [](ServerOptions& o, absl::string_view v) {
         return ParseNonEmpty("redis-stream", v, &o.redis_stream);
       },
       [](const ServerOptions& o) { return o.redis_stream; }},
      {"redis-group", "NAME",
       "Streams mode: the consumer group the modeld processes sharing the stream join "
       "(created at id 0 when missing).",
       [](ServerOptions& o, absl::string_view v) {
         return ParseNonEmpty("redis-group", v, &o.redis_group);
       },
       [](const ServerOptions& o) { return o.redis_group; }},
      {"redis-list", "KEY", "List mode instead of streams: the list producers LPUSH requests onto.",
       [](ServerOptions& o, absl::string_view v) {
         return ParseNonEmpty("redis-list", v, &o.redis_list);
       },
       [](const ServerOptions& o) { return o.redis_list; }},
      {"redis-consumer", "NAME",
       "This worker's consumer name, unique among the processes sharing the queue "
       "(default: <hostname>:<pid>).",
       [](ServerOptions& o, absl::string_view v) {
         return ParseNonEmpty("redis-consumer", v, &o.redis_consumer);
       },
       [](const ServerOptions& o) { return o.redis_consumer; }},
      {"redis-read-count", "N", "Most entries taken from Redis by one read.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("redis-read-count", v, &o.redis_read_count);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.redis_read_count); }},
      {"redis-max-in-flight", "N",
       "Most entries held (taken from Redis, not yet answered) at once.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("redis-max-in-flight", v, &o.redis_max_in_flight);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.redis_max_in_flight); }},
      {"redis-visibility-timeout-ms", "MS",
       "An entry taken and not finished after this long is taken over by another consumer "
       "(a list consumer's heartbeat lives this long). Keep it above the longest request.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("redis-visibility-timeout-ms", v, &o.redis_visibility_timeout_ms);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.redis_visibility_timeout_ms); }},
      {"redis-max-deliveries", "N",
       "An entry delivered more times than this is moved to the dead letters "
       "(<queue>:dead) and answered ABORTED.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("redis-max-deliveries", v, &o.redis_max_deliveries);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.redis_max_deliveries); }},
      {"redis-reply-ttl-ms", "MS", "Expiry of a reply key once modeld has pushed a reply.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("redis-reply-ttl-ms", v, &o.redis_reply_ttl_ms);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.redis_reply_ttl_ms); }},
      {"redis-dead-letter-maxlen", "N",
       "The dead-letter stream is trimmed to about this many entries (MAXLEN ~).",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("redis-dead-letter-maxlen", v, &o.redis_dead_letter_maxlen);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.redis_dead_letter_maxlen); }},
      {"amqp-url", "URL",
       "Turns the AMQP (RabbitMQ) queue worker on: amqp://user:password@host:port/vhost, or "
       "amqps:// for TLS (docs/amqp.md).",
       [](ServerOptions& o, absl::string_view v) {
         if (!absl::StartsWith(v, "amqp://") && !absl::StartsWith(v, "amqps://")) {
           return absl::InvalidArgumentError(
               "--amqp-url expects amqp://user:password@host:port/vhost or amqps://...");
         }
         o.amqp_url = std::string(v);
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return o.amqp_url; }},
      {"amqp-tls-ca", "PATH",
       "With an amqps:// --amqp-url: the CA certificate(s) that signed the broker's (PEM); "
       "empty: the system's.",
       [](ServerOptions& o, absl::string_view v) {
         return ParseNonEmpty("amqp-tls-ca", v, &o.amqp_tls_ca);
       },
       [](const ServerOptions& o) { return o.amqp_tls_ca; }},
      {"amqp-queue", "NAME",
       "The durable queue producers publish requests to; modeld declares it, and "
       "<queue>.dead-letters for what it rejects.",
       [](ServerOptions& o, absl::string_view v) {
         return ParseNonEmpty("amqp-queue", v, &o.amqp_queue);
       },
       [](const ServerOptions& o) { return o.amqp_queue; }},
      {"amqp-queue-type", "TYPE",
       "classic or quorum: the kind of queue modeld declares (quorum queues count deliveries "
       "themselves and have no priorities).",
       [](ServerOptions& o, absl::string_view v) {
         if (v != "classic" && v != "quorum") {
           return absl::InvalidArgumentError(
               absl::StrCat("--amqp-queue-type expects classic or quorum, got '", v, "'"));
         }
         o.amqp_queue_type = std::string(v);
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return o.amqp_queue_type; }},
      {"amqp-max-priority", "N",
       "Declare the (classic) queue with x-max-priority N, so messages with a higher priority "
       "are delivered first; 0: no priorities. Must match an existing queue's.",
       [](ServerOptions& o, absl::string_view v) {
         if (!absl::SimpleAtoi(v, &o.amqp_max_priority) || o.amqp_max_priority < 0 ||
             o.amqp_max_priority > 255) {
           return absl::InvalidArgumentError(
               absl::StrCat("--amqp-max-priority expects 0 to 255, got '", v, "'"));
         }
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return absl::StrCat(o.amqp_max_priority); }},
      {"amqp-prefetch", "N",
       "Most unacknowledged messages held at once (basic.qos); fewer while the process-wide "
       "--max-inflight-requests cap has fewer free.",
       [](ServerOptions& o, absl::string_view v) {
         if (absl::Status status = ParsePositive("amqp-prefetch", v, &o.amqp_prefetch);
             !status.ok()) {
           return status;
         }
         if (o.amqp_prefetch > 65535) {
           return absl::InvalidArgumentError("--amqp-prefetch is at most 65535");
         }
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return absl::StrCat(o.amqp_prefetch); }},
      {"amqp-max-deliveries", "N",
       "A message delivered more times than this (its consumers stopped before answering) is "
       "rejected into the dead letters and answered ABORTED.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("amqp-max-deliveries", v, &o.amqp_max_deliveries);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.amqp_max_deliveries); }},
      {"celery-broker", "URL",
       "Turns the Celery worker on: modeld consumes Celery tasks (modeld.infer, modeld.predict, "
       "modeld.train) from this broker, amqp://user:password@host:port/vhost, amqps:// or "
       "redis://host:port/db (docs/celery.md).",
       [](ServerOptions& o, absl::string_view v) {
         if (!absl::StartsWith(v, "amqp://") && !absl::StartsWith(v, "amqps://") &&
             !absl::StartsWith(v, "redis://")) {
           return absl::InvalidArgumentError(absl::StrCat(
               "--celery-broker expects amqp://, amqps:// or redis:// (as Celery's "
               "broker_url), got '", v, "'"));
         }
         o.celery_broker = std::string(v);
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return o.celery_broker; }},
      {"celery-tls-ca", "PATH",
       "With an amqps:// --celery-broker: the CA certificate(s) that signed the broker's (PEM); "
       "empty: the system's.",
       [](ServerOptions& o, absl::string_view v) {
         return ParseNonEmpty("celery-tls-ca", v, &o.celery_tls_ca);
       },
       [](const ServerOptions& o) { return o.celery_tls_ca; }},
      {"celery-queue", "NAME",
       "The Celery queue modeld consumes; route modeld's tasks there (task_routes).",
       [](ServerOptions& o, absl::string_view v) {
         return ParseNonEmpty("celery-queue", v, &o.celery_queue);
       },
       [](const ServerOptions& o) { return o.celery_queue; }},
      {"celery-result-backend", "URL",
       "Where results go, as Celery's result_backend: redis://host:port/db or rpc:// (back "
       "through the broker to the caller); empty: results are not stored.",
       [](ServerOptions& o, absl::string_view v) {
         if (!absl::StartsWith(v, "redis://") && v != "rpc://") {
           return absl::InvalidArgumentError(absl::StrCat(
               "--celery-result-backend expects redis://host:port/db or rpc://, got '", v,
               "'"));
         }
         o.celery_result_backend = std::string(v);
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return o.celery_result_backend; }},
      {"celery-result-expires", "SECONDS",
       "Results stored in Redis expire after this long (Celery's result_expires).",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("celery-result-expires", v, &o.celery_result_expires_s);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.celery_result_expires_s); }},
      {"celery-track-started", "BOOL",
       "true: store the STARTED state when a task starts (Celery's task_track_started).",
       [](ServerOptions& o, absl::string_view v) {
         if (v != "true" && v != "false") {
           return absl::InvalidArgumentError(
               absl::StrCat("--celery-track-started expects true or false, got '", v, "'"));
         }
         o.celery_track_started = v == "true";
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return o.celery_track_started ? "true" : "false"; }},
      {"celery-default-queue", "NAME",
       "Where modeld publishes a chain's next step (or a link) whose signature names no queue: "
       "the Python side's task_default_queue.",
       [](ServerOptions& o, absl::string_view v) {
         return ParseNonEmpty("celery-default-queue", v, &o.celery_default_queue);
       },
       [](const ServerOptions& o) { return o.celery_default_queue; }},
      {"celery-prefetch", "N",
       "Most Celery tasks taken at once (tasks waiting for their eta add to it); fewer while "
       "the process-wide --max-inflight-requests cap has fewer free.",
       [](ServerOptions& o, absl::string_view v) {
         if (absl::Status status = ParsePositive("celery-prefetch", v, &o.celery_prefetch);
             !status.ok()) {
           return status;
         }
         if (o.celery_prefetch > 65535) {
           return absl::InvalidArgumentError("--celery-prefetch is at most 65535");
         }
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return absl::StrCat(o.celery_prefetch); }},
  };
  return *flags;
}

const Flag* FindFlag(absl::string_view name) {
  for (const Flag& flag : Flags()) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

// Redis, AMQP and Celery flags that make no sense together or without --redis-url /
// --amqp-url / --celery-broker.
absl::Status CheckRedisFlags(const ServerOptions& options, const std::set<std::string>& given) {
  for (const std::string& name : given) {
    if (absl::StartsWith(name, "redis-") && name != "redis-url" && options.redis_url.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " needs --redis-url (the Redis transport is off without it)"));
    }
  }
  for (const std::string& name : given) {
    if (absl::StartsWith(name, "amqp-") && name != "amqp-url" && options.amqp_url.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " needs --amqp-url (the AMQP transport is off without it)"));
    }
  }
  for (const std::string& name : given) {
    if (absl::StartsWith(name, "celery-") && name != "celery-broker" &&
        options.celery_broker.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", name, " needs --celery-broker (the Celery worker is off without it)"));
    }
  }
  if (!options.celery_tls_ca.empty() && !absl::StartsWith(options.celery_broker, "amqps://")) {
    return absl::InvalidArgumentError("--celery-tls-ca needs an amqps:// --celery-broker");
  }
  for (const char* name : {"preload-models", "model-load-timeout", "model-min-residency"}) {
    if (given.contains(name) && options.model_memory_budget_bytes == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", name, " needs --model-memory-budget (without a budget every model loads at "
          "start)"));
    }
  }
  if (!options.redis_list.empty()) {
    for (const char* name : {"redis-stream", "redis-group"}) {
      if (given.contains(name)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, " is for streams mode; --redis-list selects list mode"));
      }
    }
  }
  return absl::OkStatus();
}

// TLS files come in pairs; a client CA needs a certificate; --auth-health needs tokens.
absl::Status CheckSecurityFlags(const ServerOptions& options, const std::set<std::string>& given) {
  for (const char* transport : {"grpc", "http"}) {
    const std::string cert = absl::StrCat(transport, "-tls-cert");
    const std::string key = absl::StrCat(transport, "-tls-key");
    const std::string ca = absl::StrCat(transport, "-tls-client-ca");
    if (given.contains(cert) != given.contains(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", cert, " and --", key, " go together: give both or neither"));
    }
    if (given.contains(ca) && !given.contains(cert)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", ca, " needs --", cert, " and --", key, " (mTLS runs over TLS)"));
    }
  }
  if (given.contains("auth-health") && options.auth_token_file.empty()) {
    return absl::InvalidArgumentError("--auth-health needs --auth-token-file");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ParsedFlags> ParseFlags(int argc, const char* const* argv) {
  ParsedFlags parsed;
  std::set<std::string> given;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      parsed.help = true;
      return parsed;
    }
    if (!absl::ConsumePrefix(&arg, "--")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument '", arg, "' (flags look like --name=value)"));
    }
    absl::string_view name = arg;
    std::optional<absl::string_view> value;
    if (size_t eq = arg.find('='); eq != absl::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    const Flag* flag = FindFlag(name);
    if (flag == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, " (see modeld --help)"));
    }
    if (!value.has_value()) {
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
      value = argv[++i];
    }
    if (absl::Status status = flag->set(parsed.options, *value); !status.ok()) return status;
    given.insert(std::string(name));
  }
  if (parsed.options.model_repository.empty()) {
    return absl::InvalidArgumentError("--model-repository is required (see modeld --help)");
  }
  if (absl::Status status = CheckRedisFlags(parsed.options, given); !status.ok()) return status;
  if (absl::Status status = CheckSecurityFlags(parsed.options, given); !status.ok()) {
    return status;
  }
  return parsed;
}

std::string FlagsHelp() {
  const ServerOptions defaults;
  std::string text =
      "modeld: keeps models resident (TorchScript, torch.export packages, TensorFlow\n"
      "SavedModels, ONNX) and serves them over gRPC (KServe V2, TensorFlow Serving), HTTP\n"
      "(KServe V2 REST, TensorFlow Serving REST) and Redis (a queue worker).\n\n"
      "Usage: modeld --model-repository=PATH [flags]\n\nFlags:\n";
  for (const Flag& flag : Flags()) {
    absl::StrAppend(&text, "  --", flag.name, "=", flag.value_name, "\n      ", flag.help, "\n");
    if (std::string shown = flag.show(defaults); !shown.empty()) {
      absl::StrAppend(&text, "      (default: ", shown, ")\n");
    }
  }
  absl::StrAppend(&text, "  --help\n      Print this text and exit.\n");
  return text;
}

}  // namespace modeld::service
