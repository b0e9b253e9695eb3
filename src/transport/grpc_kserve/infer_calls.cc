#include "transport/grpc_kserve/infer_calls.h"

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/alarm.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "kserve/grpc_service.grpc.pb.h"
#include "transport/grpc_limits.h"
#include "transport/kserve/codec.h"
#include "transport/status_codes.h"

namespace modeld::transport::grpc_kserve {
namespace {

// Who answers a call still being received: the arriving message or the receive timer. Shared
// with the timer's callback, which may run after the call is gone.
class ReceiveRace {
 public:
  // True for the first caller only; that caller finishes the call.
  bool Claim() {
    absl::MutexLock lock(&mu_);
    if (claimed_) return false;
    claimed_ = true;
    return true;
  }

 private:
  absl::Mutex mu_;
  bool claimed_ ABSL_GUARDED_BY(mu_) = false;
};

// Answers `status` at once, as gRPC does for an unknown method, but naming it.
class Refusal final : public grpc::ServerGenericBidiReactor {
 public:
  explicit Refusal(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

// One ModelInfer call: read one message (or time out), run it, write the answer.
class InferCall final : public grpc::ServerGenericBidiReactor {
 public:
  InferCall(service::InferenceService& service, grpc::GenericCallbackServerContext* context,
            const InferCallOptions& options, std::atomic<int64_t>& refused)
      : service_(service), context_(context), options_(options), refused_(refused) {}

  void Start() {
    const std::chrono::system_clock::time_point deadline = context_->deadline();
    const bool has_deadline = deadline != std::chrono::system_clock::time_point::max();
    if (has_deadline && deadline <= std::chrono::system_clock::now()) {
      race_->Claim();
      Refuse(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                          "the call's deadline passed before modeld read its request"));
      return;
    }
    StartRead(&request_bytes_);
    std::shared_ptr<ReceiveRace> race = race_;
    timer_.Set(
        std::chrono::system_clock::now() + absl::ToChronoNanoseconds(options_.receive_timeout),
        [this, race](bool fired) {
          // `this` is alive while the call is unfinished, which Claim() proves.
          if (!fired || !race->Claim()) return;
          Refuse(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                              absl::StrCat("the request message did not arrive whole within ",
                                           absl::FormatDuration(options_.receive_timeout),
                                           " (--grpc-receive-timeout-seconds)")));
        });
  }

  void OnReadDone(bool ok) override {
    if (!race_->Claim()) return;  // the receive timer answered
    timer_.Cancel();
    if (!ok) {
      Refuse(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "the call ended before its ModelInferRequest message arrived"));
      return;
    }
    if (absl::Status fits = CheckMessageSize(static_cast<int64_t>(request_bytes_.Length()),
                                             options_.max_message_bytes);
        !fits.ok()) {
      Refuse(ToGrpcStatus(fits));
      return;
    }
    // Admitted once its bytes are here, before any work on them: a call still being sent
    // holds no slot, so calls stalled mid-message (bounded by the receive timeout and the
    // stream cap) cannot lock other clients out.
    if (options_.admission != nullptr) {
      absl::StatusOr<service::Admission::Ticket> admitted = options_.admission->Admit();
      if (!admitted.ok()) {
        Refuse(ToGrpcStatus(admitted.status()));
        return;
      }
      ticket_.emplace(*std::move(admitted));
    }
    grpc::ProtoBufferReader reader(&request_bytes_);
    if (!request_.ParseFromZeroCopyStream(&reader)) {
      Refuse(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "the request message is not a valid inference.ModelInferRequest (it "
                          "does not parse as protobuf, or a string field is not UTF-8)"));
      return;
    }
    request_bytes_.Clear();  // the parsed copy is what the decoded tensors view
    Run();
  }

  void OnDone() override { delete this; }

 private:
  // Finishes a call that never reaches the service.
  void Refuse(grpc::Status status) {
    refused_.fetch_add(1, std::memory_order_relaxed);
    Finish(std::move(status));
  }

  void Run() {
    absl::StatusOr<core::InferRequest> decoded = kserve::DecodeInferRequest(request_);
    if (!decoded.ok()) {
      Finish(ToGrpcStatus(decoded.status()));
      return;
    }
    // A client that stops waiting should not have its request run for nothing.
    const std::chrono::system_clock::time_point deadline = context_->deadline();
    if (deadline != std::chrono::system_clock::time_point::max()) {
      decoded->deadline = absl::FromChrono(deadline);
    }
    // `request_` stays valid until OnDone, after the callback's Finish, so the decoded tensors
    // may keep viewing its bytes.
    service_.Infer(*std::move(decoded), [this](absl::StatusOr<core::InferResponse> result) {
      // The slot goes back as the answer is handed to gRPC, not when gRPC reports the call
      // done: under load that report lags, and closed-loop clients would find the cap full of
      // calls already answered.
      ticket_.reset();
      if (!result.ok()) {
        Finish(ToGrpcStatus(result.status()));
        return;
      }
      kserve::EncodeInferResponse(*result, &response_);
      bool own_buffer = false;
      grpc::Status serialized = grpc::SerializationTraits<inference::ModelInferResponse>::Serialize(
          response_, &response_bytes_, &own_buffer);
      if (!serialized.ok()) {
        Finish(serialized);
        return;
      }
      StartWriteAndFinish(&response_bytes_, grpc::WriteOptions(), grpc::Status::OK);
    });
  }

  service::InferenceService& service_;
  grpc::GenericCallbackServerContext* const context_;
  const InferCallOptions& options_;
  std::atomic<int64_t>& refused_;
  // This call's slot under --max-inflight-requests, given back once its answer is handed to
  // gRPC.
  std::optional<service::Admission::Ticket> ticket_;
  const std::shared_ptr<ReceiveRace> race_ = std::make_shared<ReceiveRace>();
  grpc::Alarm timer_;
  grpc::ByteBuffer request_bytes_;
  inference::ModelInferRequest request_;
  inference::ModelInferResponse response_;
  grpc::ByteBuffer response_bytes_;
};

}  // namespace

grpc::ServerGenericBidiReactor* InferCalls::CreateReactor(
    grpc::GenericCallbackServerContext* context) {
  if (context->method() != kModelInferMethod) {
    refused_.fetch_add(1, std::memory_order_relaxed);
    return new Refusal(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                                    absl::StrCat("modeld has no gRPC method ", context->method())));
  }
  auto* call = new InferCall(service_, context, options_, refused_);
  call->Start();
  return call;
}

}  // namespace modeld::transport::grpc_kserve
