#include "backend/fake/fake_backend.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "core/training_options.h"

namespace modeld::backend {
namespace {

constexpr char kWeightSection[] = "weight";
constexpr char kWeightFile[] = "weight";

std::string FloatBytes(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

std::vector<float> Floats(const core::Tensor& tensor) {
  std::vector<float> values(tensor.bytes().size() / sizeof(float));
  std::memcpy(values.data(), tensor.bytes().data(), values.size() * sizeof(float));
  return values;
}

class FakeModel : public Model {
 public:
  FakeModel(core::ModelConfig config, std::string behavior, int sleep_ms,
            std::optional<core::TrainingOptions> training, float weight, int64_t resident_bytes)
      : config_(std::move(config)),
        behavior_(std::move(behavior)),
        sleep_ms_(sleep_ms),
        training_(std::move(training)),
        weight_(weight),
        // Written, so the pages are resident: what a real model's weights cost.
        ballast_(static_cast<size_t>(resident_bytes), '\x5a') {}

  absl::Status CanTrain() const override {
    if (!training_.has_value()) return absl::FailedPreconditionError("training is off");
    return absl::OkStatus();
  }

  absl::StatusOr<double> Train(const core::TensorMap& inputs,
                               const core::TensorMap& targets) override {
    RETURN_IF_ERROR(CanTrain());
    double loss = 0;
    double gradient = 0;
    for (size_t i = 0; i < config_.outputs.size(); ++i) {
      auto target = targets.find(config_.outputs[i].name);
      if (target == targets.end()) continue;
      const std::vector<float> x = Floats(inputs.at(config_.inputs[i].name));
      const std::vector<float> y = Floats(target->second);
      if (x.size() != y.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "target '", target->first, "' has ", y.size(), " values for ", x.size(), " inputs"));
      }
      for (size_t j = 0; j < x.size(); ++j) {
        const double error = weight_ * x[j] - y[j];
        loss += error * error / x.size();
        gradient += 2 * error * x[j] / x.size();
      }
    }
    for (const auto& [name, tensor] : targets) {
      if (config_.FindOutput(name) == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("unknown target '", name, "'"));
      }
    }
    if (sleep_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms_));
    weight_ -= static_cast<float>(training_->learning_rate * gradient);
    // As a framework step that updates its own weights: the damage is done when it is seen.
    if (!std::isfinite(loss)) {
      return absl::DataLossError(absl::StrCat("the loss is ", loss, "; the weight is damaged"));
    }
    return loss;
  }

  absl::StatusOr<State> SaveState() override {
    RETURN_IF_ERROR(CanTrain());
    return State{{kWeightSection, FloatBytes({weight_})}};
  }

  absl::Status RestoreState(const State& state) override {
    RETURN_IF_ERROR(CanTrain());
    auto weight = state.find(kWeightSection);
    if (weight == state.end() || weight->second.size() != sizeof(float)) {
      return absl::InvalidArgumentError("the state holds no weight");
    }
    std::memcpy(&weight_, weight->second.data(), sizeof(float));
    return absl::OkStatus();
  }

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
      const core::Tensor& input = inputs.at(config_.inputs[i].name);
      if (training_.has_value() && input.type() == core::DataType::kFp32) {
        std::vector<float> values = Floats(input);
        for (float& value : values) value *= weight_;
        outputs[config_.outputs[i].name] =
            core::Tensor::Owning(core::DataType::kFp32, input.shape(), FloatBytes(values));
      } else {
        outputs[config_.outputs[i].name] = input;
      }
    }
    return outputs;
  }

 private:
  const core::ModelConfig config_;
  const std::string behavior_;
  const int sleep_ms_;
  const std::optional<core::TrainingOptions> training_;
  float weight_;
  const std::string ballast_;  // parameter resident_mb: memory held while loaded
};

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> FakeBackend::Load(const core::ModelConfig& config,
                                                         const std::filesystem::path& version_dir) {
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
  int64_t resident_mb = 0;
  if (std::optional<std::string> text = config.Parameter("resident_mb")) {
    if (!absl::SimpleAtoi(*text, &resident_mb) || resident_mb < 0 || resident_mb > 65536) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter resident_mb '", *text, "' is not a number of MiB (0 to 65536)"));
    }
  }
  absl::StatusOr<core::TrainingOptions> training = core::ParseTrainingOptions(config);
  if (!training.ok()) return training.status();
  float weight = 1;
  std::string weight_text = config.Parameter("fake_weight").value_or("1");
  if (std::ifstream file(version_dir / kWeightFile); file) {
    std::getline(file, weight_text);
  }
  if (!absl::SimpleAtof(weight_text, &weight)) {
    return absl::InvalidArgumentError(absl::StrCat("fake_weight '", weight_text, "' is no number"));
  }
  ++load_count_;
  return std::make_unique<FakeModel>(
      config, behavior, sleep_ms,
      training->enabled ? std::optional<core::TrainingOptions>(*training) : std::nullopt, weight,
      resident_mb << 20);
}

absl::Status FakeBackend::ExportVersion(const core::ModelConfig& config, const Model::State& state,
                                        const std::filesystem::path& loaded_from,
                                        const std::filesystem::path& out) {
  (void)config;
  (void)loaded_from;
  auto weight = state.find(kWeightSection);
  if (weight == state.end() || weight->second.size() != sizeof(float)) {
    return absl::InvalidArgumentError("the state holds no weight");
  }
  float value = 0;
  std::memcpy(&value, weight->second.data(), sizeof(float));
  std::ofstream file(out / kWeightFile);
  file << std::setprecision(9) << value << "\n";
  file.close();
  return file ? absl::OkStatus() : absl::InternalError("writing the weight failed");
}

}  // namespace modeld::backend
