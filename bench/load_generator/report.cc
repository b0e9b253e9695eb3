#include "load_generator/report.h"

#include <sys/resource.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace modeld::bench {
namespace {

std::string Quote(absl::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out.push_back(c);
    }
  }
  return out + "\"";
}

std::string Number(double value) { return absl::StrFormat("%.6g", value); }

std::string Latency(const LatencySummary& s) {
  return absl::StrCat("{\"count\": ", s.count, ", \"mean_us\": ", Number(s.mean_us),
                      ", \"p50_us\": ", Number(s.p50_us), ", \"p90_us\": ", Number(s.p90_us),
                      ", \"p99_us\": ", Number(s.p99_us), ", \"max_us\": ", Number(s.max_us), "}");
}

template <typename V, typename F>
std::string Object(const std::map<std::string, V>& map, F format) {
  std::vector<std::string> fields;
  for (const auto& [key, value] : map)
    fields.push_back(absl::StrCat(Quote(key), ": ", format(value)));
  return absl::StrCat("{", absl::StrJoin(fields, ", "), "}");
}

std::string Level(const LevelResult& r) {
  return absl::StrCat(
      "    {\"mode\": ", Quote(r.mode), ", \"level\": ", Number(r.level),
      ", \"seconds\": ", Number(r.seconds), ", \"sent\": ", r.sent,
      ", \"successes\": ", r.successes, ", \"throughput\": ", Number(r.throughput),
      ", \"items_per_second\": ", Number(r.items_per_second),
      ",\n     \"latency\": ", Latency(r.latency),
      ",\n     \"rejected_latency\": ", Latency(r.rejected_latency),
      ",\n     \"errors\": ", Object(r.errors, [](int64_t v) { return absl::StrCat(v); }),
      ", \"error_examples\": ",
      Object(r.error_examples, [](const std::string& v) { return Quote(v); }),
      ",\n     \"offered_rate\": ", Number(r.offered_rate),
      ", \"client_skipped\": ", r.client_skipped,
      ", \"max_send_lag_us\": ", Number(r.max_send_lag_us),
      ", \"client_cpu_cores\": ", Number(r.client_cpu_cores), ", \"misrouted\": ", r.misrouted,
      "}");
}

}  // namespace

absl::Status WriteJson(const std::string& path, const RunInfo& info,
                       const std::vector<LevelResult>& levels) {
  std::vector<std::string> rows;
  for (const LevelResult& level : levels) rows.push_back(Level(level));
  const std::string text =
      absl::StrCat("{\"target\": ", Quote(info.target), ", \"model\": ", Quote(info.model),
                   ", \"input\": ", Quote(info.input), ", \"batch\": ", info.batch,
                   ", \"payload_bytes\": ", info.payload_bytes, ", \"channels\": ", info.channels,
                   ", \"warmup_seconds\": ", Number(info.warmup_seconds), ",\n  \"levels\": [\n",
                   absl::StrJoin(rows, ",\n"), "\n  ]\n}\n");
  std::ofstream out(path);
  out << text;
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

std::string MarkdownTable(const std::vector<LevelResult>& levels) {
  if (levels.empty()) return "";
  const bool open_loop = levels.front().mode == "rate";
  std::string out = absl::StrCat(
      "| ", open_loop ? "rate (req/s) | sent/s" : "concurrency",
      " | req/s | items/s | p50 µs | p90 µs | p99 µs | max µs | errors | client CPU |\n",
      open_loop ? "|---|---" : "|---", "|---|---|---|---|---|---|---|---|\n");
  for (const LevelResult& r : levels) {
    std::vector<std::string> errors;
    for (const auto& [code, count] : r.errors) errors.push_back(absl::StrCat(code, " ", count));
    absl::StrAppend(&out, "| ", Number(r.level));
    if (open_loop) absl::StrAppend(&out, " | ", absl::StrFormat("%.0f", r.offered_rate));
    absl::StrAppend(
        &out,
        absl::StrFormat(" | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %s | %.2f |\n", r.throughput,
                        r.items_per_second, r.latency.p50_us, r.latency.p90_us, r.latency.p99_us,
                        r.latency.max_us, errors.empty() ? "0" : absl::StrJoin(errors, ", "),
                        r.client_cpu_cores));
  }
  return out;
}

double ProcessCpuSeconds() {
  rusage usage = {};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace modeld::bench
