// The Redis transport as the server wires it: a RedisWorker on a StreamQueue or a ListQueue
// over hiredis connections, configured from the --redis-* flags.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "metrics/registry.h"
#include "server/inference_service.h"
#include "server/options.h"
#include "transport/redis/redis_worker.h"

namespace modeld::transport::redis {

// The worker for `options` (redis_url must be set), not started. INVALID_ARGUMENT for a
// malformed URL. The consumer name defaults to <hostname>:<pid>.
absl::StatusOr<std::unique_ptr<RedisWorker>> MakeRedisWorker(const server::ServerOptions& options,
                                                             server::InferenceService& service,
                                                             const common::Clock& clock,
                                                             metrics::Registry* registry);

}  // namespace modeld::transport::redis
