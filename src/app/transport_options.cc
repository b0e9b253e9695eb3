#include "app/transport_options.h"

#include <algorithm>
#include <cstdint>
#include <limits>

namespace modeld::app {
namespace {

// A flag's int64 value as an int, capped at `cap` (the flags are validated as positive).
int CappedInt(int64_t value, int64_t cap = std::numeric_limits<int>::max()) {
  return static_cast<int>(std::min<int64_t>(value, cap));
}

}  // namespace

transport::http::HttpServerOptions HttpOptionsFrom(const service::ServerOptions& options) {
  transport::http::HttpServerOptions http;
  http.address = options.http_address;
  http.threads = CappedInt(options.http_threads, 256);
  http.max_body_bytes = options.http_max_body_bytes;
  http.header_timeout = absl::Seconds(options.http_header_timeout_seconds);
  http.idle_timeout = absl::Seconds(options.http_idle_timeout_seconds);
  http.max_connections = options.http_max_connections;
  // Liveness and readiness probes get through a connection flood (docs/operations.md).
  http.is_probe = transport::http::IsHealthPath;
  http.is_inference = transport::http::IsInferenceCall;
  http.max_header_bytes = static_cast<uint32_t>(
      std::min<int64_t>(options.http_max_header_bytes, std::numeric_limits<uint32_t>::max()));
  return http;
}

transport::http::RouterOptions RouterOptionsFrom(const service::ServerOptions& options) {
  transport::http::RouterOptions routes;
  routes.health_open = options.auth_health == "open";
  routes.max_json_depth = CappedInt(options.http_max_json_depth);
  return routes;
}

transport::redis::RedisTransportOptions RedisOptionsFrom(const service::ServerOptions& options) {
  transport::redis::RedisTransportOptions redis;
  redis.url = options.redis_url;
  redis.stream = options.redis_stream;
  redis.group = options.redis_group;
  redis.list = options.redis_list;
  redis.consumer = options.redis_consumer;
  redis.read_count = CappedInt(options.redis_read_count, 1 << 20);
  redis.max_in_flight = CappedInt(options.redis_max_in_flight, 1 << 20);
  redis.visibility_timeout = absl::Milliseconds(options.redis_visibility_timeout_ms);
  redis.max_deliveries = options.redis_max_deliveries;
  redis.reply_ttl = absl::Milliseconds(options.redis_reply_ttl_ms);
  redis.dead_letter_maxlen = options.redis_dead_letter_maxlen;
  return redis;
}

transport::amqp::AmqpTransportOptions AmqpOptionsFrom(const service::ServerOptions& options) {
  transport::amqp::AmqpTransportOptions amqp;
  amqp.url = options.amqp_url;
  amqp.tls_ca_file = options.amqp_tls_ca;
  amqp.queue = options.amqp_queue;
  amqp.quorum = options.amqp_queue_type == "quorum";
  amqp.max_priority = static_cast<int>(options.amqp_max_priority);
  amqp.prefetch = static_cast<int>(options.amqp_prefetch);
  amqp.max_deliveries = options.amqp_max_deliveries;
  return amqp;
}

transport::celery::CeleryTransportOptions CeleryOptionsFrom(const service::ServerOptions& options) {
  transport::celery::CeleryTransportOptions celery;
  celery.broker = options.celery_broker;
  celery.tls_ca_file = options.celery_tls_ca;
  celery.queue = options.celery_queue;
  celery.result_backend = options.celery_result_backend;
  celery.result_expiry = absl::Seconds(options.celery_result_expires_s);
  celery.track_started = options.celery_track_started;
  celery.default_queue = options.celery_default_queue;
  celery.prefetch = static_cast<int>(options.celery_prefetch);
  return celery;
}

}  // namespace modeld::app
