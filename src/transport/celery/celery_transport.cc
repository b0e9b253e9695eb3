#include "transport/celery/celery_transport.h"

#include <unistd.h>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "transport/amqp/amqp_url.h"
#include "transport/amqp/rabbitmq_link.h"
#include "transport/celery/amqp/amqp_celery_broker.h"
#include "transport/celery/redis/redis_celery_broker.h"
#include "transport/celery/redis/redis_result_backend.h"
#include "transport/redis/hiredis_connection.h"
#include "transport/redis/redis_url.h"

namespace modeld::transport::celery {

namespace {

std::string HostName() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return host;
}

// A Redis connector for `url`, or INVALID_ARGUMENT naming `flag`. `where`: "host:port/db".
absl::StatusOr<redis::RedisConnector> RedisConnectorFor(const std::string& url,
                                                        absl::string_view flag,
                                                        std::string* where) {
  absl::StatusOr<redis::RedisEndpoint> endpoint = redis::ParseRedisUrl(url);
  if (!endpoint.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", endpoint.status().message()));
  }
  *where = endpoint->ToString();
  redis::HiredisOptions hiredis;
  // The broker's reader blocks in BRPOP 1 s at a time; a reply slower than this is a dead link.
  hiredis.command_timeout = absl::Seconds(10);
  return redis::RedisConnector(
      [endpoint = *std::move(endpoint), hiredis](absl::string_view role) {
        return redis::ConnectHiredis(endpoint, hiredis, role);
      });
}

}  // namespace

absl::StatusOr<std::unique_ptr<CeleryWorker>> MakeCeleryWorker(
    const CeleryTransportOptions& options, service::InferenceService& service,
    const common::Clock& clock, metrics::Registry* registry) {
  const std::string host = HostName();
  CeleryWorkerOptions worker;
  worker.queue = options.queue;
  worker.prefetch = options.prefetch;
  worker.canvas.default_queue = options.default_queue;
  worker.canvas.origin = absl::StrCat("modeld@", host);
  worker.track_started = options.track_started;
  worker.hostname = absl::StrCat("modeld@", host);
  worker.admission = options.admission;

  BrokerFactory brokers;
  if (absl::StartsWith(options.broker, "redis://")) {
    RedisCeleryBrokerOptions broker;
    ASSIGN_OR_RETURN(broker.connector,
                     RedisConnectorFor(options.broker, "celery-broker", &worker.where));
    worker.where = absl::StrCat("redis://", worker.where);
    broker.where = worker.where;
    brokers = [broker] { return std::make_unique<RedisCeleryBroker>(broker); };
  } else {
    absl::StatusOr<amqp::AmqpUrl> url = amqp::ParseAmqpUrl(options.broker);
    if (!url.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--celery-broker: ", url.status().message()));
    }
    worker.where = url->Redacted();
    amqp::LinkOptions link;
    link.url = *url;
    link.tls_ca_file = options.tls_ca_file;
    link.connection_name = absl::StrCat("modeld celery ", host, ":", getpid());
    AmqpCeleryBrokerOptions broker;
    broker.links = [link] { return amqp::MakeRabbitmqLink(link); };
    brokers = [broker] { return std::make_unique<AmqpCeleryBroker>(broker); };
  }

  std::unique_ptr<ResultBackend> backend;
  if (options.result_backend == "rpc://") {
    backend = std::make_unique<RpcResultBackend>();
  } else if (!options.result_backend.empty()) {
    RedisResultBackendOptions redis;
    ASSIGN_OR_RETURN(redis.connector, RedisConnectorFor(options.result_backend,
                                                        "celery-result-backend", &redis.where));
    redis.expiry = options.result_expiry;
    backend = std::make_unique<RedisResultBackend>(std::move(redis));
  }
  return std::make_unique<CeleryWorker>(std::move(worker), std::move(brokers),
                                        std::move(backend), service, clock, registry);
}

}  // namespace modeld::transport::celery
