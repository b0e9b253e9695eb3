#include "metrics/process_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace modeld::metrics {

void AppendProcessMetrics(std::string& out) {
  long pages_total = 0;
  long pages_resident = 0;
  std::ifstream("/proc/self/statm") >> pages_total >> pages_resident;
  const double rss = static_cast<double>(pages_resident) * sysconf(_SC_PAGESIZE);

  rusage usage = {};
  getrusage(RUSAGE_SELF, &usage);
  const double cpu = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
                     (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;

  int fds = 0;
  std::error_code error;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", error);
       !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
    ++fds;
  }

  absl::StrAppend(&out,
                  "# HELP modeld_process_resident_memory_bytes Resident memory of the process.\n"
                  "# TYPE modeld_process_resident_memory_bytes gauge\n"
                  "modeld_process_resident_memory_bytes ",
                  rss,
                  "\n# HELP modeld_process_cpu_seconds_total User and system CPU time used.\n"
                  "# TYPE modeld_process_cpu_seconds_total counter\n"
                  "modeld_process_cpu_seconds_total ",
                  cpu,
                  "\n# HELP modeld_process_open_fds Open file descriptors.\n"
                  "# TYPE modeld_process_open_fds gauge\n"
                  "modeld_process_open_fds ",
                  fds, "\n");
}

}  // namespace modeld::metrics
