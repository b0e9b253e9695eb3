// Fuzzes the Celery task codec: the bytes of a message as kombu's Redis transport pushes it
// (JSON wrapper, base64 body) -> KombuRedisMessage -> CeleryTask (transport/celery/
// task_message.h) -> for modeld.infer / modeld.predict, a core::InferRequest for each config
// of Configs(), then validation and batching. Every refusal is also encoded as the FAILURE
// document a worker would store, which must be JSON whatever the message said.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "rapidjson/document.h"
#include "tests/fuzz/fuzz_support.h"
#include "transport/celery/task_message.h"

namespace celery = modeld::transport::celery;

namespace {

void RequireJsonObject(const std::string& text, const char* what) {
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  modeld::fuzz::Require(!doc.HasParseError() && doc.IsObject(), what);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<celery::KombuRedisMessage> message = celery::ParseKombuRedisMessage(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  if (!message.ok()) return 0;
  const absl::Time received = absl::FromUnixSeconds(1700000000);
  (void)celery::Deadline(message->headers, received);
  (void)celery::Expired(message->headers, received);
  absl::StatusOr<celery::CeleryTask> task =
      celery::ParseTaskMessage(message->headers, message->body);
  if (!task.ok()) {
    RequireJsonObject(celery::EncodeFailure(message->headers.ids, task.status(), received),
                      "EncodeFailure writes a JSON object");
    return 0;
  }
  modeld::fuzz::Require(!task->model.empty(), "a parsed task names its model");
  if (task->kind == celery::TaskKind::kTrain) return 0;
  for (const modeld::core::ModelConfig& config : modeld::fuzz::Configs()) {
    absl::StatusOr<modeld::core::InferRequest> request =
        celery::ToInferRequest(*task, config, received);
    if (!request.ok()) {
      RequireJsonObject(celery::EncodeFailure(task->headers.ids, request.status(), received),
                        "EncodeFailure writes a JSON object");
      continue;
    }
    modeld::fuzz::RequireExactBytes(request->inputs, "ToInferRequest");
    modeld::fuzz::ValidateAndBatch(config, *request);
  }
  return 0;
}
