#include "repository/residency.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/byte_size.h"

namespace modeld::repository {
namespace {

int64_t NonNegative(int64_t bytes) { return std::max<int64_t>(bytes, 0); }

// "10s", "2.5s": the flag takes seconds, so the message says it the way the flag is written.
std::string FlagSeconds(absl::Duration d) { return absl::StrCat(absl::ToDoubleSeconds(d), "s"); }

}  // namespace

Residency::Residency(int64_t budget_bytes, absl::Duration min_residency)
    : budget_(budget_bytes), min_residency_(min_residency) {}

const Residency::Model* Residency::Find(const std::string& model) const {
  auto it = models_.find(model);
  return it == models_.end() ? nullptr : &it->second;
}

void Residency::SetEstimate(const std::string& model, int64_t bytes) {
  models_[model].estimate = NonNegative(bytes);
}

void Residency::Loaded(const std::string& model, int64_t measured_bytes, absl::Time at) {
  Model& m = models_[model];
  // A reload replaces the copy that counted before: its old size leaves used_.
  if (m.loaded) used_ -= *m.measured;
  m.measured = NonNegative(measured_bytes);
  m.loaded = true;
  m.loaded_at = at;
  m.last_used = at;
  used_ += *m.measured;
}

void Residency::Unloaded(const std::string& model) {
  auto it = models_.find(model);
  if (it == models_.end() || !it->second.loaded) return;
  it->second.loaded = false;
  used_ -= *it->second.measured;
}

void Residency::Touch(const std::string& model, absl::Time at) {
  auto it = models_.find(model);
  if (it == models_.end() || !it->second.loaded) return;
  it->second.last_used = std::max(it->second.last_used, at);
}

void Residency::SetPinned(const std::string& model, bool pinned) { models_[model].pinned = pinned; }

void Residency::Forget(const std::string& model) {
  auto it = models_.find(model);
  if (it == models_.end()) return;
  if (it->second.loaded) used_ -= *it->second.measured;
  models_.erase(it);
}

std::optional<int64_t> Residency::Size(const std::string& model) const {
  const Model* m = Find(model);
  if (m == nullptr) return std::nullopt;
  return m->measured.has_value() ? m->measured : m->estimate;
}

bool Residency::IsLoaded(const std::string& model) const {
  const Model* m = Find(model);
  return m != nullptr && m->loaded;
}

bool Residency::Measured(const std::string& model) const {
  const Model* m = Find(model);
  return m != nullptr && m->measured.has_value();
}

absl::StatusOr<std::vector<std::string>> Residency::PlanLoad(
    const std::string& model, absl::Time now,
    const std::function<bool(const std::string&)>& busy) const {
  if (IsLoaded(model)) return std::vector<std::string>{};
  const std::optional<int64_t> size = Size(model);
  if (!size.has_value()) {
    return absl::NotFoundError(absl::StrCat(
        "model '", model, "' has no size known (neither estimated from its files nor measured)"));
  }
  const std::string needs =
      absl::StrCat("model '", model, "' needs about ", common::FormatBytes(*size), " (",
                   Measured(model) ? "measured at its last load" : "estimated from its files", ")");
  if (*size > budget_) {
    return absl::ResourceExhaustedError(
        absl::StrCat(needs, " and --model-memory-budget is ", common::FormatBytes(budget_)));
  }
  // How much must be freed. used_ may already exceed the budget (a measurement larger than
  // its estimate): then more than `size` must go.
  const int64_t to_free = used_ + *size - budget_;
  if (to_free <= 0) return std::vector<std::string>{};

  struct Candidate {
    absl::Time last_used;
    const std::string* name;
    int64_t size;
  };
  std::vector<Candidate> evictable;
  int64_t evictable_bytes = 0;
  struct Holder {
    int64_t size;
    std::string text;
  };
  std::vector<Holder> holders;
  // Each loaded model's state, `busy` asked once per model that could otherwise go.
  struct Loaded {
    const std::string* name;
    const Model* m;
    bool busy;
  };
  std::vector<Loaded> loaded;
  for (const auto& [name, m] : models_) {
    if (!m.loaded || name == model) continue;
    loaded.push_back({&name, &m, !m.pinned && busy && busy(name)});
  }
  // Least recently used first, strictly: a model used after one that is still under its
  // minimum residency is not evicted in that one's place (the hottest model would go first
  // otherwise, whenever the colder ones loaded recently). The caller waits instead.
  absl::Time oldest_protected_use = absl::InfiniteFuture();
  for (const Loaded& l : loaded) {
    if (!l.m->pinned && !l.busy && now - l.m->loaded_at < min_residency_) {
      oldest_protected_use = std::min(oldest_protected_use, l.m->last_used);
    }
  }
  for (const Loaded& l : loaded) {
    const std::string& name = *l.name;
    const Model& m = *l.m;
    const int64_t bytes = *m.measured;
    const std::string size_text = common::FormatBytes(bytes);
    if (m.pinned) {
      holders.push_back({bytes, absl::StrCat("'", name, "' (pinned, ", size_text, ")")});
    } else if (l.busy) {
      holders.push_back({bytes, absl::StrCat("'", name, "' (busy, ", size_text, ")")});
    } else if (now - m.loaded_at < min_residency_) {
      holders.push_back(
          {bytes,
           absl::StrCat("'", name, "' (loaded ",
                        absl::ToInt64Seconds(std::max(now - m.loaded_at, absl::ZeroDuration())),
                        " s ago, under --model-min-residency=", FlagSeconds(min_residency_), ", ",
                        size_text, ")")});
    } else if (m.last_used > oldest_protected_use) {
      holders.push_back({bytes, absl::StrCat("'", name, "' (used more recently than a model "
                                             "under --model-min-residency, ", size_text, ")")});
    } else {
      evictable.push_back({m.last_used, &name, bytes});
      evictable_bytes += bytes;
    }
  }

  if (evictable_bytes < to_free) {
    // The largest holders first: they are the ones worth pinning less or a bigger budget for.
    std::stable_sort(holders.begin(), holders.end(),
                     [](const Holder& a, const Holder& b) { return a.size > b.size; });
    std::vector<std::string> texts;
    texts.reserve(holders.size());
    for (Holder& h : holders) texts.push_back(std::move(h.text));
    const int64_t can_free = std::max<int64_t>(budget_ - used_, 0) + evictable_bytes;
    return absl::ResourceExhaustedError(
        absl::StrCat(needs, " and the budget of ", common::FormatBytes(budget_), " is held by ",
                     absl::StrJoin(texts, ", "), "; at most ", common::FormatBytes(can_free),
                     " can be made free"));
  }

  std::sort(evictable.begin(), evictable.end(), [](const Candidate& a, const Candidate& b) {
    return std::tie(a.last_used, *a.name) < std::tie(b.last_used, *b.name);
  });
  std::vector<std::string> plan;
  int64_t freed = 0;
  for (const Candidate& c : evictable) {
    if (freed >= to_free) break;
    plan.push_back(*c.name);
    freed += c.size;
  }
  return plan;
}

std::vector<std::string> Residency::PlanPreload(
    const std::vector<std::string>& models_in_order) const {
  std::vector<std::string> plan;
  std::set<std::string> seen;
  int64_t left = budget_ - used_;
  for (const std::string& model : models_in_order) {
    if (!seen.insert(model).second || IsLoaded(model)) continue;
    const std::optional<int64_t> size = Size(model);
    if (!size.has_value() || *size > left) continue;
    plan.push_back(model);
    left -= *size;
  }
  return plan;
}

}  // namespace modeld::repository
