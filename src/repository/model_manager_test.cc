#include "repository/model_manager.h"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "backend/fake/fake_backend.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/fake_model_config.h"
#include "testing/temp_repository.h"

namespace modeld::repository {
namespace {

using ::modeld::testing::FakeModelConfig;
using ::testing::HasSubstr;
using ::testing::Not;

class ModelManagerTest : public ::testing::Test {
 protected:
  ModelManagerTest() {
    auto fake = std::make_unique<backend::FakeBackend>();
    fake_ = fake.get();
    backends_.Register("fake", {"fake_platform"}, std::move(fake));
  }

  testing::TempRepository repo_;
  backend::BackendRegistry backends_;
  backend::FakeBackend* fake_;
  common::RealClock clock_;
  batching::SchedulerFactory factory_ = batching::MakeSchedulerFactory(clock_);
};

TEST_F(ModelManagerTest, ServesTheNewestVersionByDefault) {
  repo_.AddModel("m", FakeModelConfig("version_policy { all {} }"), {1, 3, 2});
  ModelManager manager(repo_.path(), backends_, factory_);
  ASSERT_TRUE(manager.LoadAll().ok());
  absl::StatusOr<ModelHandle> newest = manager.Get("m", std::nullopt);
  ASSERT_TRUE(newest.ok()) << newest.status();
  EXPECT_EQ((*newest)->version(), 3);
  absl::StatusOr<ModelHandle> first = manager.Get("m", 1);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ((*first)->version(), 1);
  EXPECT_EQ(fake_->load_count(), 3);
  absl::StatusOr<core::ModelStatus> status = manager.Status("m");
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(status->ready());
  EXPECT_EQ(status->versions.size(), 3u);
}

TEST_F(ModelManagerTest, LoadsOneModelPerInstance) {
  repo_.AddModel("m",
                 FakeModelConfig("instance_group [ { count: 2 }, { count: 1 kind: KIND_CPU } ]"));
  ModelManager manager(repo_.path(), backends_, factory_);
  ASSERT_TRUE(manager.LoadAll().ok());
  EXPECT_EQ(fake_->load_count(), 3);
}

TEST_F(ModelManagerTest, UnknownModelAndVersionAreNotFound) {
  repo_.AddModel("m", FakeModelConfig(), {4});
  ModelManager manager(repo_.path(), backends_, factory_);
  ASSERT_TRUE(manager.LoadAll().ok());
  absl::Status unknown = manager.Get("nope", std::nullopt).status();
  EXPECT_EQ(unknown.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.message(), HasSubstr("unknown model 'nope'"));
  absl::Status version = manager.Get("m", 9).status();
  EXPECT_EQ(version.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(version.message(), HasSubstr("has no version 9 (ready versions: 4)"));
  EXPECT_EQ(manager.Status("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ModelManagerTest, BrokenModelsAreReportedAndOthersServe) {
  repo_.AddModel("good", FakeModelConfig());
  repo_.AddModel("bad_config", "not_a_field: 1\n");
  repo_.AddModel("bad_backend",
                 absl::StrCat("platform: \"onnxruntime_onnx\"\n",
                              "input { name: \"x\" data_type: TYPE_FP32 dims: [1] }\n",
                              "output { name: \"y\" data_type: TYPE_FP32 dims: [1] }"));
  repo_.AddModel("no_versions", FakeModelConfig(), {});
  repo_.AddModel(
      "load_fails",
      FakeModelConfig("parameters { key: \"load_error\" value { string_value: \"boom\" } }"));
  repo_.AddModel("missing_specific",
                 FakeModelConfig("version_policy { specific { versions: [1, 2] } }"));
  ModelManager manager(repo_.path(), backends_, factory_);
  ASSERT_TRUE(manager.LoadAll().ok());

  EXPECT_TRUE(manager.Get("good", std::nullopt).ok());
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"bad_config", "not_a_field"},
      {"bad_backend", "platform 'onnxruntime_onnx' is not available"},
      {"no_versions", "no version folder"},
      {"load_fails", "boom"},
  };
  for (const auto& [name, reason] : expected) {
    absl::Status status = manager.Get(name, std::nullopt).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << name;
    EXPECT_THAT(status.message(), HasSubstr(reason)) << name;
    absl::StatusOr<core::ModelStatus> model = manager.Status(name);
    ASSERT_TRUE(model.ok());
    EXPECT_FALSE(model->ready());
    EXPECT_THAT(model->UnavailableReason(), HasSubstr(reason));
  }
  // A specific version with no folder fails alone; the one that exists serves.
  EXPECT_TRUE(manager.Get("missing_specific", 1).ok());
  absl::Status missing = manager.Get("missing_specific", 2).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(missing.message(), HasSubstr("does not exist"));
  EXPECT_EQ(manager.StatusAll().size(), 6u);
}

TEST_F(ModelManagerTest, UnreadableRepositoryFails) {
  ModelManager manager("/nonexistent/repository", backends_, factory_);
  EXPECT_EQ(manager.LoadAll().code(), absl::StatusCode::kNotFound);
}

TEST_F(ModelManagerTest, AnnounceShowsEveryModelLoadingWithoutOpeningAny) {
  repo_.AddModel("all", FakeModelConfig("version_policy { all {} }"), {1, 2});
  repo_.AddModel("newest", FakeModelConfig(), {1, 5});
  repo_.AddModel("broken", "not_a_field: 1\n", {3});
  ModelManager manager(repo_.path(), backends_, factory_);
  ASSERT_TRUE(manager.Announce().ok());
  EXPECT_EQ(fake_->load_count(), 0);
  EXPECT_TRUE(manager.Loading());
  auto versions = [&](const std::string& name) {
    std::vector<std::pair<int64_t, core::VersionState>> out;
    absl::StatusOr<core::ModelStatus> status = manager.Status(name);
    EXPECT_TRUE(status.ok()) << status.status();
    if (status.ok()) {
      for (const core::VersionStatus& v : status->versions) out.push_back({v.version, v.state});
    }
    return out;
  };
  using State = core::VersionState;
  EXPECT_THAT(versions("all"), ::testing::ElementsAre(std::pair{int64_t{1}, State::kLoading},
                                                      std::pair{int64_t{2}, State::kLoading}));
  EXPECT_THAT(versions("newest"),
              ::testing::ElementsAre(std::pair{int64_t{5}, State::kLoading}));
  EXPECT_THAT(versions("broken"),
              ::testing::ElementsAre(std::pair{int64_t{3}, State::kLoading}));
  // A request meets a model that is loading, not an unknown one.
  absl::Status loading = manager.Get("newest", std::nullopt).status();
  EXPECT_EQ(loading.code(), absl::StatusCode::kUnavailable) << loading;
  EXPECT_THAT(loading.message(), HasSubstr("is loading"));
  // LoadAll() then loads what loads and reports what does not.
  ASSERT_TRUE(manager.LoadAll().ok());
  EXPECT_TRUE(manager.Get("newest", std::nullopt).ok());
  EXPECT_EQ(fake_->load_count(), 3);
  absl::StatusOr<core::ModelStatus> broken = manager.Status("broken");
  ASSERT_TRUE(broken.ok());
  EXPECT_FALSE(broken->ready());
  EXPECT_THAT(broken->reason, HasSubstr("not_a_field"));
}

TEST_F(ModelManagerTest, ASavedModelWithoutTheTensorFlowBackendIsRefusedSayingSo) {
  // The fake backend alone: as in a modeld built without TensorFlow.
  repo_.AddModel("no_config", "", {1});
  std::filesystem::remove(repo_.path() / "no_config" / "config.pbtxt");
  std::ofstream(repo_.path() / "no_config" / "1" / "saved_model.pb") << "graph";
  repo_.AddModel("with_config", "platform: \"tensorflow_savedmodel\"\n", {1});
  ModelManager manager(repo_.path(), backends_, factory_);
  ASSERT_TRUE(manager.LoadAll().ok());
  for (const char* name : {"no_config", "with_config"}) {
    absl::StatusOr<core::ModelStatus> status = manager.Status(name);
    ASSERT_TRUE(status.ok()) << name;
    EXPECT_FALSE(status->ready()) << name;
    EXPECT_THAT(status->reason, HasSubstr("built without its TensorFlow backend")) << name;
  }
}

TEST_F(ModelManagerTest, UnreadableRepositoryFailsToAnnounce) {
  ModelManager manager("/nonexistent/repository", backends_, factory_);
  EXPECT_EQ(manager.Announce().code(), absl::StatusCode::kNotFound);
}

TEST_F(ModelManagerTest, HandleKeepsTheVersionAliveAfterTheManagerIsGone) {
  repo_.AddModel("m", FakeModelConfig());
  ModelHandle handle;
  {
    ModelManager manager(repo_.path(), backends_, factory_);
    ASSERT_TRUE(manager.LoadAll().ok());
    handle = *manager.Get("m", std::nullopt);
  }
  EXPECT_EQ(handle->config().name, "m");
  EXPECT_EQ(handle->version(), 1);
}

// A backend whose Load() waits until the test opens the gate.
class GatedBackend : public backend::Backend {
 public:
  absl::StatusOr<std::unique_ptr<backend::Model>> Load(
      const core::ModelConfig& config, const std::filesystem::path& version_dir) override {
    entered_.Notify();
    gate_.WaitForNotification();
    return fake_.Load(config, version_dir);
  }
  absl::Notification entered_;
  absl::Notification gate_;

 private:
  backend::FakeBackend fake_;
};

TEST_F(ModelManagerTest, LoadingIsVisibleUntilEveryVersionHasLoaded) {
  auto gated = std::make_unique<GatedBackend>();
  GatedBackend* gate = gated.get();
  backends_.Register("gated", {}, std::move(gated));
  repo_.AddModel("slow", R"pb(
    backend: "gated"
    input {
      name: "x"
      data_type: TYPE_FP32
      dims: [ 1 ]
    }
    output {
      name: "y"
      data_type: TYPE_FP32
      dims: [ 1 ]
    }
  )pb");
  ModelManager manager(repo_.path(), backends_, factory_);
  std::thread loader([&] { EXPECT_TRUE(manager.LoadAll().ok()); });
  ASSERT_TRUE(gate->entered_.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(manager.Loading());
  absl::StatusOr<core::ModelStatus> status = manager.Status("slow");
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(status->versions.size(), 1u);
  EXPECT_EQ(status->versions[0].state, core::VersionState::kLoading);
  absl::Status not_yet = manager.Get("slow", std::nullopt).status();
  EXPECT_EQ(not_yet.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(not_yet.message(), HasSubstr("is loading"));
  gate->gate_.Notify();
  loader.join();
  EXPECT_FALSE(manager.Loading());
  EXPECT_TRUE(manager.Get("slow", std::nullopt).ok());
}

// A backend that completes configs the way the TensorFlow backend does from a signature:
// folders holding `model.self` need no config.pbtxt.
class SelfDescribingBackend : public backend::FakeBackend {
 public:
  bool ServesWithoutConfig(const std::filesystem::path& version_dir) override {
    return std::filesystem::exists(version_dir / "model.self");
  }
  absl::Status CompleteConfig(const std::filesystem::path& version_dir,
                              inference::ModelConfig& config) override {
    completed_from_ = version_dir;
    if (config.input().empty()) {
      auto* input = config.add_input();
      input->set_name("x");
      input->set_data_type(inference::TYPE_FP32);
      input->add_dims(2);
    }
    if (config.output().empty()) {
      auto* output = config.add_output();
      output->set_name("y");
      output->set_data_type(inference::TYPE_FP32);
      output->add_dims(2);
    }
    if (config.input(0).data_type() != inference::TYPE_FP32) {
      return absl::InvalidArgumentError("input 'x' is declared otherwise than the model says");
    }
    return absl::OkStatus();
  }
  std::filesystem::path completed_from_;
};

class CompletionTest : public ModelManagerTest {
 protected:
  CompletionTest() {
    auto backend = std::make_unique<SelfDescribingBackend>();
    backend_ = backend.get();
    backends_.Register("self", {"self_platform"}, std::move(backend));
  }
  SelfDescribingBackend* backend_;
};

TEST_F(CompletionTest, AFolderWithoutConfigIsServedWhenABackendRecognisesItsNewestVersion) {
  repo_.WriteFile("auto/1/model.self", "");
  repo_.WriteFile("auto/2/model.self", "");
  repo_.WriteFile("plain/1/model.pt", "");  // recognised by nobody
  ModelManager manager(repo_.path(), backends_, factory_);
  ASSERT_TRUE(manager.LoadAll().ok());
  absl::StatusOr<core::ModelStatus> status = manager.Status("auto");
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(status->ready()) << status->UnavailableReason();
  ASSERT_NE(status->config, nullptr);
  EXPECT_EQ(status->config->platform, "self_platform");
  EXPECT_EQ(status->config->inputs.at(0).name, "x");
  EXPECT_EQ(backend_->completed_from_, repo_.path() / "auto" / "2");

  absl::StatusOr<core::ModelStatus> plain = manager.Status("plain");
  ASSERT_TRUE(plain.ok());
  EXPECT_FALSE(plain->ready());
  EXPECT_THAT(plain->reason, HasSubstr("config.pbtxt: cannot be read"));
  EXPECT_THAT(plain->reason, HasSubstr("a TorchScript model.pt needs a config.pbtxt"));
}

TEST_F(CompletionTest, AFolderWithoutConfigOrTorchScriptIsNotToldToWriteAConfig) {
  repo_.WriteFile("keras/1/model.keras", "PK");
  ModelManager manager(repo_.path(), backends_, factory_);
  ASSERT_TRUE(manager.LoadAll().ok());
  absl::StatusOr<core::ModelStatus> keras = manager.Status("keras");
  ASSERT_TRUE(keras.ok());
  EXPECT_THAT(keras->reason, HasSubstr("is a model modeld serves without one"));
  EXPECT_THAT(keras->reason, Not(HasSubstr("TorchScript")));
  EXPECT_THAT(keras->reason, HasSubstr("hint: model.keras is a Keras archive"));
}

TEST_F(CompletionTest, ACompletionErrorNamesTheConfigAndKeepsOtherModelsServing) {
  repo_.AddModel("bad", R"pb(platform: "self_platform"
                             input {
                               name: "x"
                               data_type: TYPE_INT32
                               dims: [ 2 ]
                             })pb");
  repo_.AddModel("good", FakeModelConfig());
  ModelManager manager(repo_.path(), backends_, factory_);
  ASSERT_TRUE(manager.LoadAll().ok());
  absl::StatusOr<core::ModelStatus> bad = manager.Status("bad");
  ASSERT_TRUE(bad.ok());
  EXPECT_FALSE(bad->ready());
  EXPECT_THAT(bad->reason, HasSubstr("config.pbtxt: input 'x' is declared otherwise"));
  // The version that could not be served is reported with the reason too.
  ASSERT_EQ(bad->versions.size(), 1u);
  EXPECT_EQ(bad->versions[0].state, core::VersionState::kUnavailable);
  EXPECT_THAT(bad->versions[0].reason, HasSubstr("input 'x' is declared otherwise"));
  EXPECT_TRUE(manager.Get("good", std::nullopt).ok());
}

// --- reloading while serving ---------------------------------------------------------------

TEST_F(ModelManagerTest, RescanLoadsNewVersionsAndModelsAndUnloadsRemovedOnes) {
  repo_.AddModel("m", FakeModelConfig("version_policy { all {} }"), {1});
  ModelManager manager(repo_.path(), backends_, factory_);
  ASSERT_TRUE(manager.LoadAll().ok());
  absl::StatusOr<ModelHandle> first = manager.Get("m", 1);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(fake_->load_count(), 1);

  manager.Rescan();  // nothing changed: nothing reloads
  EXPECT_EQ(fake_->load_count(), 1);
  EXPECT_EQ(*manager.Get("m", 1), *first);

  repo_.WriteFile("m/2/model.bin", "v2");
  repo_.AddModel("n", FakeModelConfig());
  manager.Rescan();
  EXPECT_EQ(fake_->load_count(), 3);  // m/2 and n/1; m/1 is reused
  EXPECT_EQ(*manager.Get("m", 1), *first);
  EXPECT_EQ((*manager.Get("m", std::nullopt))->version(), 2);
  EXPECT_TRUE(manager.Get("n", std::nullopt).ok());

  std::filesystem::remove_all(repo_.path() / "m" / "1");
  std::filesystem::remove_all(repo_.path() / "n");
  manager.Rescan();
  EXPECT_EQ(manager.Get("m", 1).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(manager.Get("n", std::nullopt).status().code(), absl::StatusCode::kNotFound);
  // A request that held version 1 keeps it until it is done.
  EXPECT_EQ((*first)->version(), 1);
}

TEST_F(ModelManagerTest, AChangedVersionFolderOrConfigReloadsIt) {
  repo_.AddModel("m", FakeModelConfig(), {1});
  ModelManager manager(repo_.path(), backends_, factory_);
  ASSERT_TRUE(manager.LoadAll().ok());
  const ModelHandle before = *manager.Get("m", std::nullopt);
  repo_.WriteFile("m/1/model.bin", "new weights");
  manager.Rescan();
  const ModelHandle after = *manager.Get("m", std::nullopt);
  EXPECT_NE(after, before);
  EXPECT_EQ(fake_->load_count(), 2);

  repo_.AddModel("m", FakeModelConfig("instance_group [ { count: 2 } ]"), {1});
  manager.Rescan();
  EXPECT_EQ((*manager.Get("m", std::nullopt))->config().instance_count, 2);
  EXPECT_EQ(fake_->load_count(), 4);
}

TEST_F(ModelManagerTest, AFailedReloadKeepsTheServingVersionsAndSaysWhy) {
  repo_.AddModel("m", FakeModelConfig(), {1});
  ModelManager manager(repo_.path(), backends_, factory_);
  ASSERT_TRUE(manager.LoadAll().ok());
  const ModelHandle serving = *manager.Get("m", std::nullopt);
  repo_.AddModel("m", "backend: \"fake\"\nmax_batch_size: -1\n", {1});
  const absl::Status reload = manager.LoadModel("m");
  EXPECT_EQ(reload.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(reload.message(), HasSubstr("its loaded versions keep serving"));
  EXPECT_EQ(*manager.Get("m", std::nullopt), serving);
  absl::StatusOr<core::ModelStatus> status = manager.Status("m");
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(status->ready());
  EXPECT_THAT(status->reload_error, HasSubstr("max_batch_size must not be negative"));
  manager.Rescan();  // the same failing folder is not retried
  EXPECT_EQ(fake_->load_count(), 1);

  repo_.AddModel("m", FakeModelConfig(), {1});  // fixed: the next rescan reloads it
  manager.Rescan();
  status = manager.Status("m");
  EXPECT_TRUE(status->reload_error.empty());
  EXPECT_NE(*manager.Get("m", std::nullopt), serving);
}

// A bad deploy of version 2 (its folder changes and no longer loads) must not move the
// requests that name no version to version 1: version 2's loaded copy keeps serving them.
TEST_F(ModelManagerTest, ABadDeployOfOneVersionKeepsItsLoadedCopyServingIt) {
  repo_.AddModel("m", FakeModelConfig("version_policy { all {} }"), {1, 2});
  ModelManager manager(repo_.path(), backends_, factory_);
  ASSERT_TRUE(manager.LoadAll().ok());
  const ModelHandle two = *manager.Get("m", std::nullopt);
  ASSERT_EQ(two->version(), 2);

  repo_.WriteFile("m/2/weight", "bogus\n");
  manager.Rescan();
  EXPECT_EQ(*manager.Get("m", std::nullopt), two);
  EXPECT_EQ(*manager.Get("m", 2), two);
  absl::StatusOr<core::ModelStatus> status = manager.Status("m");
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(status->versions.size(), 2u);
  EXPECT_EQ(status->versions[1].state, core::VersionState::kReady);
  EXPECT_THAT(status->versions[1].reload_error, HasSubstr("fake_weight 'bogus' is no number"));
  EXPECT_THAT(status->ReloadErrors(), HasSubstr("version 2: fake_weight 'bogus'"));
  const std::vector<core::IndexEntry> index = manager.Index();
  ASSERT_EQ(index.size(), 2u);
  EXPECT_EQ(index[1].state, core::VersionState::kReady);
  EXPECT_THAT(index[1].reason, HasSubstr("fake_weight 'bogus' is no number"));
  const int loads = fake_->load_count();
  manager.Rescan();  // the same failing folder is not retried until it changes
  EXPECT_EQ(fake_->load_count(), loads);

  // An explicit load retries it, and answers the failure.
  const absl::Status load = manager.LoadModel("m");
  EXPECT_EQ(load.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(load.message(), HasSubstr("version 2: fake_weight 'bogus' is no number"));
  EXPECT_THAT(load.message(), HasSubstr("keep serving"));
  EXPECT_EQ(*manager.Get("m", std::nullopt), two);

  // Another version's change still goes through while version 2 fails.
  std::filesystem::remove_all(repo_.path() / "m" / "1");
  manager.Rescan();
  EXPECT_EQ(manager.Get("m", 1).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*manager.Get("m", std::nullopt), two);

  // Fixed: the next rescan loads the new copy, and the error goes.
  repo_.WriteFile("m/2/weight", "2\n");
  manager.Rescan();
  const ModelHandle fixed = *manager.Get("m", std::nullopt);
  EXPECT_NE(fixed, two);
  EXPECT_EQ(fixed->version(), 2);
  status = manager.Status("m");
  EXPECT_EQ(status->ReloadErrors(), "");
}

TEST_F(ModelManagerTest, ExplicitLoadUnloadAndIndex) {
  repo_.AddModel("a", FakeModelConfig(), {1});
  repo_.AddModel("b", FakeModelConfig(), {1, 2});
  ModelManager manager(repo_.path(), backends_, factory_);
  ASSERT_TRUE(manager.LoadAll().ok());
  ASSERT_TRUE(manager.UnloadModel("a").ok());
  EXPECT_EQ(manager.Get("a", std::nullopt).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(manager.UnloadModel("a").code(), absl::StatusCode::kNotFound);

  std::vector<core::IndexEntry> index = manager.Index();
  ASSERT_EQ(index.size(), 2u);
  EXPECT_EQ(index[0].name, "a");
  EXPECT_EQ(index[0].state, core::VersionState::kUnavailable);
  EXPECT_EQ(index[0].reason, "unloaded");
  EXPECT_EQ(index[1].name, "b");
  EXPECT_EQ(index[1].version, "2");
  EXPECT_EQ(index[1].state, core::VersionState::kReady);

  ASSERT_TRUE(manager.LoadModel("a").ok());
  EXPECT_TRUE(manager.Get("a", std::nullopt).ok());
  EXPECT_EQ(manager.LoadModel("missing").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(manager.LoadModel("../a").code(), absl::StatusCode::kNotFound);
}

TEST_F(ModelManagerTest, AVersionPolicyChangeTakesEffectOnReload) {
  repo_.AddModel("m", FakeModelConfig(), {1, 2});
  ModelManager manager(repo_.path(), backends_, factory_);
  ASSERT_TRUE(manager.LoadAll().ok());
  EXPECT_EQ(manager.Get("m", 1).status().code(), absl::StatusCode::kNotFound);  // newest only
  repo_.AddModel("m", FakeModelConfig("version_policy { all {} }"), {1, 2});
  manager.Rescan();
  EXPECT_TRUE(manager.Get("m", 1).ok());
  EXPECT_TRUE(manager.Get("m", 2).ok());
  repo_.AddModel("m", FakeModelConfig("version_policy { specific { versions: [ 1 ] } }"), {1, 2});
  manager.Rescan();
  EXPECT_TRUE(manager.Get("m", 1).ok());
  EXPECT_EQ(manager.Get("m", 2).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*manager.Get("m", std::nullopt))->version(), 1);
}


// The memory budget (docs/design/memory-budget.md), on fake models that hold `mib` MiB while
// loaded (parameter resident_mb) and whose version folder holds as much on disk, so that the
// estimate and the measurement agree.
class MemoryBudgetTest : public ModelManagerTest {
 protected:
  void AddModel(const std::string& name, int mib, absl::string_view extra = "") {
    repo_.AddModel(name, FakeModelConfig(absl::StrCat("parameters { key: \"resident_mb\" value { "
                                                      "string_value: \"", mib, "\" } }\n", extra)));
    repo_.WriteFile(std::filesystem::path(name) / "1" / "weights.bin",
                    std::string(static_cast<size_t>(mib) << 20, 'w'));
  }

  static MemoryBudgetOptions Budget(int mib) {
    MemoryBudgetOptions options;
    options.budget_bytes = static_cast<int64_t>(mib) << 20;
    options.min_residency = absl::ZeroDuration();
    options.min_retry = absl::Milliseconds(300);
    return options;
  }

  // WhenLoaded, waited for.
  static absl::StatusOr<ModelHandle> Load(ModelManager& manager, const std::string& name,
                                          absl::Duration timeout = absl::Seconds(10)) {
    absl::Notification done;
    absl::StatusOr<ModelHandle> result = absl::UnknownError("not answered");
    manager.WhenLoaded(name, std::nullopt, absl::Now() + timeout,
                       [&](absl::StatusOr<ModelHandle> handle) {
                         result = std::move(handle);
                         done.Notify();
                       });
    done.WaitForNotification();
    return result;
  }

  static bool Loaded(const ModelManager& manager, const std::string& name) {
    return manager.Get(name, std::nullopt).ok();
  }
};

TEST_F(MemoryBudgetTest, PreloadsWhatFitsAndLoadsTheRestOnDemand) {
  for (const char* name : {"a", "b", "c"}) AddModel(name, 8);
  ModelManager manager(repo_.path(), backends_, factory_);
  manager.SetMemoryBudget(Budget(20));
  ASSERT_TRUE(manager.LoadAll().ok());
  EXPECT_TRUE(Loaded(manager, "a"));
  EXPECT_TRUE(Loaded(manager, "b"));
  absl::Status c = manager.Get("c", std::nullopt).status();
  EXPECT_TRUE(LoadsOnDemand(c)) << c;
  EXPECT_THAT(c.message(), HasSubstr("loads on its first request"));
  absl::StatusOr<core::ModelStatus> status = manager.Status("c");
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(status->ready()) << "a model that loads on demand counts as ready";
  // Its config is there before it loads.
  EXPECT_TRUE(manager.Config("c", std::nullopt).ok());

  (*manager.Get("b", std::nullopt))->Touch(absl::Now());  // "a" is now the least recently used
  absl::StatusOr<ModelHandle> loaded = Load(manager, "c");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(Loaded(manager, "b"));
  EXPECT_FALSE(Loaded(manager, "a"));
  EXPECT_THAT(manager.Get("a", std::nullopt).status().message(), HasSubstr("evicted"));
  bool listed = false;
  for (const core::IndexEntry& entry : manager.Index()) {
    if (entry.name == "a") {
      listed = true;
      EXPECT_EQ(entry.state, core::VersionState::kUnavailable);
      EXPECT_THAT(entry.reason, HasSubstr("evicted"));
    }
  }
  EXPECT_TRUE(listed);
}

TEST_F(MemoryBudgetTest, PinnedAndBusyModelsAreNeverEvicted) {
  AddModel("a_pinned", 8, "parameters { key: \"eviction\" value { string_value: \"never\" } }");
  AddModel("b_busy", 8);
  AddModel("c_late", 8);
  ModelManager manager(repo_.path(), backends_, factory_);
  manager.SetMemoryBudget(Budget(20));
  ASSERT_TRUE(manager.LoadAll().ok());
  ASSERT_TRUE(Loaded(manager, "a_pinned") && Loaded(manager, "b_busy"));
  ModelHandle busy = *manager.Get("b_busy", std::nullopt);
  busy->AddInFlight(1);  // a request queued on it
  // The request waits for room until its deadline, and is told what holds the budget.
  absl::Status refused = Load(manager, "c_late", absl::Milliseconds(300)).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kDeadlineExceeded) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("could not load in time"));
  EXPECT_THAT(refused.message(), HasSubstr("'a_pinned' (pinned"));
  EXPECT_THAT(refused.message(), HasSubstr("'b_busy' (busy"));
  EXPECT_TRUE(Loaded(manager, "a_pinned") && Loaded(manager, "b_busy"));
  // Once idle, "b_busy" makes room, for a request waiting meanwhile too.
  absl::Notification waiting;
  std::thread release([&] {
    waiting.WaitForNotification();
    absl::SleepFor(absl::Milliseconds(100));
    busy->AddInFlight(-1);
  });
  absl::StatusOr<ModelHandle> late = absl::UnknownError("not answered");
  absl::Notification answered;
  manager.WhenLoaded("c_late", std::nullopt, absl::Now() + absl::Seconds(10),
                     [&](absl::StatusOr<ModelHandle> handle) {
                       late = std::move(handle);
                       answered.Notify();
                     });
  waiting.Notify();
  answered.WaitForNotification();
  release.join();
  EXPECT_TRUE(late.ok()) << late.status();
  busy.reset();
  EXPECT_TRUE(Loaded(manager, "a_pinned"));
  EXPECT_FALSE(Loaded(manager, "b_busy"));
}

TEST_F(MemoryBudgetTest, ConcurrentFirstRequestsShareOneLoad) {
  AddModel("m", 4, "parameters { key: \"load_sleep_ms\" value { string_value: \"200\" } }");
  ModelManager manager(repo_.path(), backends_, factory_);
  MemoryBudgetOptions options = Budget(20);
  options.preload = false;
  manager.SetMemoryBudget(options);
  ASSERT_TRUE(manager.LoadAll().ok());
  EXPECT_EQ(fake_->load_count(), 0);
  std::atomic<int> ok{0};
  absl::Notification all;
  std::atomic<int> answered{0};
  for (int i = 0; i < 16; ++i) {
    manager.WhenLoaded("m", std::nullopt, absl::Now() + absl::Seconds(10),
                       [&](absl::StatusOr<ModelHandle> handle) {
                         if (handle.ok()) ++ok;
                         if (++answered == 16) all.Notify();
                       });
  }
  all.WaitForNotification();
  EXPECT_EQ(ok.load(), 16);
  EXPECT_EQ(fake_->load_count(), 1);
}

TEST_F(MemoryBudgetTest, ADeadlineEndsTheWaitButNotTheLoad) {
  AddModel("slow", 4, "parameters { key: \"load_sleep_ms\" value { string_value: \"500\" } }");
  ModelManager manager(repo_.path(), backends_, factory_);
  MemoryBudgetOptions options = Budget(20);
  options.preload = false;
  manager.SetMemoryBudget(options);
  ASSERT_TRUE(manager.LoadAll().ok());
  const absl::Time start = absl::Now();
  absl::Status waited = Load(manager, "slow", absl::Milliseconds(50)).status();
  EXPECT_EQ(waited.code(), absl::StatusCode::kDeadlineExceeded) << waited;
  EXPECT_THAT(waited.message(), HasSubstr("still loading"));
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(400));
  // The load went on: a later request gets the model.
  EXPECT_TRUE(Load(manager, "slow").ok());
  EXPECT_EQ(fake_->load_count(), 1);
}

TEST_F(MemoryBudgetTest, AModelLargerThanTheBudgetSaysBothSizes) {
  AddModel("small", 4);
  AddModel("huge", 24);
  ModelManager manager(repo_.path(), backends_, factory_);
  manager.SetMemoryBudget(Budget(20));
  ASSERT_TRUE(manager.CheckMemoryBudget().ok());
  ASSERT_TRUE(manager.LoadAll().ok());
  // It can never load: not ready, and says why with both sizes.
  absl::Status huge = Load(manager, "huge").status();
  EXPECT_EQ(huge.code(), absl::StatusCode::kUnavailable) << huge;
  EXPECT_FALSE(LoadsOnDemand(huge));
  EXPECT_THAT(huge.message(), HasSubstr("needs about 24 MiB (estimated from its files) and "
                                        "--model-memory-budget is 20 MiB"));
  EXPECT_FALSE(manager.Status("huge")->ready());
  EXPECT_TRUE(Loaded(manager, "small"));
}

TEST_F(MemoryBudgetTest, ABudgetNoModelFitsInRefusesToStart) {
  AddModel("a", 8);
  ModelManager manager(repo_.path(), backends_, factory_);
  manager.SetMemoryBudget(Budget(4));
  absl::Status checked = manager.CheckMemoryBudget();
  EXPECT_EQ(checked.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(checked.message(), HasSubstr("no model fits in --model-memory-budget"));
  EXPECT_THAT(checked.message(), HasSubstr("'a'"));
}

TEST_F(MemoryBudgetTest, AFailedLoadOnDemandBacksOffAndOthersServe) {
  AddModel("good", 4);
  AddModel("broken", 4, "parameters { key: \"load_error\" value { string_value: \"disk on fire\" } }");
  ModelManager manager(repo_.path(), backends_, factory_);
  MemoryBudgetOptions options = Budget(20);
  options.preload = false;
  options.min_retry = absl::Seconds(30);
  manager.SetMemoryBudget(options);
  ASSERT_TRUE(manager.LoadAll().ok());
  ASSERT_TRUE(Load(manager, "good").ok());
  absl::Status first = Load(manager, "broken").status();
  EXPECT_EQ(first.code(), absl::StatusCode::kUnavailable) << first;
  EXPECT_THAT(first.message(), HasSubstr("disk on fire"));
  // Inside the back-off the failure answers at once, and the model still loads on demand
  // (so it counts as ready, and a later request retries).
  absl::Status again = Load(manager, "broken").status();
  EXPECT_EQ(again, first);
  EXPECT_TRUE(LoadsOnDemand(manager.Get("broken", std::nullopt).status()));
  EXPECT_TRUE(Loaded(manager, "good"));
}

TEST_F(MemoryBudgetTest, MinimumResidencyProtectsAFreshModel) {
  AddModel("a", 8);
  AddModel("b", 8);
  AddModel("c", 8);
  ModelManager manager(repo_.path(), backends_, factory_);
  MemoryBudgetOptions options = Budget(20);
  options.min_residency = absl::Seconds(60);
  manager.SetMemoryBudget(options);
  ASSERT_TRUE(manager.LoadAll().ok());
  // Nothing may go for a minute: the request waits until its deadline, told why.
  absl::Status refused = Load(manager, "c", absl::Milliseconds(300)).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kDeadlineExceeded) << refused;
  EXPECT_THAT(refused.message(), HasSubstr("--model-min-residency=60s"));
  EXPECT_TRUE(Loaded(manager, "a") && Loaded(manager, "b"));
}

TEST_F(MemoryBudgetTest, CancelLoadingFinishesTheLoadInProgressAndAnswersTheRest) {
  for (const char* name : {"a", "b"}) {
    AddModel(name, 1, "parameters { key: \"load_sleep_ms\" value { string_value: \"300\" } }");
  }
  ModelManager manager(repo_.path(), backends_, factory_);
  MemoryBudgetOptions options = Budget(20);
  options.preload = false;
  manager.SetMemoryBudget(options);
  ASSERT_TRUE(manager.LoadAll().ok());
  absl::StatusOr<ModelHandle> a = absl::UnknownError("not answered");
  absl::StatusOr<ModelHandle> b = absl::UnknownError("not answered");
  manager.WhenLoaded("a", std::nullopt, absl::InfiniteFuture(),
                     [&](absl::StatusOr<ModelHandle> handle) { a = std::move(handle); });
  manager.WhenLoaded("b", std::nullopt, absl::InfiniteFuture(),
                     [&](absl::StatusOr<ModelHandle> handle) { b = std::move(handle); });
  absl::SleepFor(absl::Milliseconds(100));  // "a" is loading, "b" queued behind it
  manager.CancelLoading();
  EXPECT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(b.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(b.status().message(), HasSubstr("shutting down"));
  // Later requests are answered at once.
  absl::Status later = Load(manager, "b").status();
  EXPECT_THAT(later.message(), HasSubstr("shutting down"));
}

TEST_F(MemoryBudgetTest, ExplicitLoadAndUnloadCountAgainstTheBudget) {
  AddModel("a", 8);
  AddModel("b", 8);
  AddModel("c", 8);
  ModelManager manager(repo_.path(), backends_, factory_);
  MemoryBudgetOptions options = Budget(20);
  options.preload = false;
  manager.SetMemoryBudget(options);
  ASSERT_TRUE(manager.LoadAll().ok());
  ASSERT_TRUE(manager.LoadModel("a").ok());
  ASSERT_TRUE(manager.LoadModel("b").ok());
  ASSERT_TRUE(manager.UnloadModel("a").ok());
  // "a"'s memory is free again: "c" loads without evicting "b".
  ASSERT_TRUE(manager.LoadModel("c").ok());
  EXPECT_TRUE(Loaded(manager, "b"));
  EXPECT_TRUE(Loaded(manager, "c"));
  EXPECT_EQ(manager.Get("a", std::nullopt).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace modeld::repository
