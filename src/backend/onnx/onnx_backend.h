// OnnxBackend: ONNX models through ONNX Runtime (its C API, opened at run time: ort_api.h).
//
// Platform onnxruntime_onnx (Triton's name), backend onnxruntime; the model is
// <version>/model.onnx, and external-data files beside it (torch's exporter writes
// model.onnx.data) load with it. A folder without a config.pbtxt is served: the config is
// completed from the session's inputs and outputs (backend/config_completion.h), and a stated
// one is checked against them. A non-tensor output (scikit-learn's ZipMap: a sequence of maps)
// cannot be served and is refused with what to do instead, unless a stated config leaves it out.
//
// Each instance is one ONNX Runtime session with intra_op_thread_count threads (default: the
// cores divided among the instances) and inter_op_thread_count (default 1); its threads do not
// spin waiting for work (parameter allow_spinning "1" lets them, for a machine whose cores are
// the model's alone); graph_optimization_level is disable, basic, extended or all (default);
// optimized_model_file names a cache of the optimized graph (written on the first load, read
// until model.onnx is newer). Inputs are handed to ONNX Runtime without a copy (BYTES are copied into its string
// tensors); numeric outputs are handed back without a copy.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "backend/backend.h"

namespace modeld::backend {

inline constexpr char kOnnxPlatform[] = "onnxruntime_onnx";
inline constexpr char kOnnxBackendName[] = "onnxruntime";
inline constexpr char kOnnxModelFile[] = "model.onnx";
// max_batch_size of a completed config whose tensors all have a dynamic first dimension.
inline constexpr int kOnnxCompletedMaxBatchSize = 256;

// Thread-safe.
class OnnxBackend : public Backend {
 public:
  // `library`: the libonnxruntime.so to open on first use; empty: the one modeld was built
  // with (the onnxruntime wheel in .venv), if any.
  explicit OnnxBackend(std::string library = "");

  bool ServesWithoutConfig(const std::filesystem::path& version_dir) override;
  absl::Status CompleteConfig(const std::filesystem::path& version_dir,
                              inference::ModelConfig& config) override;
  absl::StatusOr<std::unique_ptr<Model>> Load(const core::ModelConfig& config,
                                              const std::filesystem::path& version_dir) override;

 private:
  const std::string library_;
};

}  // namespace modeld::backend
