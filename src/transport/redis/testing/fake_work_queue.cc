#include "transport/redis/testing/fake_work_queue.h"

#include <algorithm>
#include <utility>

namespace modeld::transport::redis {

RedisConnector FakeConnector::connector() {
  return [this](absl::string_view) -> absl::StatusOr<std::unique_ptr<RedisConnection>> {
    ++attempts_;
    if (refusing_) return absl::UnavailableError("fake Redis is away");
    return std::make_unique<NullConnection>();
  };
}

void FakeWorkQueue::Add(QueueEntry entry) {
  absl::MutexLock lock(&mu_);
  waiting_.push_back(std::move(entry));
}

void FakeWorkQueue::AddOrphan(QueueEntry entry) {
  absl::MutexLock lock(&mu_);
  orphans_.push_back(std::move(entry));
}

void FakeWorkQueue::Fail(Op op, absl::Status status, int times) {
  absl::MutexLock lock(&mu_);
  for (int i = 0; i < times; ++i) failures_[op].push_back(status);
}

void FakeWorkQueue::SetOutcome(const std::string& id, CompletionOutcome outcome) {
  absl::MutexLock lock(&mu_);
  outcomes_[id] = std::move(outcome);
}

std::vector<FakeWorkQueue::Finished> FakeWorkQueue::finished() const {
  absl::MutexLock lock(&mu_);
  return finished_;
}

bool FakeWorkQueue::WaitForFinished(size_t count, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return finished_.size() >= count; };
  return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

int FakeWorkQueue::calls(Op op) const {
  absl::MutexLock lock(&mu_);
  auto it = calls_.find(op);
  return it == calls_.end() ? 0 : it->second;
}

int FakeWorkQueue::held() const {
  absl::MutexLock lock(&mu_);
  return held_;
}

int FakeWorkQueue::max_held() const {
  absl::MutexLock lock(&mu_);
  return max_held_;
}

size_t FakeWorkQueue::waiting() const {
  absl::MutexLock lock(&mu_);
  return waiting_.size();
}

bool FakeWorkQueue::first_prepare_seen() const {
  absl::MutexLock lock(&mu_);
  return first_prepare_seen_;
}

absl::Status FakeWorkQueue::Injected(Op op) {
  ++calls_[op];
  std::deque<absl::Status>& pending = failures_[op];
  if (pending.empty()) return absl::OkStatus();
  absl::Status status = pending.front();
  pending.pop_front();
  return status;
}

absl::Status FakeWorkQueue::Prepare(RedisConnection&, bool first) {
  absl::MutexLock lock(&mu_);
  if (first) first_prepare_seen_ = true;
  return Injected(Op::kPrepare);
}

absl::StatusOr<std::vector<QueueEntry>> FakeWorkQueue::Take(RedisConnection&, int max,
                                                            absl::Duration block) {
  absl::MutexLock lock(&mu_);
  if (absl::Status status = Injected(Op::kTake); !status.ok()) return status;
  auto some = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !waiting_.empty(); };
  mu_.AwaitWithTimeout(absl::Condition(&some), block);
  std::vector<QueueEntry> entries;
  while (static_cast<int>(entries.size()) < max && !waiting_.empty()) {
    entries.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  held_ += entries.size();
  max_held_ = std::max(max_held_, held_);
  return entries;
}

absl::StatusOr<Recovered> FakeWorkQueue::Recover(
    RedisConnection&, int max, const std::function<bool(absl::string_view)>& held) {
  absl::MutexLock lock(&mu_);
  if (absl::Status status = Injected(Op::kRecover); !status.ok()) return status;
  Recovered recovered;
  while (static_cast<int>(recovered.entries.size()) < max && !orphans_.empty()) {
    QueueEntry entry = std::move(orphans_.front());
    orphans_.pop_front();
    if (held(entry.id)) continue;
    recovered.entries.push_back(std::move(entry));
  }
  held_ += recovered.entries.size();
  max_held_ = std::max(max_held_, held_);
  return recovered;
}

absl::StatusOr<QueueDepth> FakeWorkQueue::Depth(RedisConnection&) {
  absl::MutexLock lock(&mu_);
  if (absl::Status status = Injected(Op::kDepth); !status.ok()) return status;
  return QueueDepth{static_cast<int64_t>(waiting_.size()), held_};
}

absl::Status FakeWorkQueue::Heartbeat(RedisConnection&) {
  absl::MutexLock lock(&mu_);
  return Injected(Op::kHeartbeat);
}

absl::StatusOr<std::vector<CompletionOutcome>> FakeWorkQueue::Complete(
    RedisConnection&, const std::vector<Completion>& completions) {
  absl::MutexLock lock(&mu_);
  if (absl::Status status = Injected(Op::kComplete); !status.ok()) return status;
  std::vector<CompletionOutcome> outcomes;
  for (const Completion& completion : completions) {
    finished_.push_back({*completion.entry, std::string(completion.reply_key),
                         std::string(completion.reply), std::string(completion.dead_reason)});
    auto it = outcomes_.find(completion.entry->id);
    outcomes.push_back(it == outcomes_.end() ? CompletionOutcome{} : it->second);
    --held_;
  }
  return outcomes;
}

}  // namespace modeld::transport::redis
