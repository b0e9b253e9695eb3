// Fuzzes the Redis transport's envelopes: the bytes of a stream entry or list item ->
// modeld.redis.RequestEnvelope (transport/message/envelope.h) -> its deadline, kind and
// core::InferRequest, then validation and batching; or, for a `train` payload, its
// core::TrainRequest, then the element limit and core::ValidateTrainRequest.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "tests/fuzz/fuzz_support.h"
#include "transport/message/envelope.h"

namespace message = modeld::transport::message;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<message::wire::RequestEnvelope> envelope =
      message::ParseRequestEnvelope(absl::string_view(reinterpret_cast<const char*>(data), size));
  if (!envelope.ok()) return 0;
  (void)message::Deadline(*envelope);
  if (message::IsQuery(*envelope)) return 0;  // answered from the service's state, not decoded
  if (envelope->has_train()) {
    absl::StatusOr<modeld::core::TrainRequest> train = message::DecodeEnvelopeTrain(*envelope);
    if (train.ok()) modeld::fuzz::ValidateTrain(*train);
    return 0;
  }
  absl::StatusOr<modeld::core::InferRequest> request = message::DecodeEnvelopeRequest(*envelope);
  if (request.ok()) modeld::fuzz::ValidateAndBatch(*request);
  return 0;
}
