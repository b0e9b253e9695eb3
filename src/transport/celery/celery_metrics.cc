#include "transport/celery/celery_metrics.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "transport/celery/task_message.h"

namespace modeld::transport::celery {

namespace {

constexpr char kDeadLetters[] = "modeld_celery_dead_letters_total";
constexpr char kDeadLettersHelp[] =
    "Celery messages taken off the queue without a result, never to run, by reason.";

}  // namespace

CeleryMetrics::CeleryMetrics(metrics::Registry* registry)
    : own_(registry == nullptr ? std::make_unique<metrics::Registry>() : nullptr),
      registry_(registry != nullptr ? *registry : *own_),
      received(registry_.GetCounter("modeld_celery_messages_received_total",
                                    "Celery task messages taken from the queue.", {})),
      redelivered(registry_.GetCounter(
          "modeld_celery_messages_redelivered_total",
          "Celery task messages that had been delivered before, to a consumer that stopped "
          "before acknowledging them.",
          {})),
      dead_unparsable(registry_.GetCounter(kDeadLetters, kDeadLettersHelp,
                                           {{"reason", "unparsable"}})),
      dead_unknown_task(registry_.GetCounter(kDeadLetters, kDeadLettersHelp,
                                             {{"reason", "unknown_task"}})),
      results_stored(registry_.GetCounter("modeld_celery_results_stored_total",
                                          "Result documents stored in the result backend.", {})),
      store_failures(registry_.GetCounter(
          "modeld_celery_result_store_failures_total",
          "Attempts to store results that failed (the backend was unreachable); retried.", {})),
      published(registry_.GetCounter(
          "modeld_celery_follow_ups_published_total",
          "Task messages modeld published: chain steps, links and errbacks.", {})),
      acks(registry_.GetCounter("modeld_celery_messages_acked_total",
                                "Celery task messages finished and acknowledged.", {})),
      dropped(registry_.GetCounter(
          "modeld_celery_tasks_dropped_total",
          "Tasks let go because their broker connection broke; the broker delivers them again.",
          {})),
      reconnects(registry_.GetCounter("modeld_celery_reconnects_total",
                                      "Broker connections opened again after a failure.", {})),
      connected(registry_.GetGauge("modeld_celery_connected",
                                   "1 while connected to the Celery broker and consuming.", {})),
      in_flight(registry_.GetGauge("modeld_celery_in_flight",
                                   "Celery messages held and not yet acknowledged.", {})),
      eta_held(registry_.GetGauge(
          "modeld_celery_eta_held", "Celery messages held until their eta (countdown).", {})),
      prefetch(registry_.GetGauge("modeld_celery_prefetch",
                                  "The prefetch count asked of the Celery broker.", {})) {}

metrics::Counter& CeleryMetrics::Finished(const std::string& task, const std::string& state) {
  const std::string name =
      task == kInferTask || task == kPredictTask || task == kTrainTask ? task : "other";
  const std::string key = absl::StrCat(name, "/", state);
  absl::MutexLock lock(&mu_);
  metrics::Counter*& counter = finished_[key];
  if (counter == nullptr) {
    counter = &registry_.GetCounter("modeld_celery_tasks_total",
                                    "Celery tasks finished, by task and the state stored.",
                                    {{"task", name}, {"state", state}});
  }
  return *counter;
}

}  // namespace modeld::transport::celery
