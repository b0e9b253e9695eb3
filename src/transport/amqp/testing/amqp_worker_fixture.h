// The AmqpWorker tests' fixture: a worker on a FakeBroker in front of the real service over
// the fake backend ("echo" batches, "slow" sleeps 100 ms), the requester's reply queue, and
// helpers that build request messages and read replies. Test-only; shared by
// amqp_worker_test.cc and amqp_worker_connection_test.cc.
#pragma once

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kserve/grpc_service.pb.h"
#include "metrics/registry.h"
#include "service/admission.h"
#include "service/testing/fake_backend_service.h"
#include "transport/amqp/amqp_worker.h"
#include "transport/amqp/testing/fake_amqp_link.h"
#include "transport/message/envelope.h"
#include "transport/message/testing/worker_test_support.h"

namespace modeld::transport::amqp {

using message::testing::Floats;
using message::testing::kWait;
using message::testing::WaitUntil;
inline constexpr char kQueue[] = "requests";
inline constexpr char kDeadLetters[] = "requests.dead-letters";
inline constexpr char kReplies[] = "replies";  // the requester's reply queue

// A serialized RequestEnvelope asking `model` for [1, 2] FP32 input `values`.
inline std::string Envelope(const std::string& request_id, const std::vector<float>& values,
                            const std::string& model = "echo", int64_t deadline_unix_ms = 0) {
  return message::testing::InferEnvelope(request_id, values, model, deadline_unix_ms)
      .SerializeAsString();
}

// A request message for the worker's queue, answered on `reply_to`.
inline Outgoing Request(const std::string& correlation_id, std::string body,
                        const std::string& reply_to = kReplies) {
  Outgoing message;
  message.routing_key = kQueue;
  message.body = std::move(body);
  message.correlation_id = correlation_id;
  message.reply_to = reply_to;
  return message;
}

inline message::wire::ReplyEnvelope Reply(const FakeMessage& message) {
  absl::StatusOr<message::wire::ReplyEnvelope> reply =
      message::ParseReplyEnvelope(message.message.body);
  EXPECT_TRUE(reply.ok()) << "the reply to " << message.message.correlation_id << " does not parse";
  return reply.value_or(message::wire::ReplyEnvelope());
}

class AmqpWorkerTest : public ::testing::Test {
 protected:
  // The value of one series in the registry's text (`name{labels}` as rendered), or -1.
  double Metric(const std::string& series) const {
    return message::testing::MetricValue(registry_, series);
  }

  void SetUp() override {
    message::testing::AddEchoAndSlowModels(serving_);
    ASSERT_TRUE(serving_.Start().ok());
    broker_.DeclareQueue(kReplies);
  }

  void TearDown() override {
    if (worker_ != nullptr) worker_->Stop(absl::Now() + kWait);
    worker_.reset();
    serving_.Drain();
    // Nothing a real broker would have closed the channel for (an ack of an unknown tag).
    EXPECT_TRUE(broker_.errors().empty()) << broker_.errors().front();
  }

  // The worker's options for the fake broker, with quick backoff.
  static AmqpWorkerOptions Options() {
    AmqpWorkerOptions options;
    options.topology.queue = kQueue;
    options.topology.dead_letter_exchange = kDeadLetters;
    options.topology.dead_letter_queue = kDeadLetters;
    options.where = "fake";
    options.prefetch = 8;
    options.min_backoff = absl::Milliseconds(1);
    options.max_backoff = absl::Milliseconds(5);
    return options;
  }

  void StartWorker(AmqpWorkerOptions options = Options()) {
    worker_ = std::make_unique<AmqpWorker>(std::move(options), broker_.factory(),
                                           serving_.service(), clock_, &registry_);
    worker_->Start();
  }

  // Starts a worker and waits until it consumes (so the queue is declared).
  void StartConsuming(AmqpWorkerOptions options = Options()) {
    StartWorker(std::move(options));
    ASSERT_TRUE(WaitUntil([&] { return worker_->Ready(); }));
  }

  std::vector<FakeMessage> Replies() const { return broker_.Messages(kReplies); }
  bool WaitForReplies(size_t count) const {
    return broker_.WaitForMessages(kReplies, count, kWait);
  }
  // Waits until the broker has `count` messages acknowledged.
  bool WaitForAcks(size_t count) const {
    return WaitUntil([&] { return broker_.Acked().size() >= count; });
  }

  common::RealClock clock_;
  metrics::Registry registry_;
  testing::FakeBackendService serving_{clock_, &registry_};
  FakeBroker broker_;
  // Set by a test before StartWorker; outlives the worker.
  std::unique_ptr<service::Admission> admission_;
  std::unique_ptr<AmqpWorker> worker_;
};

}  // namespace modeld::transport::amqp
