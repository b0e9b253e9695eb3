#include "batching/dynamic_batcher.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "batching/tensor_batch.h"
#include "core/infer_response.h"

namespace modeld::batching {
namespace {

std::vector<int64_t> SortedPreferred(const inference::ModelDynamicBatching& batching) {
  std::vector<int64_t> sizes(batching.preferred_batch_size().begin(),
                             batching.preferred_batch_size().end());
  std::sort(sizes.begin(), sizes.end());
  return sizes;
}

}  // namespace

DynamicBatcher::DynamicBatcher(std::shared_ptr<const core::ModelConfig> config, int64_t version,
                               std::vector<std::unique_ptr<backend::Model>> instances,
                               const common::Clock& clock,
                               std::shared_ptr<const metrics::VersionMetrics> metrics)
    : config_(std::move(config)),
      version_(version),
      instances_(std::move(instances)),
      clock_(clock),
      metrics_(std::move(metrics)),
      max_delay_(
          absl::Microseconds(config_->proto.dynamic_batching().max_queue_delay_microseconds())),
      preferred_sizes_(SortedPreferred(config_->proto.dynamic_batching())),
      preserve_ordering_(config_->proto.dynamic_batching().preserve_ordering()),
      default_level_(config_->proto.dynamic_batching().priority_levels() > 0
                         ? config_->proto.dynamic_batching().default_priority_level() - 1
                         : 0) {
  const inference::ModelDynamicBatching& batching = config_->proto.dynamic_batching();
  {
    absl::MutexLock lock(&mu_);
    // Built in place: a Level's queue of move-only requests cannot be copied by resize().
    levels_ = std::vector<Level>(std::max<uint64_t>(1, batching.priority_levels()));
    for (uint64_t i = 0; i < levels_.size(); ++i) {
      auto it = batching.priority_queue_policy().find(i + 1);
      levels_[i].policy = it != batching.priority_queue_policy().end()
                              ? it->second
                              : batching.default_queue_policy();
    }
  }
  for (const std::unique_ptr<backend::Model>& model : instances_) {
    workers_.Start([this, &model] { WorkerLoop(*model); });
  }
}

DynamicBatcher::~DynamicBatcher() { Drain(); }

void DynamicBatcher::Enqueue(core::InferRequest&& request, core::InferCallback&& done) {
  const uint64_t levels = config_->proto.dynamic_batching().priority_levels();
  uint64_t level = default_level_;
  if (request.priority != 0 && levels > 0) {
    if (request.priority > levels) {
      std::move(done)(
          absl::InvalidArgumentError(absl::StrCat("priority ", request.priority, " is outside 1..",
                                                  levels, " of model '", config_->name, "'")));
      return;
    }
    level = request.priority - 1;
  }
  Pending pending;
  pending.rows = request.inputs.at(config_->inputs.front().name).shape()[0];
  pending.enqueued = clock_.Now();
  pending.deadline = request.deadline;
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    Level& queue = levels_[level];
    absl::Duration timeout = absl::Microseconds(queue.policy.default_timeout_microseconds());
    if (queue.policy.allow_timeout_override() && request.timeout.has_value()) {
      timeout = *request.timeout;
    }
    if (timeout > absl::ZeroDuration()) {
      pending.deadline = std::min(pending.deadline, pending.enqueued + timeout);
    }
    if (draining_) {
      refused = absl::UnavailableError(
          absl::StrCat("model '", config_->name, "' version ", version_, " is shutting down"));
    } else if (queue.policy.max_queue_size() > 0 &&
               queue.queue.size() >= queue.policy.max_queue_size()) {
      refused = absl::ResourceExhaustedError(
          absl::StrCat("the queue of model '", config_->name, "' is full (max_queue_size ",
                       queue.policy.max_queue_size(), "); retry later"));
    } else {
      pending.request = std::move(request);
      pending.done = std::move(done);
      pending.sequence = arrivals_++;
      queue.queue.push_back(std::move(pending));
      ++queued_;
      return;
    }
  }
  std::move(done)(refused);
}

void DynamicBatcher::Drain() {
  {
    absl::MutexLock lock(&mu_);
    draining_ = true;
  }
  workers_.JoinAll();
}

DynamicBatcher::Candidate DynamicBatcher::NextCandidate(absl::Time now) const {
  Candidate candidate;
  const core::TensorMap* first = nullptr;
  for (const Level& level : levels_) {
    for (const Pending& pending : level.queue) {
      if (pending.deadline <= now) {
        if (candidate.count == 0) candidate.head_expired = true;
        continue;
      }
      if (first != nullptr && (candidate.rows + pending.rows > config_->max_batch_size ||
                               !SameItemShapes(*first, pending.request.inputs))) {
        candidate.full = true;
        return candidate;
      }
      if (first == nullptr) first = &pending.request.inputs;
      candidate.rows += pending.rows;
      ++candidate.count;
      candidate.oldest = std::min(candidate.oldest, pending.enqueued);
      if (std::binary_search(preferred_sizes_.begin(), preferred_sizes_.end(), candidate.rows)) {
        candidate.preferred_count = candidate.count;
      }
      if (candidate.rows >= config_->max_batch_size) {
        candidate.full = true;
        return candidate;
      }
    }
  }
  return candidate;
}

bool DynamicBatcher::ReadyLocked(absl::Time now, absl::Time* wake) const {
  const Candidate candidate = NextCandidate(now);
  *wake = absl::InfiniteFuture();
  if (candidate.head_expired || draining_) return true;
  if (candidate.count == 0) return false;
  if (candidate.full || candidate.preferred_count > 0) return true;
  if (now >= candidate.oldest + max_delay_) return true;
  *wake = candidate.oldest + max_delay_;
  return false;
}

void DynamicBatcher::TakeBatchLocked(absl::Time now, std::vector<Pending>& batch,
                                     std::vector<Pending>& expired) {
  const Candidate candidate = NextCandidate(now);
  const bool waited_enough = now >= candidate.oldest + max_delay_;
  // A preferred size is taken when the batch cannot simply be the whole candidate.
  const int take = (candidate.full || waited_enough || draining_ || candidate.preferred_count == 0)
                       ? candidate.count
                       : candidate.preferred_count;
  for (Level& level : levels_) {
    while (!level.queue.empty()) {
      Pending& front = level.queue.front();
      if (front.deadline <= now) {
        expired.push_back(std::move(front));
      } else if (static_cast<int>(batch.size()) < take) {
        batch.push_back(std::move(front));
      } else {
        return;
      }
      level.queue.pop_front();
      --queued_;
    }
  }
}

void DynamicBatcher::WorkerLoop(backend::Model& model) {
  while (true) {
    std::vector<Pending> batch;
    std::vector<Pending> expired;
    {
      absl::MutexLock lock(&mu_);
      while (true) {
        mu_.Await(absl::Condition(
            +[](DynamicBatcher* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
              return self->queued_ > 0 || self->draining_;
            },
            this));
        if (queued_ == 0) return;  // draining and nothing left
        absl::Time wake;
        if (ReadyLocked(clock_.Now(), &wake)) break;
        const uint64_t seen = arrivals_;
        auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return arrivals_ != seen || draining_;
        };
        clock_.AwaitWithDeadline(mu_, absl::Condition(&changed), wake);
      }
      TakeBatchLocked(clock_.Now(), batch, expired);
    }
    const absl::Time now = clock_.Now();
    for (Pending& pending : expired) {
      Answer(pending, absl::DeadlineExceededError(absl::StrCat(
                          "request waited ", absl::FormatDuration(now - pending.enqueued),
                          " in the queue of model '", config_->name, "' and passed its deadline")));
    }
    if (!batch.empty()) RunBatch(model, batch);
  }
}

void DynamicBatcher::RunBatch(backend::Model& model, std::vector<Pending>& batch) {
  const absl::Time start = clock_.Now();
  int64_t total_rows = 0;
  std::vector<int64_t> rows;
  for (const Pending& pending : batch) {
    metrics_->RecordQueueTime(start - pending.enqueued);
    rows.push_back(pending.rows);
    total_rows += pending.rows;
  }
  // A batch of one runs on the request's own tensors: no copy at all.
  core::TensorMap merged;
  if (batch.size() > 1) {
    std::vector<const core::TensorMap*> parts;
    for (const Pending& pending : batch) parts.push_back(&pending.request.inputs);
    merged = Concatenate(parts, config_->inputs);
  }
  absl::StatusOr<core::TensorMap> outputs =
      model.Run(batch.size() > 1 ? merged : batch.front().request.inputs);
  metrics_->RecordBatch(total_rows, clock_.Now() - start);
  if (!outputs.ok() && batch.size() > 1) {
    // The error may belong to one request's data (a string that is not UTF-8, say): each runs
    // again alone, so that only the requests that fail alone get an error.
    for (Pending& pending : batch) {
      std::vector<Pending> alone;
      alone.push_back(std::move(pending));
      RunBatch(model, alone);
    }
    return;
  }
  if (!outputs.ok()) {
    Answer(batch.front(), outputs.status());
    return;
  }
  if (batch.size() == 1) {
    Answer(batch.front(),
           core::BuildResponse(*config_, version_, batch.front().request, *std::move(outputs)));
    return;
  }
  absl::StatusOr<std::vector<core::TensorMap>> parts = Split(*outputs, rows);
  for (size_t i = 0; i < batch.size(); ++i) {
    Answer(batch[i], parts.ok() ? core::BuildResponse(*config_, version_, batch[i].request,
                                                      std::move((*parts)[i]))
                                : absl::StatusOr<core::InferResponse>(parts.status()));
  }
}

void DynamicBatcher::Answer(Pending& pending, absl::StatusOr<core::InferResponse> result) {
  if (preserve_ordering_) {
    ordered_.Deliver(pending.sequence, std::move(pending.done), std::move(result));
  } else {
    std::move(pending.done)(std::move(result));
  }
}

}  // namespace modeld::batching
