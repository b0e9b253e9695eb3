#include "common/thread_priority.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace modeld::common {
namespace {

std::atomic<int> model_thread_nice{0};

id_t ThisThread() { return static_cast<id_t>(syscall(SYS_gettid)); }

}  // namespace

void SetModelThreadNice(int nice) { model_thread_nice.store(nice); }

int ModelThreadNice() { return model_thread_nice.load(); }

void EnterModelThread() {
  const int nice = model_thread_nice.load();
  if (nice != 0) setpriority(PRIO_PROCESS, ThisThread(), CurrentThreadNice() + nice);
}

int CurrentThreadNice() {
  errno = 0;
  return getpriority(PRIO_PROCESS, ThisThread());
}

}  // namespace modeld::common
