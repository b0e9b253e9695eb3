// RabbitmqLink: AmqpLink over rabbitmq-c (Debian librabbitmq-dev), blocking calls on one
// socket; Next() polls the socket and the worker's wake-up descriptor together.
#pragma once

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "transport/amqp/amqp_link.h"
#include "transport/amqp/amqp_url.h"

namespace modeld::transport::amqp {

struct LinkOptions {
  AmqpUrl url;
  std::string tls_ca_file;      // amqps://: the CA that signed the broker's certificate; "": system
  std::string connection_name;  // shown by the broker (rabbitmqctl list_connections name)
  int heartbeat_seconds = 30;
  absl::Duration connect_timeout = absl::Seconds(5);
  absl::Duration call_timeout = absl::Seconds(10);  // each synchronous call's reply
};

std::unique_ptr<AmqpLink> MakeRabbitmqLink(LinkOptions options);

}  // namespace modeld::transport::amqp
