#include "core/training_options.h"

#include <algorithm>
#include <initializer_list>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace modeld::core {
namespace {

absl::Status BadValue(absl::string_view key, absl::string_view value, absl::string_view wanted) {
  return absl::InvalidArgumentError(
      absl::StrCat("parameter ", key, " is '", value, "'; it must be ", wanted));
}

absl::Status ReadBool(const ModelConfig& config, absl::string_view key, bool& out) {
  const std::optional<std::string> value = config.Parameter(key);
  if (!value.has_value()) return absl::OkStatus();
  if (*value == "true") {
    out = true;
  } else if (*value == "false") {
    out = false;
  } else {
    return BadValue(key, *value, "true or false");
  }
  return absl::OkStatus();
}

absl::Status ReadOneOf(const ModelConfig& config, absl::string_view key,
                       std::initializer_list<absl::string_view> choices, std::string& out) {
  const std::optional<std::string> value = config.Parameter(key);
  if (!value.has_value()) return absl::OkStatus();
  for (absl::string_view choice : choices) {
    if (*value == choice) {
      out = *value;
      return absl::OkStatus();
    }
  }
  return BadValue(key, *value, absl::StrCat("one of: ", absl::StrJoin(choices, ", ")));
}

absl::Status ReadCount(const ModelConfig& config, absl::string_view key, int64_t minimum,
                       int64_t& out) {
  const std::optional<std::string> value = config.Parameter(key);
  if (!value.has_value()) return absl::OkStatus();
  int64_t number = 0;
  if (!absl::SimpleAtoi(*value, &number) || number < minimum) {
    return BadValue(key, *value, absl::StrCat("a whole number of at least ", minimum));
  }
  out = number;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TrainingOptions> ParseTrainingOptions(const ModelConfig& config) {
  TrainingOptions options;
  RETURN_IF_ERROR(ReadBool(config, "training", options.enabled));
  RETURN_IF_ERROR(ReadOneOf(config, "training_optimizer", {"sgd", "adam"}, options.optimizer));
  RETURN_IF_ERROR(ReadOneOf(config, "training_loss", {"mse", "cross_entropy"}, options.loss));
  if (std::optional<std::string> rate = config.Parameter("training_learning_rate")) {
    if (!absl::SimpleAtod(*rate, &options.learning_rate) || !(options.learning_rate > 0) ||
        options.learning_rate > 1e6) {
      return BadValue("training_learning_rate", *rate, "a positive number");
    }
  }
  if (std::optional<std::string> name = config.Parameter("training_signature")) {
    if (name->empty()) return BadValue("training_signature", *name, "a signature name");
    options.signature = *name;
  }
  RETURN_IF_ERROR(ReadCount(config, "checkpoint_every_steps", 0, options.checkpoint_every_steps));
  int64_t seconds = absl::ToInt64Seconds(options.checkpoint_every);
  RETURN_IF_ERROR(ReadCount(config, "checkpoint_every_seconds", 0, seconds));
  options.checkpoint_every = absl::Seconds(seconds);
  int64_t kept = options.checkpoints_kept;
  RETURN_IF_ERROR(ReadCount(config, "checkpoints_kept", 1, kept));
  options.checkpoints_kept = static_cast<int>(std::min<int64_t>(kept, 1'000'000));
  options.checkpoint_dir = config.Parameter("checkpoint_dir").value_or("");
  RETURN_IF_ERROR(ReadBool(config, "publish_versions", options.publish_versions));
  options.publish_dir = config.Parameter("publish_dir").value_or("");
  if (options.enabled && config.instance_count != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "parameter training is true but the config asks for ", config.instance_count,
        " instances; a trained model needs exactly one (instance_group count 1), since every "
        "instance would otherwise learn apart"));
  }
  return options;
}

}  // namespace modeld::core
