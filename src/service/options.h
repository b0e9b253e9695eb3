// ServerOptions: every setting of the modeld process, filled from command-line flags.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace modeld::service {

// --max-inflight-requests=auto: the limit follows the served models (service/admission.h).
inline constexpr int64_t kAutoInflightLimit = -1;

struct ServerOptions {
  // Folder with one sub-folder per model: <model>/config.pbtxt and <model>/<version>/.
  std::string model_repository;
  // host:port for gRPC (KServe V2). Loopback by default; port 0 picks a free port (logged).
  std::string grpc_address = "127.0.0.1:8001";
  // Largest gRPC message received or sent; a bigger request gets RESOURCE_EXHAUSTED.
  int64_t grpc_max_message_bytes = int64_t{64} << 20;
  // How long a ModelInfer call may take, from its headers, to deliver its whole request
  // message; then it is answered DEADLINE_EXCEEDED and what gRPC buffered is freed.
  int64_t grpc_receive_timeout_seconds = 60;
  // Most calls open at once on one gRPC connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS);
  // a client opens more only as earlier ones end.
  int64_t grpc_max_concurrent_streams = 100;
  // Most gRPC connections open at once on each TCP port; one more is closed at once
  // (transport/grpc_listener.h). 0: no limit.
  int64_t grpc_max_connections = 1024;
  // gRPC's memory quota (its ResourceQuota) for what each gRPC server buffers; 0: none.
  int64_t grpc_memory_quota_bytes = int64_t{1} << 30;
  // How much nicer than the transports' threads the threads that run models are
  // (common/thread_priority.h); 0: the same priority.
  int64_t model_thread_nice = 10;
  // Most inference calls at work at once, checked when a call's message has arrived, before it
  // is parsed; one more is answered RESOURCE_EXHAUSTED, or 429 with Retry-After over HTTP
  // (service/admission.h): gRPC ModelInfer, both REST APIs' inference routes, and the Redis
  // entries taken. 0: no limit; kAutoInflightLimit: derived from the served models.
  int64_t max_inflight_requests = kAutoInflightLimit;
  // host:port for TensorFlow Serving's gRPC services alone (they are on grpc_address too);
  // empty: off. For drop-in set-ups whose clients dial port 8500.
  std::string tfserving_grpc_address;
  // host:port for HTTP/1.1 (KServe V2 REST, TensorFlow Serving REST, /metrics). Loopback by
  // default; port 0 picks a free port (logged).
  std::string http_address = "127.0.0.1:8000";
  // I/O threads serving HTTP connections (they parse, queue and write; models run elsewhere).
  int64_t http_threads = 2;
  // Largest HTTP request body; a bigger request gets 413.
  int64_t http_max_body_bytes = int64_t{64} << 20;
  // How long a client may take to send a request's headers, counted from its first byte.
  int64_t http_header_timeout_seconds = 10;
  // How long an HTTP connection may stay silent: between kept-alive requests, while a body
  // arrives, while a response is written. Then it is closed.
  int64_t http_idle_timeout_seconds = 60;
  // Most HTTP connections open at once; one more is answered 503 and closed.
  int64_t http_max_connections = 1024;
  // Largest HTTP request line plus headers; a bigger request gets 431.
  int64_t http_max_header_bytes = int64_t{64} << 10;
  // Deepest nesting of arrays and objects in an HTTP JSON body; a deeper one gets 400.
  int64_t http_max_json_depth = 64;
  // Most tensor elements one inference request may hold over all its inputs, on every
  // transport; a bigger request gets INVALID_ARGUMENT (400). 0: no limit.
  int64_t max_request_elements = int64_t{16} << 20;

  // TLS (docs/security.md). gRPC, on both gRPC ports: the PEM certificate chain and private
  // key of the server; with a client CA, every client must present a certificate it signed
  // (mTLS). All empty: plaintext.
  std::string grpc_tls_cert;
  std::string grpc_tls_key;
  std::string grpc_tls_client_ca;
  // The same for HTTP (HTTPS).
  std::string http_tls_cert;
  std::string http_tls_key;
  std::string http_tls_client_ca;
  // Bearer tokens, one per line ('#' comments), re-read on SIGHUP: gRPC calls and HTTP
  // requests must carry "authorization: Bearer <token>". Empty: no token needed.
  std::string auth_token_file;
  // With a token file: "open" (health calls and /metrics need no token) or "token" (they do).
  std::string auth_health = "open";

  // After SIGTERM, how long in-flight requests may take to finish before they are cancelled.
  int64_t drain_timeout_seconds = 30;
  // How the repository changes while modeld runs: "none" (loaded once at start), "poll"
  // (rescanned every repository_poll_secs, and on SIGHUP) or "explicit" (the repository
  // extension: index, load, unload over gRPC and HTTP).
  std::string model_control_mode = "none";
  int64_t repository_poll_secs = 15;
  // A model instance inside Run() for longer than this is stuck: its model, and the server,
  // report not ready and not live; a supervised server (MODELD_SUPERVISED=1 in its
  // environment, set by modeld-supervisor) exits so that it is restarted. 0: off.
  int64_t watchdog_seconds = 120;
  // Once no request has run for this long after a burst, the memory it freed is handed back to
  // the system (malloc_trim), so RSS falls back; 0: never.
  int64_t idle_trim_ms = 1000;
  // Where trained models keep their checkpoints (docs/online-learning.md): <dir>/<model>;
  // empty: <model folder>/checkpoints. A model's checkpoint_dir parameter overrides it.
  std::string checkpoint_dir;
  // More models than memory (docs/operations.md, "Memory budget"): with a budget, models load
  // at start while they fit (model_preload) and otherwise on their first request, and the
  // least recently used are unloaded to make room. 0: no budget, every model loads at start.
  int64_t model_memory_budget_bytes = 0;
  bool model_preload = true;
  int64_t model_load_timeout_s = 60;   // the longest a request waits for an on-demand load
  int64_t model_min_residency_s = 0;   // a model loaded less than this ago is never evicted
  // trace, debug, info, warn, error, critical or off.
  std::string log_level = "info";
  // The libtensorflow_cc.so.2 the tensorflow_savedmodel backend opens on first use; empty:
  // the one found when modeld was built (the tensorflow-cpu wheel in .venv).
  std::string tensorflow_library;
  // The libonnxruntime.so opened for the first ONNX model; empty: the one modeld was built with.
  std::string onnxruntime_library;

  // Redis transport (docs/redis.md): a queue worker, off unless redis_url is set.
  // redis://[[user]:password@]host[:port][/db].
  std::string redis_url;
  // Streams mode (the default): the stream producers XADD requests to, and the consumer group
  // the modeld processes sharing it join (created at id 0 with MKSTREAM when missing).
  std::string redis_stream = "modeld:requests";
  std::string redis_group = "modeld";
  // List mode instead of streams when set: the list producers LPUSH requests onto.
  std::string redis_list;
  // This worker's consumer name, unique among the processes sharing the queue; empty:
  // <hostname>:<pid>.
  std::string redis_consumer;
  // Most entries taken by one read, and most held (taken, not yet answered) at once.
  int64_t redis_read_count = 64;
  int64_t redis_max_in_flight = 256;
  // An entry taken by a consumer and not finished after this long is taken over by another
  // (a list consumer counts as gone once its heartbeat is this old). Keep it above the
  // longest time a request may spend queued and running.
  int64_t redis_visibility_timeout_ms = 30000;
  // An entry delivered more times than this is moved to the dead letters and answered ABORTED.
  int64_t redis_max_deliveries = 3;
  // Expiry (PEXPIRE) of a reply key after modeld pushes a reply onto it.
  int64_t redis_reply_ttl_ms = 60000;
  // The dead-letter stream (<stream or list>:dead) is capped at about this many entries.
  int64_t redis_dead_letter_maxlen = 10000;

  // AMQP transport (docs/amqp.md): a RabbitMQ queue worker, off unless amqp_url is set.
  // amqp://user:password@host:port/vhost, or amqps:// for TLS.
  std::string amqp_url;
  // amqps://: the CA certificate(s) that signed the broker's; empty: the system's.
  std::string amqp_tls_ca;
  // The durable request queue (its dead letters go to <queue>.dead-letters).
  std::string amqp_queue = "modeld.requests";
  std::string amqp_queue_type = "classic";  // or quorum
  int64_t amqp_max_priority = 0;            // x-max-priority (classic); 0: no priorities
  int64_t amqp_prefetch = 64;               // most unacknowledged messages held at once
  // A message delivered more times than this is rejected into the dead letters and answered
  // ABORTED.
  int64_t amqp_max_deliveries = 3;

  // Celery transport (docs/celery.md): modeld as a Celery worker, off unless celery_broker is
  // set. amqp://, amqps:// or redis://.
  std::string celery_broker;
  std::string celery_tls_ca;  // amqps://: the CA of the broker's certificate; empty: the system's
  std::string celery_queue = "modeld";
  // redis://... or rpc://; empty: results are not stored (Celery's disabled backend).
  std::string celery_result_backend;
  int64_t celery_result_expires_s = 86400;  // Celery's result_expires (one day)
  bool celery_track_started = false;        // store STARTED before running
  std::string celery_default_queue = "celery";  // a chain step's queue when it names none
  int64_t celery_prefetch = 64;  // most tasks running at once (eta tasks add to it)
};

struct ParsedFlags {
  ServerOptions options;
  bool help = false;  // --help was given: print FlagsHelp() and exit 0
};

// Parses --name=value or --name value. INVALID_ARGUMENT naming an unknown flag, a missing or
// malformed value, or a missing --model-repository.
absl::StatusOr<ParsedFlags> ParseFlags(int argc, const char* const* argv);

// The usage text: every flag with its default and meaning.
std::string FlagsHelp();

}  // namespace modeld::service
