// FakeCeleryQueue: an in-memory Celery queue and result store for the CeleryWorker's tests.
// The test pushes task messages and reads what the worker acknowledged, dead-lettered,
// published and stored; the worker reaches it through the brokers factory() makes (one per
// connection, like a real broker: closing one puts what it held back, marked redelivered)
// and the ResultBackend backend() makes. Test-only, header-only, thread-safe.
#pragma once

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "rapidjson/document.h"
#include "transport/celery/celery_broker.h"
#include "transport/celery/result_backend.h"

namespace modeld::transport::celery::testing {

class FakeCeleryQueue : public std::enable_shared_from_this<FakeCeleryQueue> {
 public:
  struct Stored {
    std::string task_id;
    std::string document;
  };

  static std::shared_ptr<FakeCeleryQueue> Make() { return std::make_shared<FakeCeleryQueue>(); }
  FakeCeleryQueue() : wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~FakeCeleryQueue() { close(wake_fd_); }

  // Queues a message with `headers_json` (a JSON object: the task's headers) and `body`.
  // Headers that do not parse make a delivery with that error, as a broker's wrapper would.
  void Push(const std::string& headers_json, const std::string& body,
            const std::string& reply_to = "") {
    TaskDelivery delivery;
    rapidjson::Document doc;
    doc.Parse(headers_json.data(), headers_json.size());
    if (doc.HasParseError() || !doc.IsObject()) {
      delivery.headers = absl::InvalidArgumentError("the headers are not a JSON object");
    } else {
      delivery.headers = HeadersFromJson(doc);
      if (delivery.headers.ok()) {
        delivery.headers->content_type = "application/json";
        delivery.headers->content_encoding = "utf-8";
        delivery.headers->correlation_id = delivery.headers->ids.id;
        delivery.headers->reply_to = reply_to;
      }
    }
    delivery.body = body;
    absl::MutexLock lock(&mu_);
    delivery.tag = ++next_tag_;
    ready_.push_back(std::move(delivery));
    Wake();
  }

  // What the worker did, in order.
  std::vector<uint64_t> Acked() const {
    absl::MutexLock lock(&mu_);
    return acked_;
  }
  std::vector<std::pair<uint64_t, std::string>> DeadLettered() const {
    absl::MutexLock lock(&mu_);
    return dead_;
  }
  std::vector<OutgoingTask> Published() const {
    absl::MutexLock lock(&mu_);
    return published_;
  }
  // Results stored by backend() and rpc replies, in order.
  std::vector<Stored> Results() const {
    absl::MutexLock lock(&mu_);
    return results_;
  }
  size_t Ready() const {
    absl::MutexLock lock(&mu_);
    return ready_.size();
  }
  size_t Unacked() const {
    absl::MutexLock lock(&mu_);
    return unacked_.size();
  }
  int prefetch() const {
    absl::MutexLock lock(&mu_);
    return prefetch_;
  }
  int opens() const {
    absl::MutexLock lock(&mu_);
    return opens_;
  }
  std::string declared() const {
    absl::MutexLock lock(&mu_);
    return declared_;
  }

  // Failure injection: the backend's stores fail while set; the next Flush fails once.
  void SetBackendDown(bool down) {
    absl::MutexLock lock(&mu_);
    backend_down_ = down;
  }
  void FailNextFlush() {
    absl::MutexLock lock(&mu_);
    fail_next_flush_ = true;
  }

  BrokerFactory factory() {
    return [self = shared_from_this()]() -> std::unique_ptr<CeleryBroker> {
      return std::make_unique<Broker>(self);
    };
  }
  std::unique_ptr<ResultBackend> backend() { return std::make_unique<Backend>(shared_from_this()); }

 private:
  class Broker final : public CeleryBroker {
   public:
    explicit Broker(std::shared_ptr<FakeCeleryQueue> queue) : q_(std::move(queue)) {}
    absl::Status Open(const std::string& queue) override {
      absl::MutexLock lock(&q_->mu_);
      ++q_->opens_;
      q_->declared_ = queue;
      open_ = true;
      return absl::OkStatus();
    }
    absl::Status Consume() override {
      consuming_ = true;
      return absl::OkStatus();
    }
    absl::Status Cancel() override {
      consuming_ = false;
      return absl::OkStatus();
    }
    absl::Status SetPrefetch(int count) override {
      absl::MutexLock lock(&q_->mu_);
      q_->prefetch_ = count;
      return absl::OkStatus();
    }
    absl::StatusOr<std::optional<TaskDelivery>> Next(absl::Duration timeout,
                                                     int wake_fd) override {
      if (!open_) return absl::UnavailableError("closed");
      const absl::Time deadline = absl::Now() + timeout;
      while (true) {
        {
          absl::MutexLock lock(&q_->mu_);
          uint64_t count = 0;
          (void)!read(q_->wake_fd_, &count, sizeof(count));
          if (consuming_ && !q_->ready_.empty() &&
              static_cast<int>(q_->unacked_.size()) < q_->prefetch_) {
            TaskDelivery delivery = std::move(q_->ready_.front());
            q_->ready_.pop_front();
            q_->unacked_.emplace(delivery.tag, delivery);
            return std::optional<TaskDelivery>(std::move(delivery));
          }
        }
        const absl::Duration left = deadline - absl::Now();
        if (left <= absl::ZeroDuration()) return std::optional<TaskDelivery>();
        pollfd fds[2] = {{q_->wake_fd_, POLLIN, 0}, {wake_fd, POLLIN, 0}};
        const int ready = poll(fds, wake_fd >= 0 ? 2 : 1,
                               static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
        if (ready > 0 && wake_fd >= 0 && (fds[1].revents & POLLIN) != 0) {
          return std::optional<TaskDelivery>();
        }
      }
    }
    absl::Status Publish(const OutgoingTask& task) override {
      absl::MutexLock lock(&q_->mu_);
      pending_.push_back(task);
      return absl::OkStatus();
    }
    absl::Status Reply(const std::string& reply_to, const std::string& task_id,
                       const std::string& document) override {
      absl::MutexLock lock(&q_->mu_);
      pending_replies_.push_back({task_id, absl::StrCat(reply_to, " ", document)});
      return absl::OkStatus();
    }
    absl::Status Flush() override {
      absl::MutexLock lock(&q_->mu_);
      if (q_->fail_next_flush_) {
        q_->fail_next_flush_ = false;
        return absl::UnavailableError("the fake broker dropped the connection");
      }
      for (OutgoingTask& task : pending_) q_->published_.push_back(std::move(task));
      for (Stored& reply : pending_replies_) q_->results_.push_back(std::move(reply));
      pending_.clear();
      pending_replies_.clear();
      return absl::OkStatus();
    }
    absl::Status Ack(uint64_t tag) override { return Settle(tag, nullptr); }
    absl::Status DeadLetter(uint64_t tag, absl::string_view reason) override {
      const std::string why(reason);
      return Settle(tag, &why);
    }
    void Close() override {
      absl::MutexLock lock(&q_->mu_);
      open_ = false;
      // Unacknowledged messages go back to the front, marked redelivered.
      for (auto it = q_->unacked_.rbegin(); it != q_->unacked_.rend(); ++it) {
        TaskDelivery delivery = std::move(it->second);
        delivery.redelivered = true;
        q_->ready_.push_front(std::move(delivery));
      }
      q_->unacked_.clear();
      q_->Wake();
    }

   private:
    absl::Status Settle(uint64_t tag, const std::string* dead_reason) {
      absl::MutexLock lock(&q_->mu_);
      if (q_->unacked_.erase(tag) == 0) {
        return absl::FailedPreconditionError(absl::StrCat("unknown delivery tag ", tag));
      }
      if (dead_reason != nullptr) {
        q_->dead_.emplace_back(tag, *dead_reason);
      } else {
        q_->acked_.push_back(tag);
      }
      q_->Wake();
      return absl::OkStatus();
    }

    std::shared_ptr<FakeCeleryQueue> q_;
    bool open_ = false;
    bool consuming_ = false;
    std::vector<OutgoingTask> pending_;
    std::vector<Stored> pending_replies_;
  };

  class Backend final : public ResultBackend {
   public:
    explicit Backend(std::shared_ptr<FakeCeleryQueue> queue) : q_(std::move(queue)) {}
    absl::Status Store(const std::vector<StoredResult>& results, CeleryBroker&) override {
      absl::MutexLock lock(&q_->mu_);
      if (q_->backend_down_) return absl::UnavailableError("the fake backend is down");
      for (const StoredResult& result : results) {
        q_->results_.push_back({result.task_id, result.document});
      }
      return absl::OkStatus();
    }
    std::string Describe() const override { return "fake://"; }

   private:
    std::shared_ptr<FakeCeleryQueue> q_;
  };

  void Wake() {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof(one));
  }

  const int wake_fd_;
  mutable absl::Mutex mu_;
  uint64_t next_tag_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<TaskDelivery> ready_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, TaskDelivery> unacked_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> acked_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<uint64_t, std::string>> dead_ ABSL_GUARDED_BY(mu_);
  std::vector<OutgoingTask> published_ ABSL_GUARDED_BY(mu_);
  std::vector<Stored> results_ ABSL_GUARDED_BY(mu_);
  int prefetch_ ABSL_GUARDED_BY(mu_) = 0;
  int opens_ ABSL_GUARDED_BY(mu_) = 0;
  std::string declared_ ABSL_GUARDED_BY(mu_);
  bool backend_down_ ABSL_GUARDED_BY(mu_) = false;
  bool fail_next_flush_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace modeld::transport::celery::testing
