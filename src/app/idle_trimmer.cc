#include "app/idle_trimmer.h"

#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>

namespace modeld::app {

void LimitMallocArenas() {
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (std::getenv("MALLOC_ARENA_MAX") != nullptr ||
      (tunables != nullptr && std::strstr(tunables, "arena_max") != nullptr)) {
    return;  // the user's setting
  }
  mallopt(M_ARENA_MAX, std::max(2, static_cast<int>(std::thread::hardware_concurrency())));
}

IdleTrimmer::IdleTrimmer(std::function<Activity()> activity, absl::Duration period,
                         std::function<void()> trim)
    : activity_(std::move(activity)),
      period_(period),
      trim_(trim != nullptr ? std::move(trim) : [] { malloc_trim(0); }) {}

void IdleTrimmer::Start() {
  // Read here, not on the thread: activity from the moment Start returns counts.
  const int64_t finished = activity_().finished;
  thread_ = std::thread([this, finished] { Loop(finished); });
}

void IdleTrimmer::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

void IdleTrimmer::Loop(int64_t finished) {
  int64_t seen = finished;     // finished requests at the last look
  int64_t trimmed = finished;  // ... when memory was last handed back
  while (!stop_.WaitForNotificationWithTimeout(period_)) {
    const Activity now = activity_();
    // Idle for the whole period that just ended, after requests since the last trim.
    if (now.in_flight == 0 && now.finished == seen && now.finished != trimmed) {
      trim_();
      trimmed = now.finished;
    }
    seen = now.finished;
  }
}

}  // namespace modeld::app
