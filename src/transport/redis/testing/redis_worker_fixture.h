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
#include "transport/redis/redis_worker.h"
#include "transport/redis/testing/fake_work_queue.h"

namespace modeld::transport::redis {

inline constexpr absl::Duration kWait = absl::Seconds(10);

inline std::string Floats(std::vector<float> values) {
  std::string bytes(values.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

// A serialized RequestEnvelope asking `model` for [1, 2] FP32 input `values`.
inline std::string Envelope(const std::string& request_id, const std::vector<float>& values,
                            const std::string& model = "echo", int64_t deadline_unix_ms = 0) {
  message::wire::RequestEnvelope envelope;
  envelope.set_request_id(request_id);
  envelope.set_reply_key(absl::StrCat("reply:", request_id));
  envelope.set_deadline_unix_ms(deadline_unix_ms);
  inference::ModelInferRequest* request = envelope.mutable_infer();
  request->set_model_name(model);
  auto* input = request->add_inputs();
  input->set_name("x");
  input->set_datatype("FP32");
  input->add_shape(1);
  input->add_shape(static_cast<int64_t>(values.size()));
  request->add_raw_input_contents(Floats(values));
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

// Polls `condition` until it holds or `timeout` passes (the worker exposes no events).
inline bool WaitUntil(const std::function<bool()>& condition, absl::Duration timeout = kWait) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

class RedisWorkerTest : public ::testing::Test {
 protected:
  // The value of one series in the registry's text (`name{labels}` as rendered), or -1.
  double Metric(const std::string& series) const {
    const std::string text = registry_.Render();
    const std::string prefix = series + " ";
    for (size_t at = 0; at < text.size();) {
      size_t end = text.find('\n', at);
      if (end == std::string::npos) end = text.size();
      if (text.compare(at, prefix.size(), prefix) == 0) {
        return std::stod(text.substr(at + prefix.size(), end - at - prefix.size()));
      }
      at = end + 1;
    }
    return -1;
  }

  void SetUp() override {
    serving_.AddModel("echo", R"pb(
      backend: "fake"
      max_batch_size: 8
      input {
        name: "x"
        data_type: TYPE_FP32
        dims: [ 2 ]
      }
      output {
        name: "x"
        data_type: TYPE_FP32
        dims: [ 2 ]
      }
      dynamic_batching {}
    )pb");
    serving_.AddModel("slow", R"pb(
      backend: "fake"
      max_batch_size: 0
      input {
        name: "x"
        data_type: TYPE_FP32
        dims: [ 1, 2 ]
      }
      output {
        name: "x"
        data_type: TYPE_FP32
        dims: [ 1, 2 ]
      }
      parameters {
        key: "sleep_ms"
        value { string_value: "100" }
      }
    )pb");
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
