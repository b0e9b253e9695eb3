// Fuzzes config.pbtxt: protobuf text -> inference.ModelConfig -> a validated
// core::ModelConfig (core/model_config.h: ParseModelConfigProto, ModelConfigFromProto), and
// the derived specs' contracts.
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "core/model_config.h"
#include "core/tensor.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<modeld::core::ModelConfig> config =
      modeld::core::ParseModelConfig(text, "fuzz/config.pbtxt", "fuzz");
  if (!config.ok()) return 0;
  modeld::fuzz::Require(config->max_batch_size >= 0, "max_batch_size is not negative");
  modeld::fuzz::Require(config->instance_count >= 1, "a model has at least one instance");
  for (const auto* specs : {&config->inputs, &config->outputs}) {
    for (const modeld::core::TensorSpec& spec : *specs) {
      (void)config->FullShape(spec);
      (void)spec.IsScalarItem();
      modeld::fuzz::Require(
          config->FindInput(spec.name) != nullptr || config->FindOutput(spec.name) != nullptr,
          "every spec can be found by its name");
    }
  }
  return 0;
}
