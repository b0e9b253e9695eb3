// What a torch.export package (model.pt2) states about itself, and the config completed or
// checked against it. No LibTorch here, so the rules are tested without packages.
//
// modeld.torch_export.export_package (python/src/modeld/torch_export.py) writes a ModelConfig
// fragment into the package's AOTInductor metadata under kPackageConfigKey:
//   max_batch_size: 64
//   input { name: "x" data_type: TYPE_FP32 dims: [ 256 ] }
//   output { name: "logits" data_type: TYPE_FP32 dims: [ 10 ] }
// Dims leave out the batch dimension when max_batch_size > 0, as in config.pbtxt. Inputs are
// the exported forward's arguments in order; outputs its results in order.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "kserve/model_config.pb.h"

namespace modeld::backend {

inline constexpr char kPackageConfigKey[] = "modeld.config";

// Completes `config` from `stated` (the package's fragment, or nullopt for a package that states
// nothing) and checks it:
//   - an empty input or output list is filled from the package; when both were empty and
//     config.pbtxt sets neither max_batch_size nor dynamic_batching, the package's
//     max_batch_size is taken, and a batch dimension turns dynamic batching on;
//   - then each declared tensor must be the package's tensor at the same position: same name,
//     datatype and rank, and equal dims where the package's is not -1; and max_batch_size must
//     be 0 exactly when the package's is, and not above it.
// INVALID_ARGUMENT naming `package` (its path), the tensor or field, and both values; also when
// the package states nothing and config.pbtxt leaves inputs or outputs out, or `stated` does
// not parse.
absl::Status CompleteConfigFromPackage(const std::optional<std::string>& stated,
                                       absl::string_view package, inference::ModelConfig& config);

}  // namespace modeld::backend
