// IdleTrimmer: hands the memory a burst freed back to the system once modeld is idle.
//
// glibc keeps freed pages in its arenas: after a burst of large gRPC requests RSS stayed near
// 600 MiB where modeld started at 176, although nothing was live any more (malloc_trim brought
// it back). A supervisor or an orchestrator reads that RSS, so IdleTrimmer calls malloc_trim(0)
// off the request path, on a thread of its own, once no request has been in flight and none
// has finished for a whole period after some activity. It never runs while requests do.
#pragma once

#include <cstdint>
#include <functional>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace modeld::app {

// What the trimmer watches: requests in flight now, and requests finished so far.
struct Activity {
  int64_t in_flight = 0;
  int64_t finished = 0;
};

// Caps glibc's malloc arenas at the number of cores (at least 2), unless MALLOC_ARENA_MAX or
// GLIBC_TUNABLES sets them. glibc makes up to 8 per core, and each keeps what a burst freed in
// it; with fewer, the idle trim finds the freed pages together (bench/memory_burst.py: RSS 5 s
// after a 64-client burst 258 MiB with 16 arenas, 207 with 2, from 177 at start; throughput
// unchanged). Call first thing in main, before the threads modeld starts.
void LimitMallocArenas();

// Start once, Stop (or destroy) once.
class IdleTrimmer {
 public:
  // `activity` is called from the trimmer's thread and must be thread-safe; `trim` frees what
  // it can (malloc_trim by default; tests count calls).
  IdleTrimmer(std::function<Activity()> activity, absl::Duration period,
              std::function<void()> trim = nullptr);
  ~IdleTrimmer() { Stop(); }
  IdleTrimmer(const IdleTrimmer&) = delete;
  IdleTrimmer& operator=(const IdleTrimmer&) = delete;

  void Start();
  void Stop();

 private:
  // `finished`: the requests finished when Start was called.
  void Loop(int64_t finished);

  const std::function<Activity()> activity_;
  const absl::Duration period_;
  const std::function<void()> trim_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace modeld::app
