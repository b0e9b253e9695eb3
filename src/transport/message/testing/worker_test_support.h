// What the message-queue workers' tests share (redis/testing/redis_worker_fixture.h,
// amqp/testing/amqp_worker_fixture.h): the fake models they serve, request envelopes for them,
// polling waits and metric reads. Test-only, header-only.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "kserve/grpc_service.pb.h"
#include "metrics/registry.h"
#include "service/testing/fake_backend_service.h"
#include "transport/message/envelope.h"

namespace modeld::transport::message::testing {

inline constexpr absl::Duration kWait = absl::Seconds(10);

inline std::string Floats(const std::vector<float>& values) {
  std::string bytes(values.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

// A RequestEnvelope asking `model` for [1, N] FP32 input "x" = `values`.
inline wire::RequestEnvelope InferEnvelope(const std::string& request_id,
                                           const std::vector<float>& values,
                                           const std::string& model = "echo",
                                           int64_t deadline_unix_ms = 0) {
  wire::RequestEnvelope envelope;
  envelope.set_request_id(request_id);
  envelope.set_deadline_unix_ms(deadline_unix_ms);
  inference::ModelInferRequest* request = envelope.mutable_infer();
  request->set_model_name(model);
  auto* input = request->add_inputs();
  input->set_name("x");
  input->set_datatype("FP32");
  input->add_shape(1);
  input->add_shape(static_cast<int64_t>(values.size()));
  request->add_raw_input_contents(Floats(values));
  return envelope;
}

// Polls `condition` until it holds or `timeout` passes (the workers expose no events).
inline bool WaitUntil(const std::function<bool()>& condition, absl::Duration timeout = kWait) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

// The value of one series in `registry`'s text (`name{labels}` as rendered), or -1.
inline double MetricValue(const metrics::Registry& registry, const std::string& series) {
  const std::string text = registry.Render();
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

// The fake models the workers' tests serve: "echo" (batches up to 8 of [2] FP32 "x") and
// "slow" (no batching, [1, 2] FP32 "x", 100 ms a request).
inline void AddEchoAndSlowModels(modeld::testing::FakeBackendService& serving) {
  serving.AddModel("echo", R"pb(
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
  serving.AddModel("slow", R"pb(
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
}

}  // namespace modeld::transport::message::testing
