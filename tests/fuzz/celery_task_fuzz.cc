// Fuzzes the Celery task codec: the bytes of a message as kombu's Redis transport pushes it
// (JSON wrapper, base64 body) -> KombuRedisMessage -> CeleryTask (transport/celery/
// task_message.h) -> for modeld.infer / modeld.predict, a core::InferRequest for each config
// of Configs(), then validation and batching; for modeld.train, a core::TrainRequest. Every
// refusal is also encoded as the FAILURE document a worker would store, which must be JSON
// whatever the message said; and the follow-up messages a worker would publish (a chain's next
// step, links, errbacks: transport/celery/canvas.h), built from the message's own signatures,
// must be a JSON object of headers and a JSON body [args, kwargs, embed].
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "rapidjson/document.h"
#include "tests/fuzz/fuzz_support.h"
#include "transport/celery/canvas.h"
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
  (void)celery::CheckCanvas(*task);
  for (const absl::Status& outcome : {absl::OkStatus(), absl::InternalError("failed")}) {
    for (const celery::OutgoingTask& next :
         celery::FollowUps(*task, outcome, R"({"y":[[1.5]]})", celery::CanvasOptions())) {
      RequireJsonObject(next.headers_json, "a follow-up's headers are a JSON object");
      rapidjson::Document body;
      body.Parse(next.body.data(), next.body.size());
      modeld::fuzz::Require(!body.HasParseError() && body.IsArray() && body.Size() == 3,
                            "a follow-up's body is [args, kwargs, embed]");
      modeld::fuzz::Require(!next.queue.empty(), "a follow-up has a queue");
    }
  }
  for (const modeld::core::ModelConfig& config : modeld::fuzz::Configs()) {
    if (task->kind == celery::TaskKind::kTrain) {
      absl::StatusOr<modeld::core::TrainRequest> train = celery::ToTrainRequest(*task, config);
      if (train.ok()) {
        modeld::fuzz::RequireExactBytes(train->inputs, "ToTrainRequest inputs");
        modeld::fuzz::RequireExactBytes(train->targets, "ToTrainRequest targets");
      }
      continue;
    }
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
