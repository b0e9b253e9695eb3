// Figures of the modeld process itself, read at scrape time.
#pragma once

#include <string>

namespace modeld::metrics {

// Appends modeld_process_resident_memory_bytes, modeld_process_cpu_seconds_total and
// modeld_process_open_fds (Prometheus text) read from /proc and getrusage().
void AppendProcessMetrics(std::string& out);

}  // namespace modeld::metrics
