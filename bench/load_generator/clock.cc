#include "load_generator/clock.h"

#include <time.h>

#include <chrono>

namespace modeld::bench {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void SleepUntilNs(int64_t time_ns) {
  // steady_clock is CLOCK_MONOTONIC on Linux.
  const timespec until = {static_cast<time_t>(time_ns / 1000000000),
                          static_cast<long>(time_ns % 1000000000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, nullptr) != 0) {
  }
}

}  // namespace modeld::bench
