// Metrics: counters, gauges and histograms with labels, rendered in Prometheus text format.
//
// One Registry per process, passed to whoever records (no globals). Recording is lock-free
// (atomics); creating a metric or rendering takes the registry's lock.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace modeld::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void Increment(uint64_t by = 1) { value_.fetch_add(by, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Cumulative buckets with upper bounds `bounds` (ascending) plus +Inf.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  const std::vector<double>& bounds() const { return bounds_; }
  // Observations <= bounds()[i] (cumulative); the last entry counts everything (+Inf).
  std::vector<uint64_t> CumulativeCounts() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // per bucket, not cumulative
  std::atomic<double> sum_{0};
  std::atomic<uint64_t> count_{0};
};

// Exponential bounds: start, start*factor, ... (count of them).
std::vector<double> ExponentialBounds(double start, double factor, int count);

// Thread-safe. Metrics live as long as the registry; references to them stay valid.
class Registry {
 public:
  // The metric `name` with `labels`, created on first use. A name keeps the type and help of
  // its first use.
  Counter& GetCounter(absl::string_view name, absl::string_view help, const Labels& labels);
  Gauge& GetGauge(absl::string_view name, absl::string_view help, const Labels& labels);
  Histogram& GetHistogram(absl::string_view name, absl::string_view help, const Labels& labels,
                          const std::vector<double>& bounds);

  // Appends text of metrics computed at render time (process figures, model states).
  // The collector must write whole, valid Prometheus families.
  void AddCollector(std::function<void(std::string& out)> collector);

  // Every metric in Prometheus text exposition format 0.0.4, families sorted by name.
  std::string Render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Family {
    Type type;
    std::string help;
    std::map<std::string, std::unique_ptr<Counter>> counters;  // by rendered labels
    std::map<std::string, std::unique_ptr<Gauge>> gauges;
    std::map<std::string, std::unique_ptr<Histogram>> histograms;
  };

  Family& FamilyFor(absl::string_view name, absl::string_view help, Type type)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, Family> families_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void(std::string&)>> collectors_ ABSL_GUARDED_BY(mu_);
};

// `{a="1",b="x"}` with Prometheus escaping; empty for no labels.
std::string RenderLabels(const Labels& labels);

}  // namespace modeld::metrics
