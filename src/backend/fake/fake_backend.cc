#include "backend/fake/fake_backend.h"

#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace modeld::backend {
namespace {

class FakeModel : public Model {
 public:
  FakeModel(core::ModelConfig config, std::string behavior, int sleep_ms)
      : config_(std::move(config)), behavior_(std::move(behavior)), sleep_ms_(sleep_ms) {}

  absl::StatusOr<core::TensorMap> Run(const core::TensorMap& inputs) override {
    if (sleep_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms_));
    if (behavior_ == "fail") return absl::InternalError("fake model failure");
    core::TensorMap outputs;
    if (behavior_ == "batch_size") {
      const int64_t rows = inputs.at(config_.inputs.front().name).shape().at(0);
      const std::vector<int64_t> values(rows, rows);
      for (const core::TensorSpec& output : config_.outputs) {
        outputs[output.name] = core::Tensor::Owning(
            core::DataType::kInt64, {rows, 1},
            std::string(reinterpret_cast<const char*>(values.data()), rows * sizeof(int64_t)));
      }
      return outputs;
    }
    for (size_t i = 0; i < config_.outputs.size(); ++i) {
      outputs[config_.outputs[i].name] = inputs.at(config_.inputs[i].name);
    }
    return outputs;
  }

 private:
  const core::ModelConfig config_;
  const std::string behavior_;
  const int sleep_ms_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> FakeBackend::Load(const core::ModelConfig& config,
                                                         const std::filesystem::path&) {
  if (std::optional<std::string> error = config.Parameter("load_error")) {
    return absl::InternalError(*error);
  }
  const std::string behavior = config.Parameter("behavior").value_or("identity");
  if (behavior != "identity" && behavior != "sleep" && behavior != "batch_size" &&
      behavior != "fail") {
    return absl::InvalidArgumentError(absl::StrCat(
        "parameter behavior '", behavior, "' is not one of identity, sleep, batch_size, fail"));
  }
  if (behavior == "batch_size" && config.max_batch_size == 0) {
    return absl::InvalidArgumentError("behavior batch_size needs max_batch_size > 0");
  }
  int sleep_ms = 0;
  if (std::optional<std::string> text = config.Parameter("sleep_ms")) {
    if (!absl::SimpleAtoi(*text, &sleep_ms) || sleep_ms < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter sleep_ms '", *text, "' is not a non-negative integer"));
    }
  }
  if ((behavior == "identity" || behavior == "sleep") &&
      config.outputs.size() > config.inputs.size()) {
    return absl::InvalidArgumentError(
        "a fake identity model needs at least as many inputs as outputs");
  }
  if (std::optional<std::string> text = config.Parameter("load_sleep_ms")) {
    int load_sleep_ms = 0;
    if (!absl::SimpleAtoi(*text, &load_sleep_ms) || load_sleep_ms < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter load_sleep_ms '", *text, "' is not a non-negative integer"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(load_sleep_ms));
  }
  ++load_count_;
  return std::make_unique<FakeModel>(config, behavior, sleep_ms);
}

}  // namespace modeld::backend
