#include "transport/redis/redis_transport.h"

#include <unistd.h>

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "transport/redis/hiredis_connection.h"
#include "transport/redis/list_queue.h"
#include "transport/redis/redis_url.h"
#include "transport/redis/stream_queue.h"

namespace modeld::transport::redis {
namespace {

std::string DefaultConsumer() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
    return absl::StrCat("modeld:", getpid());
  }
  return absl::StrCat(host, ":", getpid());
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisWorker>> MakeRedisWorker(const RedisTransportOptions& options,
                                                             service::InferenceService& service,
                                                             const common::Clock& clock,
                                                             metrics::Registry* registry) {
  absl::StatusOr<RedisEndpoint> endpoint = ParseRedisUrl(options.url);
  if (!endpoint.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--redis-url: ", endpoint.status().message()));
  }
  QueueOptions queue;
  queue.consumer = options.consumer.empty() ? DefaultConsumer() : options.consumer;
  queue.visibility_timeout = options.visibility_timeout;
  queue.reply_ttl = options.reply_ttl;
  queue.dead_letter_maxlen = options.dead_letter_maxlen;
  queue.forget_idle_consumers = std::max(absl::Minutes(10), 10 * queue.visibility_timeout);

  RedisWorkerOptions worker;
  worker.where = endpoint->ToString();
  worker.read_count = options.read_count;
  worker.max_in_flight = options.max_in_flight;
  worker.admission = options.admission;
  worker.max_deliveries = options.max_deliveries;
  // Twice per visibility timeout, so an abandoned entry waits at most 1.5 timeouts; at most
  // every 5 s, as each pass costs a few commands.
  worker.recover_interval =
      std::clamp(queue.visibility_timeout / 2, absl::Milliseconds(10), absl::Seconds(5));

  std::unique_ptr<WorkQueue> work_queue;
  if (!options.list.empty()) {
    work_queue = std::make_unique<ListQueue>(options.list, std::move(queue));
  } else {
    work_queue = std::make_unique<StreamQueue>(options.stream, options.group, std::move(queue));
  }
  HiredisOptions hiredis;
  // Blocking reads wait up to worker.block (1 s); a reply slower than this means a dead link.
  hiredis.command_timeout = absl::Seconds(10);
  RedisConnector connector = [endpoint = *endpoint, hiredis](absl::string_view role) {
    return ConnectHiredis(endpoint, hiredis, role);
  };
  return std::make_unique<RedisWorker>(std::move(worker), std::move(work_queue),
                                       std::move(connector), service, clock, registry);
}

}  // namespace modeld::transport::redis
