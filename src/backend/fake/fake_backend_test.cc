#include "backend/fake/fake_backend.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace modeld::backend {
namespace {

core::ModelConfig Config(absl::string_view behavior, absl::string_view extra = "") {
  absl::StatusOr<core::ModelConfig> config = core::ParseModelConfig(
      absl::StrCat("backend: \"fake\"\nmax_batch_size: 8\n",
                   "input { name: \"x\" data_type: TYPE_FP32 dims: [ 2 ] }\n",
                   "output { name: \"y\" data_type: TYPE_FP32 dims: [ 2 ] }\n",
                   "parameters { key: \"behavior\" value { string_value: \"", behavior, "\" } }\n",
                   extra),
      "test", "m");
  EXPECT_TRUE(config.ok()) << config.status();
  return *config;
}

core::TensorMap Input(int64_t rows) {
  return {
      {"x", core::Tensor::Owning(core::DataType::kFp32, {rows, 2}, std::string(rows * 8, 'a'))}};
}

TEST(FakeBackendTest, IdentityReturnsItsInput) {
  FakeBackend backend;
  auto model = backend.Load(Config("identity"), "/unused");
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<core::TensorMap> outputs = (*model)->Run(Input(3));
  ASSERT_TRUE(outputs.ok());
  EXPECT_EQ(outputs->at("y").bytes(), std::string(24, 'a'));
  EXPECT_EQ(backend.load_count(), 1);
}

TEST(FakeBackendTest, BatchSizeReportsTheRowsOfTheRun) {
  FakeBackend backend;
  auto model = backend.Load(Config("batch_size"), "/unused");
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<core::TensorMap> outputs = (*model)->Run(Input(3));
  ASSERT_TRUE(outputs.ok());
  const core::Tensor& y = outputs->at("y");
  EXPECT_EQ(y.type(), core::DataType::kInt64);
  EXPECT_EQ(y.shape(), (core::Shape{3, 1}));
  int64_t values[3];
  memcpy(values, y.bytes().data(), sizeof(values));
  EXPECT_EQ(values[0], 3);
  EXPECT_EQ(values[2], 3);
}

TEST(FakeBackendTest, FailAndLoadErrors) {
  FakeBackend backend;
  auto failing = backend.Load(Config("fail"), "/unused");
  ASSERT_TRUE(failing.ok());
  EXPECT_EQ((*failing)->Run(Input(1)).status().message(), "fake model failure");
  EXPECT_EQ(backend.Load(Config("dance"), "/unused").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto broken = backend.Load(
      Config("identity", "parameters { key: \"load_error\" value { string_value: \"no\" } }"),
      "/unused");
  EXPECT_EQ(broken.status().message(), "no");
  auto sleepy = backend.Load(
      Config("identity", "parameters { key: \"sleep_ms\" value { string_value: \"x\" } }"),
      "/unused");
  EXPECT_EQ(sleepy.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace modeld::backend
