// The Redis transport as the server wires it: a RedisWorker on a StreamQueue or a ListQueue
// over hiredis connections, configured by RedisTransportOptions (app/ maps the --redis-* flags
// onto them).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "metrics/registry.h"
#include "service/inference_service.h"
#include "transport/redis/redis_worker.h"

namespace modeld::transport::redis {

struct RedisTransportOptions {
  // redis://[[user]:password@]host[:port][/db]; required.
  std::string url;
  // Streams mode (the default): the stream producers XADD requests to, and the consumer group
  // the modeld processes sharing it join (created at id 0 with MKSTREAM when missing).
  std::string stream = "modeld:requests";
  std::string group = "modeld";
  // List mode instead of streams when set: the list producers LPUSH requests onto.
  std::string list;
  // This worker's consumer name, unique among the processes sharing the queue; empty:
  // <hostname>:<pid>.
  std::string consumer;
  // Most entries taken by one read, and most held (taken, not yet answered) at once.
  int read_count = 64;
  int max_in_flight = 256;
  // An entry taken by a consumer and not finished after this long is taken over by another.
  absl::Duration visibility_timeout = absl::Seconds(30);
  // An entry delivered more times than this is moved to the dead letters and answered ABORTED.
  int64_t max_deliveries = 3;
  // Expiry of a reply key after modeld pushes a reply onto it.
  absl::Duration reply_ttl = absl::Seconds(60);
  // The dead-letter stream (<stream or list>:dead) is capped at about this many entries.
  int64_t dead_letter_maxlen = 10000;
  // The process-wide cap on work in flight (RedisWorkerOptions::admission); may be null.
  service::Admission* admission = nullptr;
};

// The worker for `options`, not started. INVALID_ARGUMENT, naming --redis-url, for a
// malformed URL.
absl::StatusOr<std::unique_ptr<RedisWorker>> MakeRedisWorker(const RedisTransportOptions& options,
                                                             service::InferenceService& service,
                                                             const common::Clock& clock,
                                                             metrics::Registry* registry);

}  // namespace modeld::transport::redis
