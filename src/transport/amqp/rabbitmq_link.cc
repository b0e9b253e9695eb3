#include "transport/amqp/rabbitmq_link.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <poll.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "transport/amqp/amqp_table.h"

namespace modeld::transport::amqp {
namespace {

constexpr amqp_channel_t kChannel = 1;

amqp_bytes_t Bytes(const std::string& text) {
  return amqp_bytes_t{text.size(), const_cast<char*>(text.data())};
}

std::string Text(amqp_bytes_t bytes) {
  return std::string(static_cast<const char*>(bytes.bytes), bytes.len);
}

timeval TimeVal(absl::Duration duration) {
  return absl::ToTimeval(std::max(duration, absl::ZeroDuration()));
}

// An integer header value of any AMQP integer kind, or a decimal string.
std::optional<int64_t> IntegerValue(const amqp_field_value_t& value) {
  switch (value.kind) {
    case AMQP_FIELD_KIND_I8:
      return value.value.i8;
    case AMQP_FIELD_KIND_U8:
      return value.value.u8;
    case AMQP_FIELD_KIND_I16:
      return value.value.i16;
    case AMQP_FIELD_KIND_U16:
      return value.value.u16;
    case AMQP_FIELD_KIND_I32:
      return value.value.i32;
    case AMQP_FIELD_KIND_U32:
      return value.value.u32;
    case AMQP_FIELD_KIND_I64:
      return value.value.i64;
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP:
      return static_cast<int64_t>(std::min<uint64_t>(value.value.u64, INT64_MAX));
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES: {
      int64_t number = 0;
      if (absl::SimpleAtoi(Text(value.value.bytes), &number)) return number;
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

// Why a synchronous call failed, as a Status: the broker's close reason (its reply code
// decides the code), or rabbitmq-c's error.
absl::Status ReplyStatus(const amqp_rpc_reply_t& reply, absl::string_view what) {
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return absl::OkStatus();
    case AMQP_RESPONSE_NONE:
      return absl::UnavailableError(absl::StrCat(what, ": no reply from the broker"));
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return absl::UnavailableError(
          absl::StrCat(what, ": ", amqp_error_string2(reply.library_error)));
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      break;
  }
  uint16_t code = 0;
  std::string text;
  if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
    const auto* close = static_cast<const amqp_connection_close_t*>(reply.reply.decoded);
    code = close->reply_code;
    text = Text(close->reply_text);
  } else if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    const auto* close = static_cast<const amqp_channel_close_t*>(reply.reply.decoded);
    code = close->reply_code;
    text = Text(close->reply_text);
  }
  const std::string message = absl::StrCat(what, ": the broker refused: ", text);
  if (code == AMQP_ACCESS_REFUSED) return absl::UnauthenticatedError(message);
  return absl::FailedPreconditionError(message);
}

absl::Status LibraryStatus(int status, absl::string_view what) {
  if (status == AMQP_STATUS_OK) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(what, ": ", amqp_error_string2(status)));
}

class RabbitmqLink final : public AmqpLink {
 public:
  explicit RabbitmqLink(LinkOptions options) : options_(std::move(options)) {}
  ~RabbitmqLink() override { Close(); }

  absl::Status Open() override {
    Close();
    connection_ = amqp_new_connection();
    if (connection_ == nullptr) return absl::ResourceExhaustedError("no memory for a connection");
    amqp_socket_t* socket = nullptr;
    if (options_.url.tls) {
      socket = amqp_ssl_socket_new(connection_);
      if (socket == nullptr) return absl::InternalError("rabbitmq-c cannot make a TLS socket");
      amqp_ssl_socket_set_verify_peer(socket, 1);
      amqp_ssl_socket_set_verify_hostname(socket, 1);
      if (!options_.tls_ca_file.empty()) {
        const int set = amqp_ssl_socket_set_cacert(socket, options_.tls_ca_file.c_str());
        if (set != AMQP_STATUS_OK) {
          return absl::FailedPreconditionError(
              absl::StrCat("--amqp-tls-ca ", options_.tls_ca_file,
                           " cannot be read as PEM certificates: ", amqp_error_string2(set)));
        }
      }
    } else {
      socket = amqp_tcp_socket_new(connection_);
      if (socket == nullptr) return absl::InternalError("rabbitmq-c cannot make a socket");
    }
    const timeval connect_timeout = TimeVal(options_.connect_timeout);
    const int opened = amqp_socket_open_noblock(socket, options_.url.host.c_str(),
                                                options_.url.port, &connect_timeout);
    if (opened != AMQP_STATUS_OK) {
      return absl::UnavailableError(absl::StrCat("cannot connect to ", options_.url.host, ":",
                                                 options_.url.port, ": ",
                                                 amqp_error_string2(opened)));
    }
    const timeval call_timeout = TimeVal(options_.call_timeout);
    amqp_set_handshake_timeout(connection_, &call_timeout);
    amqp_set_rpc_timeout(connection_, &call_timeout);
    TableBuilder properties;
    properties.SetString("connection_name", options_.connection_name);
    amqp_table_t client_properties = properties.table();
    const amqp_rpc_reply_t login = amqp_login_with_properties(
        connection_, options_.url.vhost.c_str(), /*channel_max=*/0,
        /*frame_max=*/AMQP_DEFAULT_FRAME_SIZE, options_.heartbeat_seconds, &client_properties,
        AMQP_SASL_METHOD_PLAIN, options_.url.user.c_str(), options_.url.password.c_str());
    if (login.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        login.library_error == AMQP_STATUS_CONNECTION_CLOSED) {
      // RabbitMQ closes the socket on bad credentials unless the client announced
      // authentication_failure_close, and on an unknown vhost says so in connection.close.
      return absl::UnauthenticatedError(
          absl::StrCat("the broker closed the connection while logging in as '", options_.url.user,
                       "' to vhost '", options_.url.vhost, "': wrong user or password"));
    }
    RETURN_IF_ERROR(ReplyStatus(login, absl::StrCat("logging in as '", options_.url.user,
                                                    "' to vhost '", options_.url.vhost, "'")));
    amqp_channel_open(connection_, kChannel);
    RETURN_IF_ERROR(ReplyStatus(amqp_get_rpc_reply(connection_), "opening a channel"));
    amqp_confirm_select(connection_, kChannel);
    RETURN_IF_ERROR(ReplyStatus(amqp_get_rpc_reply(connection_), "turning publisher confirms on"));
    next_sequence_ = 1;
    return absl::OkStatus();
  }

  absl::Status Declare(const Topology& topology) override {
    if (topology.dead_letters) RETURN_IF_ERROR(DeclareDeadLetters(topology));
    TableBuilder arguments;
    if (topology.dead_letters) {
      arguments.SetString("x-dead-letter-exchange", topology.dead_letter_exchange);
    }
    if (topology.quorum) arguments.SetString("x-queue-type", "quorum");
    if (topology.max_priority > 0) arguments.SetInt32("x-max-priority", topology.max_priority);
    amqp_queue_declare(connection_, kChannel, Bytes(topology.queue), 0, 1, 0, 0, arguments.table());
    RETURN_IF_ERROR(ReplyStatus(
        amqp_get_rpc_reply(connection_),
        absl::StrCat("declaring the queue '", topology.queue,
                     "' (one that exists already must have the same arguments: ",
                     topology.dead_letters
                         ? absl::StrCat("dead letters to '", topology.dead_letter_exchange, "'")
                         : std::string("no dead letters"),
                     ", ", topology.quorum ? "quorum" : "classic",
                     topology.max_priority > 0
                         ? absl::StrCat(", x-max-priority ", topology.max_priority)
                         : std::string(", no x-max-priority"),
                     ")")));
    if (topology.bind_exchange.empty()) return absl::OkStatus();
    // As kombu declares it: durable, not auto-deleted, not internal, no arguments.
    amqp_exchange_declare(connection_, kChannel, Bytes(topology.bind_exchange),
                          amqp_cstring_bytes("direct"), /*passive=*/0, /*durable=*/1,
                          /*auto_delete=*/0, /*internal=*/0, amqp_empty_table);
    RETURN_IF_ERROR(ReplyStatus(
        amqp_get_rpc_reply(connection_),
        absl::StrCat("declaring the exchange '", topology.bind_exchange, "' (durable, direct)")));
    amqp_queue_bind(connection_, kChannel, Bytes(topology.queue), Bytes(topology.bind_exchange),
                    Bytes(topology.queue), amqp_empty_table);
    return ReplyStatus(amqp_get_rpc_reply(connection_),
                       absl::StrCat("binding the queue '", topology.queue, "' to the exchange '",
                                    topology.bind_exchange, "'"));
  }

  absl::Status SetPrefetch(int count) override {
    amqp_basic_qos(connection_, kChannel, 0, static_cast<uint16_t>(std::clamp(count, 1, 65535)),
                   /*global=*/0);
    return ReplyStatus(amqp_get_rpc_reply(connection_), "setting the prefetch count");
  }

  absl::Status Consume(const std::string& queue) override {
    amqp_basic_consume_ok_t* ok =
        amqp_basic_consume(connection_, kChannel, Bytes(queue), amqp_empty_bytes, /*no_local=*/0,
                           /*no_ack=*/0, /*exclusive=*/0, amqp_empty_table);
    RETURN_IF_ERROR(
        ReplyStatus(amqp_get_rpc_reply(connection_), absl::StrCat("consuming from '", queue, "'")));
    consumer_tag_ = Text(ok->consumer_tag);
    return absl::OkStatus();
  }

  absl::Status Cancel() override {
    if (consumer_tag_.empty() || connection_ == nullptr) return absl::OkStatus();
    amqp_basic_cancel(connection_, kChannel, Bytes(consumer_tag_));
    consumer_tag_.clear();
    return ReplyStatus(amqp_get_rpc_reply(connection_), "cancelling the consumer");
  }

  absl::StatusOr<uint64_t> Publish(const Outgoing& message) override {
    amqp_basic_properties_t properties{};
    TableBuilder headers;
    if (!message.headers_json.empty()) RETURN_IF_ERROR(headers.SetJson(message.headers_json));
    for (const auto& [name, value] : message.headers) headers.SetInt64(name, value);
    properties._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    properties.delivery_mode = message.persistent ? 2 : 1;
    auto set = [&](amqp_flags_t flag, amqp_bytes_t& field, const std::string& value) {
      if (value.empty()) return;
      properties._flags |= flag;
      field = Bytes(value);
    };
    set(AMQP_BASIC_CONTENT_TYPE_FLAG, properties.content_type, message.content_type);
    set(AMQP_BASIC_CONTENT_ENCODING_FLAG, properties.content_encoding, message.content_encoding);
    set(AMQP_BASIC_CORRELATION_ID_FLAG, properties.correlation_id, message.correlation_id);
    set(AMQP_BASIC_MESSAGE_ID_FLAG, properties.message_id, message.message_id);
    set(AMQP_BASIC_REPLY_TO_FLAG, properties.reply_to, message.reply_to);
    set(AMQP_BASIC_TYPE_FLAG, properties.type, message.type);
    if (message.priority > 0) {
      properties._flags |= AMQP_BASIC_PRIORITY_FLAG;
      properties.priority = static_cast<uint8_t>(std::min(message.priority, 255));
    }
    if (!headers.empty()) {
      properties._flags |= AMQP_BASIC_HEADERS_FLAG;
      properties.headers = headers.table();
    }
    const int published = amqp_basic_publish(connection_, kChannel, Bytes(message.exchange),
                                             Bytes(message.routing_key), message.mandatory,
                                             /*immediate=*/0, &properties, Bytes(message.body));
    RETURN_IF_ERROR(LibraryStatus(published, "publishing"));
    return next_sequence_++;
  }

  absl::Status Ack(uint64_t tag) override {
    return LibraryStatus(amqp_basic_ack(connection_, kChannel, tag, /*multiple=*/0),
                         "acknowledging a message");
  }

  absl::Status Reject(uint64_t tag, bool requeue) override {
    return LibraryStatus(amqp_basic_reject(connection_, kChannel, tag, requeue),
                         "rejecting a message");
  }

  absl::StatusOr<std::optional<Event>> Next(absl::Duration timeout, int wake_fd) override {
    amqp_maybe_release_buffers(connection_);
    if (!amqp_frames_enqueued(connection_) && !amqp_data_in_buffer(connection_)) {
      pollfd fds[2] = {{amqp_get_sockfd(connection_), POLLIN, 0}, {wake_fd, POLLIN, 0}};
      const int count = wake_fd >= 0 ? 2 : 1;
      const int ms =
          static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(timeout), 0, 60'000));
      if (::poll(fds, count, ms) < 0 && errno != EINTR) {
        return absl::UnavailableError(absl::StrCat("poll: ", std::strerror(errno)));
      }
      // Even without data, the zero-timeout read below lets rabbitmq-c send its heartbeat.
      if (count == 2 && (fds[1].revents & POLLIN) != 0 && (fds[0].revents & POLLIN) == 0) {
        const timeval now{0, 0};
        amqp_frame_t frame;
        const int read = amqp_simple_wait_frame_noblock(connection_, &frame, &now);
        if (read == AMQP_STATUS_TIMEOUT) return std::nullopt;
        RETURN_IF_ERROR(LibraryStatus(read, "reading from the broker"));
        return Decode(frame);
      }
    }
    const timeval now{0, 0};
    amqp_frame_t frame;
    const int read = amqp_simple_wait_frame_noblock(connection_, &frame, &now);
    if (read == AMQP_STATUS_TIMEOUT) return std::nullopt;
    RETURN_IF_ERROR(LibraryStatus(read, "reading from the broker"));
    return Decode(frame);
  }

  void Close() override {
    if (connection_ == nullptr) return;
    // A polite close can wait on a dead socket: only with a short timeout.
    const timeval quick = TimeVal(absl::Seconds(1));
    amqp_set_rpc_timeout(connection_, &quick);
    amqp_connection_close(connection_, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(connection_);
    connection_ = nullptr;
    consumer_tag_.clear();
  }

 private:
  // modeld's own layout: the fanout exchange and the queue its dead letters go to.
  absl::Status DeclareDeadLetters(const Topology& topology) {
    amqp_exchange_declare(connection_, kChannel, Bytes(topology.dead_letter_exchange),
                          amqp_cstring_bytes("fanout"), /*passive=*/0, /*durable=*/1,
                          /*auto_delete=*/0, /*internal=*/0, amqp_empty_table);
    RETURN_IF_ERROR(ReplyStatus(
        amqp_get_rpc_reply(connection_),
        absl::StrCat("declaring the dead-letter exchange '", topology.dead_letter_exchange, "'")));
    TableBuilder dead_arguments;
    if (topology.quorum) dead_arguments.SetString("x-queue-type", "quorum");
    amqp_queue_declare(connection_, kChannel, Bytes(topology.dead_letter_queue), 0, 1, 0, 0,
                       dead_arguments.table());
    RETURN_IF_ERROR(ReplyStatus(
        amqp_get_rpc_reply(connection_),
        absl::StrCat("declaring the dead-letter queue '", topology.dead_letter_queue, "'")));
    amqp_queue_bind(connection_, kChannel, Bytes(topology.dead_letter_queue),
                    Bytes(topology.dead_letter_exchange), amqp_empty_bytes, amqp_empty_table);
    return ReplyStatus(amqp_get_rpc_reply(connection_), "binding the dead-letter queue");
  }

  absl::StatusOr<std::optional<Event>> Decode(const amqp_frame_t& frame) {
    if (frame.frame_type != AMQP_FRAME_METHOD) {
      // A stray content frame outside a message: the stream is out of step.
      return absl::UnavailableError("the broker sent a content frame out of place");
    }
    Event event;
    switch (frame.payload.method.id) {
      case AMQP_BASIC_DELIVER_METHOD: {
        const auto* deliver =
            static_cast<const amqp_basic_deliver_t*>(frame.payload.method.decoded);
        event.kind = Event::Kind::kDelivery;
        event.delivery.tag = deliver->delivery_tag;
        event.delivery.redelivered = deliver->redelivered != 0;
        event.delivery.exchange = Text(deliver->exchange);
        event.delivery.routing_key = Text(deliver->routing_key);
        RETURN_IF_ERROR(ReadContent(frame.channel, event.delivery));
        return event;
      }
      case AMQP_BASIC_ACK_METHOD: {
        const auto* ack = static_cast<const amqp_basic_ack_t*>(frame.payload.method.decoded);
        event.kind = Event::Kind::kConfirmed;
        event.sequence = ack->delivery_tag;
        event.multiple = ack->multiple != 0;
        return event;
      }
      case AMQP_BASIC_NACK_METHOD: {
        const auto* nack = static_cast<const amqp_basic_nack_t*>(frame.payload.method.decoded);
        event.kind = Event::Kind::kRefused;
        event.sequence = nack->delivery_tag;
        event.multiple = nack->multiple != 0;
        return event;
      }
      case AMQP_BASIC_RETURN_METHOD: {
        const auto* returned =
            static_cast<const amqp_basic_return_t*>(frame.payload.method.decoded);
        event.kind = Event::Kind::kReturned;
        event.text = Text(returned->reply_text);
        event.routing_key = Text(returned->routing_key);
        Delivery ignored;
        RETURN_IF_ERROR(ReadContent(frame.channel, ignored));
        return event;
      }
      case AMQP_BASIC_CANCEL_METHOD:
        consumer_tag_.clear();
        event.kind = Event::Kind::kCancelled;
        return event;
      case AMQP_CHANNEL_CLOSE_METHOD: {
        const auto* close = static_cast<const amqp_channel_close_t*>(frame.payload.method.decoded);
        return absl::UnavailableError(
            absl::StrCat("the broker closed the channel: ", Text(close->reply_text)));
      }
      case AMQP_CONNECTION_CLOSE_METHOD: {
        const auto* close =
            static_cast<const amqp_connection_close_t*>(frame.payload.method.decoded);
        return absl::UnavailableError(
            absl::StrCat("the broker closed the connection: ", Text(close->reply_text)));
      }
      default:
        return std::optional<Event>();  // connection.blocked and the like: nothing to do
    }
  }

  // The content (properties and body) that follows a deliver or return method.
  absl::Status ReadContent(amqp_channel_t channel, Delivery& delivery) {
    amqp_message_t message;
    const amqp_rpc_reply_t read = amqp_read_message(connection_, channel, &message, 0);
    RETURN_IF_ERROR(ReplyStatus(read, "reading a message"));
    const amqp_basic_properties_t& p = message.properties;
    delivery.body = Text(message.body);
    if (p._flags & AMQP_BASIC_REPLY_TO_FLAG) delivery.reply_to = Text(p.reply_to);
    if (p._flags & AMQP_BASIC_CORRELATION_ID_FLAG) {
      delivery.correlation_id = Text(p.correlation_id);
    }
    if (p._flags & AMQP_BASIC_MESSAGE_ID_FLAG) delivery.message_id = Text(p.message_id);
    if (p._flags & AMQP_BASIC_PRIORITY_FLAG) delivery.priority = p.priority;
    delivery.persistent = (p._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) && p.delivery_mode == 2;
    if (p._flags & AMQP_BASIC_CONTENT_TYPE_FLAG) delivery.content_type = Text(p.content_type);
    if (p._flags & AMQP_BASIC_CONTENT_ENCODING_FLAG) {
      delivery.content_encoding = Text(p.content_encoding);
    }
    if ((p._flags & AMQP_BASIC_HEADERS_FLAG) && p.headers.num_entries > 0) {
      absl::StatusOr<std::string> json = TableToJson(p.headers);
      if (json.ok()) {
        delivery.headers_json = *std::move(json);
      } else {
        delivery.headers_error = std::string(json.status().message());
      }
      for (int i = 0; i < p.headers.num_entries; ++i) {
        const amqp_table_entry_t& entry = p.headers.entries[i];
        const std::string key = Text(entry.key);
        if (key == kDeadlineHeader) delivery.deadline_ms = IntegerValue(entry.value);
        if (key == kDeliveriesHeader) delivery.modeld_deliveries = IntegerValue(entry.value);
        if (key == kQuorumDeliveryCount) delivery.quorum_count = IntegerValue(entry.value);
      }
    }
    amqp_destroy_message(&message);
    return absl::OkStatus();
  }

  const LinkOptions options_;
  amqp_connection_state_t connection_ = nullptr;
  std::string consumer_tag_;
  uint64_t next_sequence_ = 1;
};

}  // namespace

std::unique_ptr<AmqpLink> MakeRabbitmqLink(LinkOptions options) {
  return std::make_unique<RabbitmqLink>(std::move(options));
}

}  // namespace modeld::transport::amqp
