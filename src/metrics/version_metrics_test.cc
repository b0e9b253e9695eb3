#include "metrics/version_metrics.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metrics/process_metrics.h"

namespace modeld::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(VersionMetricsTest, RecordsOutcomesLatenciesAndBatches) {
  Registry registry;
  VersionMetrics metrics(registry, "mlp", "1");
  metrics.RecordRequest(absl::OkStatus(), absl::Milliseconds(2));
  metrics.RecordRequest(absl::OkStatus(), absl::Milliseconds(3));
  metrics.RecordRequest(absl::InvalidArgumentError("x"), absl::Microseconds(10));
  metrics.RecordQueueTime(absl::Microseconds(70));
  metrics.RecordBatch(8, absl::Microseconds(300));
  metrics.AddInFlight(2);
  metrics.AddInFlight(-1);
  const std::string text = registry.Render();
  EXPECT_THAT(text,
              HasSubstr("modeld_requests_total{model=\"mlp\",version=\"1\",outcome=\"ok\"} 2"));
  EXPECT_THAT(
      text,
      HasSubstr(
          "modeld_requests_total{model=\"mlp\",version=\"1\",outcome=\"invalid_argument\"} 1"));
  EXPECT_THAT(text, Not(HasSubstr("outcome=\"internal\"")));  // only outcomes that happened
  EXPECT_THAT(text,
              HasSubstr("modeld_request_duration_seconds_count{model=\"mlp\",version=\"1\"} 3"));
  EXPECT_THAT(text,
              HasSubstr("modeld_queue_duration_seconds_count{model=\"mlp\",version=\"1\"} 1"));
  EXPECT_THAT(text, HasSubstr("modeld_batch_size_bucket{model=\"mlp\",version=\"1\",le=\"8\"} 1"));
  EXPECT_THAT(text, HasSubstr("modeld_batch_size_bucket{model=\"mlp\",version=\"1\",le=\"4\"} 0"));
  EXPECT_THAT(text, HasSubstr("modeld_inflight_requests{model=\"mlp\",version=\"1\"} 1"));
}

TEST(VersionMetricsTest, DefaultRecordsNothing) {
  VersionMetrics metrics;
  metrics.RecordRequest(absl::OkStatus(), absl::Seconds(1));  // must not crash
  metrics.RecordBatch(1, absl::Seconds(1));
}

TEST(ProcessMetricsTest, ReportsPositiveFigures) {
  std::string text;
  AppendProcessMetrics(text);
  EXPECT_THAT(text, HasSubstr("# TYPE modeld_process_resident_memory_bytes gauge"));
  EXPECT_THAT(text, Not(HasSubstr("modeld_process_resident_memory_bytes 0\n")));
  EXPECT_THAT(text, HasSubstr("modeld_process_cpu_seconds_total "));
  EXPECT_THAT(text, Not(HasSubstr("modeld_process_open_fds 0\n")));
}

}  // namespace
}  // namespace modeld::metrics
