// FakeBackend: models without a framework, for tests and benchmarks (backend "fake").
//
// The config parameter "behavior" picks what Run() does:
//   identity (default)  output i = input i (same bytes, datatype and shape)
//   sleep               identity (kept as the name tests use for slow models)
//   batch_size          every output is INT64 [rows, 1] holding the rows of this Run, so a
//                       client can see how requests were batched
//   fail                INTERNAL "fake model failure"
// "sleep_ms" makes every Run() sleep that long first; "load_sleep_ms" does so for Load(). A
// "load_error" parameter makes Load() fail with INTERNAL and that message.
//
// With parameter training: true the model learns one number: every FP32 output i is
// weight * input i (weight starts at parameter "fake_weight", default 1), and Train() takes
// one step of SGD on the mean squared error against the target named after each output, at
// training_learning_rate. Its State is the weight; ExportVersion writes it to a file
// "weight" ("fake_weight" of a published version is read from it).
#pragma once

#include <atomic>

#include "backend/backend.h"

namespace modeld::backend {

// Thread-safe.
class FakeBackend : public Backend {
 public:
  bool Trains() const override { return true; }
  absl::StatusOr<std::unique_ptr<Model>> Load(const core::ModelConfig& config,
                                              const std::filesystem::path& version_dir) override;

  absl::Status ExportVersion(const core::ModelConfig& config, const Model::State& state,
                             const std::filesystem::path& loaded_from,
                             const std::filesystem::path& out) override;

  // How many Models this backend has created.
  int load_count() const { return load_count_.load(); }

 private:
  std::atomic<int> load_count_{0};
};

}  // namespace modeld::backend
