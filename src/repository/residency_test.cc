#include "repository/residency.h"

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::repository {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr int64_t kMi = int64_t{1} << 20;
constexpr int64_t kGi = int64_t{1} << 30;

const absl::Time kStart = absl::FromUnixSeconds(1'700'000'000);
absl::Time At(int seconds) { return kStart + absl::Seconds(seconds); }

bool NoneBusy(const std::string&) { return false; }

class ResidencyTest : public ::testing::Test {
 protected:
  // 2 GiB, 10 s of minimum residency: the design's numbers.
  Residency residency_{2 * kGi, absl::Seconds(10)};

  void Load(const std::string& model, int64_t bytes, int at_seconds) {
    residency_.SetEstimate(model, bytes);
    residency_.Loaded(model, bytes, At(at_seconds));
  }

  std::vector<std::string> Plan(const std::string& model, int now_seconds,
                                const std::set<std::string>& busy = {}) {
    absl::StatusOr<std::vector<std::string>> plan = residency_.PlanLoad(
        model, At(now_seconds), [&](const std::string& m) { return busy.count(m) > 0; });
    EXPECT_TRUE(plan.ok()) << plan.status();
    return plan.ok() ? *plan : std::vector<std::string>{"<error>"};
  }

  absl::Status PlanError(const std::string& model, int now_seconds,
                         const std::set<std::string>& busy = {}) {
    absl::StatusOr<std::vector<std::string>> plan = residency_.PlanLoad(
        model, At(now_seconds), [&](const std::string& m) { return busy.count(m) > 0; });
    EXPECT_FALSE(plan.ok()) << "planned " << ::testing::PrintToString(*plan);
    return plan.status();
  }
};

TEST_F(ResidencyTest, NothingToEvictWhenTheLoadFits) {
  Load("a", 900 * kMi, 0);
  residency_.SetEstimate("b", 900 * kMi);
  EXPECT_THAT(Plan("b", 100), IsEmpty());
  // Exactly the budget fits.
  residency_.SetEstimate("c", 2 * kGi - 900 * kMi);
  EXPECT_THAT(Plan("c", 100), IsEmpty());
}

TEST_F(ResidencyTest, AnAlreadyLoadedModelNeedsNothing) {
  Load("a", 2 * kGi, 0);
  EXPECT_THAT(Plan("a", 100), IsEmpty());
}

TEST_F(ResidencyTest, EvictsTheLeastRecentlyLoadedFirstAndOnlyAsManyAsNeeded) {
  Load("a", 500 * kMi, 0);
  Load("b", 500 * kMi, 20);
  Load("c", 500 * kMi, 40);
  Load("d", 500 * kMi, 60);
  residency_.SetEstimate("e", 500 * kMi);
  EXPECT_THAT(Plan("e", 100), ElementsAre("a"));
  residency_.SetEstimate("big", 1200 * kMi);
  EXPECT_THAT(Plan("big", 100), ElementsAre("a", "b", "c"));
}

TEST_F(ResidencyTest, TouchReordersTheLeastRecentlyUsed) {
  Load("a", 700 * kMi, 0);
  Load("b", 700 * kMi, 20);
  Load("c", 600 * kMi, 40);
  residency_.Touch("a", At(50));
  residency_.SetEstimate("d", 500 * kMi);
  EXPECT_THAT(Plan("d", 100), ElementsAre("b"));
  residency_.Touch("b", At(60));
  EXPECT_THAT(Plan("d", 100), ElementsAre("c"));
  // An earlier time than the last one recorded does not move a model back.
  residency_.Touch("c", At(70));
  residency_.Touch("c", At(1));
  EXPECT_THAT(Plan("d", 100), ElementsAre("a"));
}

TEST_F(ResidencyTest, EqualLastUseEvictsByName) {
  Load("b", kGi, 0);
  Load("a", kGi, 0);
  residency_.SetEstimate("c", kGi);
  EXPECT_THAT(Plan("c", 100), ElementsAre("a"));
}

TEST_F(ResidencyTest, AReloadCountsAsANewUse) {
  Load("a", kGi, 0);
  Load("b", kGi, 20);
  residency_.Touch("a", At(30));
  residency_.Loaded("b", kGi, At(40));  // reloaded: its load is its last use
  residency_.SetEstimate("c", kGi);
  EXPECT_THAT(Plan("c", 100), ElementsAre("a"));
}

TEST_F(ResidencyTest, PinnedModelsAreNeverEvicted) {
  Load("a", 700 * kMi, 0);
  Load("b", 700 * kMi, 20);
  residency_.SetPinned("a", true);
  residency_.SetEstimate("c", 700 * kMi);
  EXPECT_THAT(Plan("c", 100), ElementsAre("b"));
  residency_.SetPinned("a", false);
  EXPECT_THAT(Plan("c", 100), ElementsAre("a"));
}

TEST_F(ResidencyTest, PinningIsKeptAcrossUnloadAndLoad) {
  residency_.SetPinned("a", true);
  Load("a", kGi, 0);
  residency_.Unloaded("a");
  residency_.Loaded("a", kGi, At(1));
  Load("b", kGi, 2);
  residency_.SetEstimate("c", kGi);
  EXPECT_THAT(Plan("c", 100), ElementsAre("b"));
}

TEST_F(ResidencyTest, BusyModelsAreNeverEvicted) {
  Load("a", 700 * kMi, 0);
  Load("b", 700 * kMi, 20);
  residency_.SetEstimate("c", 700 * kMi);
  EXPECT_THAT(Plan("c", 100, {"a"}), ElementsAre("b"));
  EXPECT_THAT(Plan("c", 100, {"b"}), ElementsAre("a"));
}

TEST_F(ResidencyTest, AnEmptyBusyMeansNoneAre) {
  Load("a", 2 * kGi, 0);
  residency_.SetEstimate("b", kGi);
  absl::StatusOr<std::vector<std::string>> plan = residency_.PlanLoad("b", At(100), nullptr);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(*plan, ElementsAre("a"));
}

TEST_F(ResidencyTest, BusyIsAskedOnlyAboutModelsThatCouldOtherwiseGo) {
  Load("pinned", 500 * kMi, 0);
  residency_.SetPinned("pinned", true);
  Load("a", 500 * kMi, 0);
  Load("b", 500 * kMi, 0);
  residency_.SetEstimate("unloaded", kGi);
  residency_.SetEstimate("c", kGi);
  std::vector<std::string> asked;
  ASSERT_TRUE(residency_
                  .PlanLoad("c", At(100),
                            [&](const std::string& m) {
                              asked.push_back(m);
                              return false;
                            })
                  .ok());
  EXPECT_THAT(asked, ElementsAre("a", "b"));
}

TEST_F(ResidencyTest, ModelsLoadedUnderTheMinimumResidencyAreNeverEvicted) {
  Load("a", kGi, 0);
  Load("b", kGi, 95);
  residency_.SetEstimate("c", kGi);
  EXPECT_THAT(Plan("c", 100), ElementsAre("a"));
  // "a" used at 99, after "b" (last used at 95, still under its minimum residency): evicting
  // "a" would send the hotter model away in the colder one's place, so nothing may go yet...
  residency_.Touch("a", At(99));
  EXPECT_THAT(PlanError("c", 100).message(),
              HasSubstr("'a' (used more recently than a model under --model-min-residency"));
  // ...until "b" may go: then it is the least recently used.
  EXPECT_THAT(Plan("c", 105), ElementsAre("b"));
  // At exactly the minimum residency a model may go.
  residency_.Unloaded("a");
  residency_.SetEstimate("d", kGi);
  residency_.Loaded("c", kGi, At(100));
  EXPECT_THAT(Plan("d", 105), ElementsAre("b"));
  EXPECT_THAT(PlanError("d", 104).code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(ResidencyTest, TheModelItselfIsNeverInItsPlan) {
  // "a" is known with a measurement and an entry, not loaded; "b" fills the budget.
  Load("a", kGi, 0);
  residency_.Unloaded("a");
  Load("b", 2 * kGi, 10);
  EXPECT_THAT(Plan("a", 100), ElementsAre("b"));
  // Another case: a loaded model asks for nothing, not for itself.
  EXPECT_THAT(Plan("b", 100), IsEmpty());
}

TEST_F(ResidencyTest, AModelLargerThanTheBudgetFailsWithBothSizesEstimated) {
  residency_.SetEstimate("big", static_cast<int64_t>(3.1 * static_cast<double>(kGi)));
  const absl::Status status = PlanError("big", 0);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(status.message(),
            "model 'big' needs about 3.1 GiB (estimated from its files) and "
            "--model-memory-budget is 2.0 GiB");
}

TEST_F(ResidencyTest, AModelLargerThanTheBudgetFailsWithBothSizesMeasured) {
  // Its estimate fit; its measured load did not.
  residency_.SetEstimate("big", kGi);
  residency_.Loaded("big", 3 * kGi, At(0));
  residency_.Unloaded("big");
  const absl::Status status = PlanError("big", 100);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(status.message(),
            "model 'big' needs about 3.0 GiB (measured at its last load) and "
            "--model-memory-budget is 2.0 GiB");
}

TEST_F(ResidencyTest, NotEnoughToEvictNamesWhatHoldsTheBudgetAndWhy) {
  Load("c", 300 * kMi, 97);
  Load("a", 900 * kMi, 0);
  Load("b", 700 * kMi, 0);
  residency_.SetPinned("a", true);
  residency_.SetEstimate("x", kGi + 200 * kMi);
  const absl::Status status = PlanError("x", 100, {"b"});
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  // Used: 1900 MiB of 2048; free 148 MiB, nothing may go.
  EXPECT_EQ(status.message(),
            "model 'x' needs about 1.2 GiB (estimated from its files) and the budget of "
            "2.0 GiB is held by 'a' (pinned, 900 MiB), 'b' (busy, 700 MiB), 'c' (loaded 3 s "
            "ago, under --model-min-residency=10s, 300 MiB); at most 148 MiB can be made free");
}

TEST_F(ResidencyTest, NotEnoughToEvictCountsWhatMayGoButListsOnlyWhatCannot) {
  Load("a", 900 * kMi, 0);
  Load("d", 100 * kMi, 0);
  Load("b", 1000 * kMi, 0);
  residency_.SetPinned("a", true);
  residency_.SetEstimate("x", 1100 * kMi);
  const absl::Status status = PlanError("x", 100, {"b"});
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("(estimated from its files)"));
  EXPECT_THAT(status.message(),
              HasSubstr("is held by 'b' (busy, 1000 MiB), 'a' (pinned, 900 MiB); at most "
                        "148 MiB can be made free"));
  EXPECT_THAT(status.message(), ::testing::Not(HasSubstr("'d'")));
  // Once "b" is idle, "b" and "d" go: the least recently used first, equal times by name.
  EXPECT_THAT(Plan("x", 100), ElementsAre("b", "d"));
}

TEST_F(ResidencyTest, MinimumResidencyIsWrittenAsTheFlagTakesIt) {
  Residency residency(kGi, absl::Milliseconds(2500));
  residency.SetEstimate("a", kGi);
  residency.Loaded("a", kGi, At(0));
  // "b" loaded once before, at half its estimate.
  residency.SetEstimate("b", kGi);
  residency.Loaded("b", kGi / 2, At(-100));
  residency.Unloaded("b");
  absl::StatusOr<std::vector<std::string>> plan = residency.PlanLoad("b", At(1), NoneBusy);
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(plan.status().message(),
              HasSubstr("'a' (loaded 1 s ago, under --model-min-residency=2.5s, 1.0 GiB)"));
  EXPECT_THAT(plan.status().message(),
              HasSubstr("model 'b' needs about 512 MiB (measured at its last load) and the "
                        "budget of 1.0 GiB is held by 'a'"));
}

TEST_F(ResidencyTest, AModelWithNoSizeKnownIsNotFound) {
  EXPECT_EQ(PlanError("nobody", 0).code(), absl::StatusCode::kNotFound);
  residency_.SetPinned("pinned-only", true);
  const absl::Status status = PlanError("pinned-only", 0);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("model 'pinned-only' has no size known"));
}

TEST_F(ResidencyTest, SizeIsTheMeasurementOnceLoadedAndRememberedAfterUnload) {
  EXPECT_EQ(residency_.Size("a"), std::nullopt);
  EXPECT_FALSE(residency_.Measured("a"));
  residency_.SetEstimate("a", 400 * kMi);
  EXPECT_EQ(residency_.Size("a"), 400 * kMi);
  EXPECT_FALSE(residency_.Measured("a"));
  residency_.Loaded("a", 650 * kMi, At(0));
  EXPECT_EQ(residency_.Size("a"), 650 * kMi);
  EXPECT_TRUE(residency_.Measured("a"));
  residency_.Unloaded("a");
  EXPECT_FALSE(residency_.IsLoaded("a"));
  EXPECT_EQ(residency_.Size("a"), 650 * kMi);
  EXPECT_TRUE(residency_.Measured("a"));
  // A new estimate does not override a measurement.
  residency_.SetEstimate("a", 100 * kMi);
  EXPECT_EQ(residency_.Size("a"), 650 * kMi);
  // The remembered size plans the next load: 1500 MiB loaded + 650 > 2048.
  Load("b", 1500 * kMi, 10);
  EXPECT_THAT(Plan("a", 100), ElementsAre("b"));
  // Forget drops it all.
  residency_.Forget("a");
  EXPECT_EQ(residency_.Size("a"), std::nullopt);
  EXPECT_FALSE(residency_.Measured("a"));
}

TEST_F(ResidencyTest, UsedFollowsLoadsUnloadsReloadsAndForgets) {
  EXPECT_EQ(residency_.budget(), 2 * kGi);
  EXPECT_EQ(residency_.used(), 0);
  residency_.SetEstimate("a", 300 * kMi);
  EXPECT_EQ(residency_.used(), 0);  // an estimate is not memory in use
  residency_.Loaded("a", 400 * kMi, At(0));
  EXPECT_TRUE(residency_.IsLoaded("a"));
  EXPECT_EQ(residency_.used(), 400 * kMi);
  residency_.Loaded("b", 500 * kMi, At(1));
  EXPECT_EQ(residency_.used(), 900 * kMi);
  residency_.Loaded("a", 450 * kMi, At(2));  // reload: replaces, not adds
  EXPECT_EQ(residency_.used(), 950 * kMi);
  residency_.Unloaded("a");
  EXPECT_EQ(residency_.used(), 500 * kMi);
  residency_.Unloaded("a");  // twice: no-op
  residency_.Unloaded("nobody");
  EXPECT_EQ(residency_.used(), 500 * kMi);
  residency_.Touch("a", At(3));  // unloaded: no-op, no effect on used
  residency_.Forget("a");        // not loaded: used unchanged
  EXPECT_EQ(residency_.used(), 500 * kMi);
  residency_.Forget("b");  // loaded: its size leaves used
  EXPECT_EQ(residency_.used(), 0);
  EXPECT_FALSE(residency_.IsLoaded("b"));
  residency_.Loaded("c", -5, At(4));  // a negative measurement counts as 0
  EXPECT_EQ(residency_.used(), 0);
  EXPECT_EQ(residency_.Size("c"), 0);
}

TEST_F(ResidencyTest, UsedOverTheBudgetEvictsEnoughToComeBackUnder) {
  // Estimated 1 GiB each, measured larger: 2.5 GiB used of 2.
  residency_.Loaded("a", 1280 * kMi, At(0));
  residency_.Loaded("b", 1280 * kMi, At(1));
  residency_.SetEstimate("c", 100 * kMi);
  EXPECT_THAT(Plan("c", 100), ElementsAre("a"));
  residency_.SetEstimate("d", 800 * kMi);
  EXPECT_THAT(Plan("d", 100), ElementsAre("a", "b"));
}

TEST_F(ResidencyTest, PreloadTakesModelsInOrderWhileTheyFitAndSkipsOnesThatDoNot) {
  residency_.SetEstimate("a", 800 * kMi);
  residency_.SetEstimate("b", 900 * kMi);
  residency_.SetEstimate("c", 500 * kMi);  // does not fit after a and b
  residency_.SetEstimate("d", 300 * kMi);  // fits in what is left
  residency_.SetEstimate("e", 100 * kMi);  // does not: 2000 + 100 > 2048
  residency_.SetEstimate("huge", 3 * kGi);
  EXPECT_THAT(residency_.PlanPreload({"huge", "a", "b", "c", "d", "e"}),
              ElementsAre("a", "b", "d"));
  // Order decides: the repository order, not the size.
  EXPECT_THAT(residency_.PlanPreload({"c", "b", "a", "d", "e"}), ElementsAre("c", "b", "d", "e"));
}

TEST_F(ResidencyTest, PreloadSkipsLoadedUnknownAndRepeatedModelsAndCountsUsed) {
  Load("loaded", kGi, 0);
  residency_.SetEstimate("a", 600 * kMi);
  residency_.SetEstimate("b", 600 * kMi);
  EXPECT_THAT(residency_.PlanPreload({"loaded", "unknown", "a", "a", "b"}), ElementsAre("a"));
  EXPECT_THAT(residency_.PlanPreload({}), IsEmpty());
}

TEST_F(ResidencyTest, PreloadFillsExactlyTheBudget) {
  residency_.SetEstimate("a", kGi);
  residency_.SetEstimate("b", kGi);
  residency_.SetEstimate("c", 1);
  EXPECT_THAT(residency_.PlanPreload({"a", "b", "c"}), ElementsAre("a", "b"));
}

}  // namespace
}  // namespace modeld::repository
