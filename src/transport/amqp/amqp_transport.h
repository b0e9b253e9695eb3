// The AMQP transport as the server wires it: an AmqpWorker over RabbitmqLink connections,
// configured by AmqpTransportOptions (app/ maps the --amqp-* flags onto them).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "metrics/registry.h"
#include "service/admission.h"
#include "service/inference_service.h"
#include "transport/amqp/amqp_worker.h"

namespace modeld::transport::amqp {

struct AmqpTransportOptions {
  std::string url;          // amqp://user:password@host:port/vhost or amqps://; required
  std::string tls_ca_file;  // amqps://: the CA of the broker's certificate; "": the system's
  std::string queue = "modeld.requests";
  bool quorum = false;   // declare a quorum queue instead of a classic one
  int max_priority = 0;  // x-max-priority of a classic queue; 0: no priorities
  int prefetch = 64;
  int64_t max_deliveries = 3;
  service::Admission* admission = nullptr;  // may be null
};

// The worker for `options`, not started. INVALID_ARGUMENT, naming the flag, for a malformed
// URL or priorities on a quorum queue.
absl::StatusOr<std::unique_ptr<AmqpWorker>> MakeAmqpWorker(const AmqpTransportOptions& options,
                                                           service::InferenceService& service,
                                                           const common::Clock& clock,
                                                           metrics::Registry* registry);

}  // namespace modeld::transport::amqp
