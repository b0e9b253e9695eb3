// The flags (service::ServerOptions) mapped onto each transport's own options, so that no
// transport depends on the flags. Security material (TLS, tokens) is added by the caller,
// which owns it.
#pragma once

#include "service/options.h"
#include "transport/http/http_server.h"
#include "transport/http/router.h"
#include "transport/amqp/amqp_transport.h"
#include "transport/celery/celery_transport.h"
#include "transport/redis/redis_transport.h"

namespace modeld::app {

// --http-*: address, threads, limits and timeouts; `tls` is left unset.
transport::http::HttpServerOptions HttpOptionsFrom(const service::ServerOptions& options);
// --auth-health and --http-max-json-depth; `tokens` is left null.
transport::http::RouterOptions RouterOptionsFrom(const service::ServerOptions& options);
// --redis-*.
transport::redis::RedisTransportOptions RedisOptionsFrom(const service::ServerOptions& options);

// --amqp-*.
transport::amqp::AmqpTransportOptions AmqpOptionsFrom(const service::ServerOptions& options);

// --celery-*.
transport::celery::CeleryTransportOptions CeleryOptionsFrom(const service::ServerOptions& options);

}  // namespace modeld::app
