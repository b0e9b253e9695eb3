// FakeBroker, the tests' side: queues, knobs and observations (the links' side is in
// fake_amqp_link.cc).
#include <algorithm>
#include <utility>

#include "transport/amqp/testing/fake_amqp_link.h"

namespace modeld::transport::amqp {
namespace {

Event Cancelled() {
  Event event;
  event.kind = Event::Kind::kCancelled;
  return event;
}

}  // namespace

FakeBroker::~FakeBroker() = default;

LinkFactory FakeBroker::factory() {
  return [this] { return std::make_unique<FakeAmqpLink>(*this); };
}

// --- the test's side ---

void FakeBroker::DeclareQueue(const std::string& name, bool quorum, int max_priority) {
  absl::MutexLock lock(&mu_);
  Queue& queue = queues_[name];
  queue.quorum = quorum;
  queue.max_priority = max_priority;
}

void FakeBroker::DeleteQueue(const std::string& name) {
  absl::MutexLock lock(&mu_);
  queues_.erase(name);
  for (auto& [id, link] : links_) {
    if (link.consuming != name) continue;
    link.consuming.clear();
    link.events.push_back(Cancelled());
  }
}

void FakeBroker::Publish(Outgoing message, bool redelivered) {
  absl::MutexLock lock(&mu_);
  Enqueue(std::move(message), redelivered);
}

std::vector<FakeMessage> FakeBroker::Messages(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = queues_.find(name);
  if (it == queues_.end()) return {};
  std::vector<std::pair<uint64_t, FakeMessage>> sorted = it->second.messages;
  const int max_priority = it->second.max_priority;
  std::stable_sort(sorted.begin(), sorted.end(), [max_priority](const auto& a, const auto& b) {
    const int pa = std::clamp(a.second.message.priority, 0, max_priority);
    const int pb = std::clamp(b.second.message.priority, 0, max_priority);
    return pa != pb ? pa > pb : a.first < b.first;
  });
  std::vector<FakeMessage> messages;
  for (auto& [order, message] : sorted) messages.push_back(std::move(message));
  return messages;
}

bool FakeBroker::WaitForMessages(const std::string& name, size_t count,
                                 absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = queues_.find(name);
    return it != queues_.end() && it->second.messages.size() >= count;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

// --- knobs ---

void FakeBroker::Fail(Op op, absl::Status status, int times) {
  absl::MutexLock lock(&mu_);
  for (int i = 0; i < times; ++i) failures_[op].push_back(status);
}

void FakeBroker::ClearFailures() {
  absl::MutexLock lock(&mu_);
  failures_.clear();
}

void FakeBroker::RefusePublishes(int count) {
  absl::MutexLock lock(&mu_);
  refuse_ += count;
}

void FakeBroker::HoldConfirms() {
  absl::MutexLock lock(&mu_);
  hold_confirms_ = true;
}

void FakeBroker::ReleaseConfirms(bool multiple) {
  absl::MutexLock lock(&mu_);
  hold_confirms_ = false;
  for (auto& [id, link] : links_) {
    if (link.held_confirms.empty()) continue;
    if (multiple) {
      Event confirmed;
      confirmed.kind = Event::Kind::kConfirmed;
      confirmed.sequence = link.held_confirms.back();
      confirmed.multiple = true;
      link.events.push_back(std::move(confirmed));
    } else {
      for (uint64_t sequence : link.held_confirms) Confirm(link, sequence);
    }
    link.held_confirms.clear();
  }
}

void FakeBroker::DropConnections() {
  absl::MutexLock lock(&mu_);
  for (auto& [id, link] : links_) {
    if (link.open && !link.broken) Break(link);
  }
}

void FakeBroker::CancelConsumers() {
  absl::MutexLock lock(&mu_);
  for (auto& [id, link] : links_) {
    if (link.consuming.empty() || link.broken) continue;
    link.consuming.clear();
    link.events.push_back(Cancelled());
  }
}

void FakeBroker::StallAfterDeliveries(int count) {
  absl::MutexLock lock(&mu_);
  stall_after_ = count;
}

void FakeBroker::UnstallNext() {
  absl::MutexLock lock(&mu_);
  stalled_ = false;
}

// --- observations ---

int FakeBroker::calls(Op op) const {
  absl::MutexLock lock(&mu_);
  auto it = calls_.find(op);
  return it == calls_.end() ? 0 : it->second;
}

std::vector<Outgoing> FakeBroker::Published(const std::string& routing_key) const {
  absl::MutexLock lock(&mu_);
  auto it = published_.find(routing_key);
  return it == published_.end() ? std::vector<Outgoing>() : it->second;
}

std::vector<std::string> FakeBroker::Acked() const {
  absl::MutexLock lock(&mu_);
  return acked_;
}

int FakeBroker::requeued() const {
  absl::MutexLock lock(&mu_);
  return requeued_;
}

int FakeBroker::unacked() const {
  absl::MutexLock lock(&mu_);
  size_t count = 0;
  for (const auto& [id, link] : links_) count += link.unacked.size();
  return static_cast<int>(count);
}

int FakeBroker::max_unacked() const {
  absl::MutexLock lock(&mu_);
  return max_unacked_;
}

int FakeBroker::consumers() const {
  absl::MutexLock lock(&mu_);
  int count = 0;
  for (const auto& [id, link] : links_) count += link.consuming.empty() ? 0 : 1;
  return count;
}

int FakeBroker::prefetch() const {
  absl::MutexLock lock(&mu_);
  return prefetches_.empty() ? 0 : prefetches_.back();
}

std::vector<int> FakeBroker::prefetches() const {
  absl::MutexLock lock(&mu_);
  return prefetches_;
}

int FakeBroker::stalled() const {
  absl::MutexLock lock(&mu_);
  return stalled_readers_;
}

std::vector<std::string> FakeBroker::errors() const {
  absl::MutexLock lock(&mu_);
  return errors_;
}

Topology FakeBroker::topology() const {
  absl::MutexLock lock(&mu_);
  return topology_;
}

int FakeBroker::NewLink() {
  absl::MutexLock lock(&mu_);
  const int id = next_link_++;
  links_[id];
  return id;
}

void FakeBroker::RemoveLink(int id) {
  absl::MutexLock lock(&mu_);
  links_.erase(id);
}

}  // namespace modeld::transport::amqp
