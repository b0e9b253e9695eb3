#include "metrics/registry.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::metrics {
namespace {

using ::testing::HasSubstr;

TEST(RegistryTest, RendersCountersAndGaugesWithLabels) {
  Registry registry;
  registry.GetCounter("modeld_x_total", "Things.", {{"model", "a\"b"}}).Increment(3);
  registry.GetCounter("modeld_x_total", "Things.", {{"model", "a\"b"}}).Increment();
  registry.GetGauge("modeld_y", "Level.", {}).Set(2.5);
  const std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("# HELP modeld_x_total Things.\n# TYPE modeld_x_total counter\n"));
  EXPECT_THAT(text, HasSubstr("modeld_x_total{model=\"a\\\"b\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE modeld_y gauge\nmodeld_y 2.5\n"));
}

TEST(RegistryTest, HistogramBucketsAreCumulative) {
  Registry registry;
  Histogram& h = registry.GetHistogram("modeld_h", "H.", {{"m", "x"}}, {1, 2, 4});
  for (double v : {0.5, 1.0, 3.0, 100.0}) h.Observe(v);
  const std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("modeld_h_bucket{m=\"x\",le=\"1\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("modeld_h_bucket{m=\"x\",le=\"2\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("modeld_h_bucket{m=\"x\",le=\"4\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("modeld_h_bucket{m=\"x\",le=\"+Inf\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("modeld_h_sum{m=\"x\"} 104.5\n"));
  EXPECT_THAT(text, HasSubstr("modeld_h_count{m=\"x\"} 4\n"));
}

TEST(RegistryTest, CollectorsAppendAtRenderTime) {
  Registry registry;
  int calls = 0;
  registry.AddCollector([&](std::string& out) {
    ++calls;
    out += "modeld_z 1\n";
  });
  EXPECT_THAT(registry.Render(), HasSubstr("modeld_z 1\n"));
  EXPECT_EQ(calls, 1);
}

TEST(RegistryTest, ExponentialBounds) {
  EXPECT_EQ(ExponentialBounds(1, 2, 4), (std::vector<double>{1, 2, 4, 8}));
}

}  // namespace
}  // namespace modeld::metrics
