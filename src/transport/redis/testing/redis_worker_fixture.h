// The RedisWorker tests' fixture: a worker on a FakeWorkQueue in front of the real service over
// the fake backend ("echo" batches, "slow" sleeps 100 ms), and helpers that build entries and
// read replies. Test-only; shared by redis_worker_test.cc and redis_worker_queries_test.cc.
#pragma once

#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kserve/grpc_service.pb.h"
#include "metrics/registry.h"
#include "service/testing/fake_backend_service.h"
#include "transport/message/envelope.h"
#include "transport/message/testing/worker_test_support.h"
#include "transport/redis/redis_worker.h"
#include "transport/redis/testing/fake_work_queue.h"

namespace modeld::transport::redis {

using message::testing::Floats;
using message::testing::kWait;
using message::testing::WaitUntil;

// A serialized RequestEnvelope asking `model` for [1, 2] FP32 input `values`.
inline std::string Envelope(const std::string& request_id, const std::vector<float>& values,
                            const std::string& model = "echo", int64_t deadline_unix_ms = 0) {
  message::wire::RequestEnvelope envelope =
      message::testing::InferEnvelope(request_id, values, model, deadline_unix_ms);
  envelope.set_reply_key(absl::StrCat("reply:", request_id));
  return envelope.SerializeAsString();
}

// A serialized RequestEnvelope carrying a query that `fill` sets.
inline std::string Query(const std::string& request_id,
                         const std::function<void(message::wire::RequestEnvelope&)>& fill) {
  message::wire::RequestEnvelope envelope;
  envelope.set_request_id(request_id);
  envelope.set_reply_key(absl::StrCat("reply:", request_id));
  fill(envelope);
  return envelope.SerializeAsString();
}

inline QueueEntry Entry(const std::string& id, std::optional<std::string> envelope,
                        int64_t deliveries = 1) {
  return QueueEntry{id, std::move(envelope), deliveries};
}

inline message::wire::ReplyEnvelope Reply(const FakeWorkQueue::Finished& finished) {
  absl::StatusOr<message::wire::ReplyEnvelope> reply = message::ParseReplyEnvelope(finished.reply);
  EXPECT_TRUE(reply.ok()) << "entry " << finished.entry.id << " has no parsable reply";
  return reply.value_or(message::wire::ReplyEnvelope());
}

class RedisWorkerTest : public ::testing::Test {
 protected:
  // The value of one series in the registry's text (`name{labels}` as rendered), or -1.
  double Metric(const std::string& series) const {
    return message::testing::MetricValue(registry_, series);
  }

  void SetUp() override {
    message::testing::AddEchoAndSlowModels(serving_);
    ASSERT_TRUE(serving_.Start().ok());
  }

  void TearDown() override {
    if (worker_ != nullptr) worker_->Stop(absl::Now() + kWait);
    worker_.reset();
    serving_.Drain();
  }

  // Starts a worker on `queue_` with quick timers.
  void StartWorker(RedisWorkerOptions options = {}) {
    options.where = "fake";
    options.block = absl::Milliseconds(20);
    options.recover_interval = absl::Milliseconds(10);
    options.sample_interval = absl::Milliseconds(10);
    options.min_backoff = absl::Milliseconds(1);
    options.max_backoff = absl::Milliseconds(5);
    auto queue = std::make_unique<FakeWorkQueue>(needs_envelope_);
    queue_ = queue.get();
    worker_ = std::make_unique<RedisWorker>(options, std::move(queue), connector_.connector(),
                                            serving_.service(), clock_, &registry_);
    worker_->Start();
  }

  common::RealClock clock_;
  metrics::Registry registry_;
  testing::FakeBackendService serving_{clock_, &registry_};
  FakeConnector connector_;
  bool needs_envelope_ = false;
  FakeWorkQueue* queue_ = nullptr;
  std::unique_ptr<RedisWorker> worker_;
};

}  // namespace modeld::transport::redis
