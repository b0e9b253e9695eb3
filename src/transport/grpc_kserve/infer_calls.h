// InferCalls: KServe's ModelInfer on gRPC's generic (byte-buffer) API. The typed callback API
// only calls a handler once the whole request message has arrived and parsed, so a client
// could hold a call half-sent for ever, and bytes that do not parse got gRPC's bare
// UNIMPLEMENTED. Here a call is seen when its headers arrive:
//   - a deadline that has already passed is answered DEADLINE_EXCEEDED, its bytes never read;
//   - a message that does not arrive whole within the receive timeout is answered
//     DEADLINE_EXCEEDED naming --grpc-receive-timeout-seconds, and gRPC frees what it held;
//   - a message over --grpc-max-message-bytes is answered RESOURCE_EXHAUSTED naming the flag;
//   - a message that arrives while --max-inflight-requests calls are at work is answered
//     RESOURCE_EXHAUSTED before it is parsed (service/admission.h);
//   - bytes that do not parse as a ModelInferRequest are answered INVALID_ARGUMENT.
// Everything else is the typed service's ModelInfer: decode, InferenceService, encode.
#pragma once

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"
#include "grpcpp/generic/async_generic_service.h"
#include "service/admission.h"
#include "service/inference_service.h"

namespace modeld::transport::grpc_kserve {

// The full name of the method InferCalls serves; any other method reaching the generic API
// is UNIMPLEMENTED, naming it.
inline constexpr char kModelInferMethod[] = "/inference.GRPCInferenceService/ModelInfer";

struct InferCallOptions {
  // How long a call may take, from its headers, to deliver its whole request message.
  absl::Duration receive_timeout = absl::Seconds(60);
  // Asked when a call's message has arrived, before it is parsed; a refusal is the answer.
  // Null: every call is admitted. Must outlive the InferCalls.
  service::Admission* admission = nullptr;
  // Largest request message (--grpc-max-message-bytes); 0: no limit.
  int64_t max_message_bytes = 0;
};

// Thread-safe. `service` must outlive this object and every call it has started. Registered
// with ServerBuilder::RegisterCallbackGenericService, next to KServeGrpcService (which leaves
// ModelInfer to it).
class InferCalls : public grpc::CallbackGenericService {
 public:
  InferCalls(service::InferenceService& service, InferCallOptions options)
      : service_(service), options_(options) {}

  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* context) override;

  // Calls answered here without reaching InferenceService (refused, timed out, expired,
  // unparsable, unknown method), so far. Activity that the idle trim counts with the service's own.
  int64_t Refused() const { return refused_.load(std::memory_order_relaxed); }

 private:
  service::InferenceService& service_;
  const InferCallOptions options_;
  std::atomic<int64_t> refused_{0};
};

}  // namespace modeld::transport::grpc_kserve
