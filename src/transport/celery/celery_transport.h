// The Celery transport as the server wires it: a CeleryWorker over the broker its URL names
// (RabbitMQ through rabbitmq-c, or Redis in kombu's layout) and the result backend its URL
// names (Redis, or rpc:// through the broker). app/ maps the --celery-* flags onto
// CeleryTransportOptions.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "metrics/registry.h"
#include "service/admission.h"
#include "service/inference_service.h"
#include "transport/celery/celery_worker.h"

namespace modeld::transport::celery {

struct CeleryTransportOptions {
  std::string broker;          // amqp://, amqps:// or redis://; required
  std::string tls_ca_file;     // amqps://: the CA of the broker's certificate; "": the system's
  std::string queue = "modeld";
  std::string result_backend;  // redis://, rpc:// or "" (results not stored)
  absl::Duration result_expiry = absl::Hours(24);
  bool track_started = false;
  std::string default_queue = "celery";
  int prefetch = 64;
  service::Admission* admission = nullptr;  // may be null
};

// The worker for `options`, not started. INVALID_ARGUMENT, naming the flag, for a malformed
// broker or backend URL.
absl::StatusOr<std::unique_ptr<CeleryWorker>> MakeCeleryWorker(
    const CeleryTransportOptions& options, service::InferenceService& service,
    const common::Clock& clock, metrics::Registry* registry);

}  // namespace modeld::transport::celery
