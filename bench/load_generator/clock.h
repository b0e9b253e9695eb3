// The load generators' clock: steady-clock nanoseconds, and sleeping until such a time.
#pragma once

#include <cstdint>

namespace modeld::bench {

// std::chrono::steady_clock (CLOCK_MONOTONIC on Linux, shared by the processes of a machine).
int64_t NowNs();
void SleepUntilNs(int64_t time_ns);

}  // namespace modeld::bench
