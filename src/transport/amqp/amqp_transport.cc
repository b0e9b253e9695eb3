#include "transport/amqp/amqp_transport.h"

#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "transport/amqp/amqp_url.h"
#include "transport/amqp/rabbitmq_link.h"

namespace modeld::transport::amqp {

absl::StatusOr<std::unique_ptr<AmqpWorker>> MakeAmqpWorker(const AmqpTransportOptions& options,
                                                           service::InferenceService& service,
                                                           const common::Clock& clock,
                                                           metrics::Registry* registry) {
  absl::StatusOr<AmqpUrl> url = ParseAmqpUrl(options.url);
  if (!url.ok()) return url.status();
  if (options.quorum && options.max_priority > 0) {
    return absl::InvalidArgumentError(
        "--amqp-max-priority needs a classic queue: RabbitMQ's quorum queues have no "
        "priorities (drop --amqp-queue-type=quorum or --amqp-max-priority)");
  }
  if (!url->tls && !options.tls_ca_file.empty()) {
    return absl::InvalidArgumentError("--amqp-tls-ca needs an amqps:// --amqp-url");
  }
  AmqpWorkerOptions worker;
  worker.topology.queue = options.queue;
  worker.topology.dead_letter_exchange = absl::StrCat(options.queue, ".dead-letters");
  worker.topology.dead_letter_queue = absl::StrCat(options.queue, ".dead-letters");
  worker.topology.quorum = options.quorum;
  worker.topology.max_priority = options.max_priority;
  worker.where = url->Redacted();
  worker.prefetch = options.prefetch;
  worker.max_deliveries = options.max_deliveries;
  worker.admission = options.admission;
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  LinkOptions link;
  link.url = *url;
  link.tls_ca_file = options.tls_ca_file;
  link.connection_name = absl::StrCat("modeld ", host, ":", getpid());
  return std::make_unique<AmqpWorker>(
      std::move(worker), [link] { return MakeRabbitmqLink(link); }, service, clock, registry);
}

}  // namespace modeld::transport::amqp
