#include "repository/model_manager.h"

#include <atomic>
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

}  // namespace
}  // namespace modeld::repository
