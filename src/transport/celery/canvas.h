// Celery's canvas, as modeld takes part in it (docs/design/celery.md, section 6): after a task
// finishes, the task messages to publish — its chain's next step and its links on success,
// its errbacks on failure — built from the signatures its message embedded.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "transport/celery/celery_broker.h"
#include "transport/celery/task_message.h"

namespace modeld::transport::celery {

struct CanvasOptions {
  // Where a signature that names no queue (options "queue" or "routing_key") goes: Celery's
  // task_default_queue. modeld does not know the Python side's task_routes.
  std::string default_queue = "celery";
  // The "origin" header of the messages modeld publishes ("modeld@host").
  std::string origin;
};

// UNIMPLEMENTED, before the task runs, for embedded signatures modeld cannot publish as plain
// task messages: a chain step, link or errback that is itself a group, chain or chord
// (subtask_type set). Also refuses chords (CheckSupported).
absl::Status CheckCanvas(const CeleryTask& task);

// What to publish once `task` finished with `status`. On success (`result_json` is the
// result's JSON text): the chain's next step (chain.back()) with the result prepended to its
// args (unless immutable) and the rest of the chain embedded, then each link likewise. On
// failure: each errback with the task id as its only argument, as Celery's worker sends
// task-style errbacks. Every message gets root_id = the task's root (or its id), parent_id =
// the task's id, the signature's options.task_id as its id (a fresh UUID without one), its
// reply_to (else the task's), priority and group options.
std::vector<OutgoingTask> FollowUps(const CeleryTask& task, const absl::Status& status,
                                    absl::string_view result_json, const CanvasOptions& options);

}  // namespace modeld::transport::celery
