// modeld-bench-inprocess: the compute limit. Loads a model through TorchBackend
// (TorchAotiBackend for platform torch_aoti), the code path modeld uses (same config, same
// intra-op threads per instance, same Model::Run with inputs viewed without copying), and
// times Model::Run at each batch size, with no transport and no scheduler in between.
//
//   modeld-bench-inprocess --model-dir=examples/models/cnn --batch-sizes=1,2,4,8,16,32,64
//
// Each of --instances threads owns one Model and calls Run back to back (default 1: one
// instance, single-threaded caller). Intra-op threads per instance are what modeld sets: the
// config's intra_op_thread_count, else hardware threads / the config's instance count.
// Inputs: FP32 random in [-1, 1), other datatypes zero bytes. Variable (-1) dims are not
// supported. JSON with --json.
#include <algorithm>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "backend/torch/aoti_backend.h"
#include "backend/torch/torch_backend.h"
#include "common/flags.h"
#include "core/model_config.h"

ABSL_FLAG(std::string, model_dir, "", "The model's folder: config.pbtxt and version folders.");
ABSL_FLAG(int, version, 1, "Version folder to load.");
ABSL_FLAG(std::string, batch_sizes, "1,2,4,8,16,32,64",
          "Comma-separated batch sizes, or 'all' for 1..max_batch_size.");
ABSL_FLAG(int, instances, 1, "Model instances, each run back to back by its own thread.");
ABSL_FLAG(double, seconds_per_size, 0.5, "Measurement time per batch size (after a warm-up).");
ABSL_FLAG(std::string, json, "", "Write the results to this JSON file.");
ABSL_FLAG(int64_t, idle_us, 0,
          "Sleep between calls, as a server's worker idles between requests at low load.");

namespace modeld::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct SizeResult {
  int batch = 0;
  int64_t calls = 0;
  double seconds = 0;
  double items_per_second = 0;
  double mean_us = 0, p50_us = 0, p99_us = 0;
};

core::TensorMap MakeInputs(const core::ModelConfig& config, int batch, std::mt19937& rng) {
  core::TensorMap inputs;
  std::uniform_real_distribution<float> real(-1.0f, 1.0f);
  for (const core::TensorSpec& spec : config.inputs) {
    core::Shape shape = spec.dims;
    if (config.max_batch_size > 0) shape.insert(shape.begin(), batch);
    const int64_t elements = core::ElementCount(shape);
    std::string bytes(elements * core::DataTypeSize(spec.type), '\0');
    if (spec.type == core::DataType::kFp32) {
      auto* values = reinterpret_cast<float*>(bytes.data());
      for (int64_t i = 0; i < elements; ++i) values[i] = real(rng);
    }
    inputs[spec.name] = core::Tensor::Owning(spec.type, shape, std::move(bytes));
  }
  return inputs;
}

// One thread: runs `model` on `inputs` until `end` and at least `min_calls` times, appending
// each call's latency.
absl::Status RunUntil(backend::Model& model, const core::TensorMap& inputs, Clock::time_point end,
                      size_t min_calls, std::vector<double>& latencies_us) {
  const int64_t idle_us = absl::GetFlag(FLAGS_idle_us);
  while (Clock::now() < end || latencies_us.size() < min_calls) {
    if (idle_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(idle_us));
    const Clock::time_point start = Clock::now();
    absl::StatusOr<core::TensorMap> outputs = model.Run(inputs);
    if (!outputs.ok()) return outputs.status();
    latencies_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  return absl::OkStatus();
}

absl::StatusOr<SizeResult> Measure(std::vector<std::unique_ptr<backend::Model>>& models,
                                   const core::ModelConfig& config, int batch, double seconds) {
  std::mt19937 rng(batch);
  const core::TensorMap inputs = MakeInputs(config, batch, rng);
  std::vector<std::vector<double>> latencies(models.size());
  std::vector<absl::Status> statuses(models.size());
  const Clock::time_point warm_end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                        std::chrono::duration<double>(seconds / 4));
  const Clock::time_point end = warm_end + std::chrono::duration_cast<Clock::duration>(
                                               std::chrono::duration<double>(seconds));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < models.size(); ++i) {
    threads.emplace_back([&, i] {
      std::vector<double> warm;
      statuses[i] = RunUntil(*models[i], inputs, warm_end, 2, warm);
      if (statuses[i].ok()) statuses[i] = RunUntil(*models[i], inputs, end, 5, latencies[i]);
    });
  }
  for (std::thread& thread : threads) thread.join();
  // The minimum call count may have run past `end`.
  const double elapsed = std::chrono::duration<double>(Clock::now() - warm_end).count();
  for (const absl::Status& status : statuses) {
    if (!status.ok()) return status;
  }
  std::vector<double> all;
  for (const auto& some : latencies) all.insert(all.end(), some.begin(), some.end());
  std::sort(all.begin(), all.end());
  SizeResult result;
  result.batch = batch;
  result.calls = static_cast<int64_t>(all.size());
  result.seconds = std::max(seconds, elapsed);
  result.items_per_second = result.calls * static_cast<double>(batch) / result.seconds;
  if (!all.empty()) {
    double sum = 0;
    for (double value : all) sum += value;
    result.mean_us = sum / all.size();
    result.p50_us = all[(all.size() - 1) / 2];
    result.p99_us = all[std::min(all.size() - 1, static_cast<size_t>(all.size() * 0.99))];
  }
  return result;
}

absl::StatusOr<std::vector<int>> BatchSizes(const std::string& text, int max_batch_size) {
  std::vector<int> sizes;
  if (text == "all") {
    for (int b = 1; b <= std::max(1, max_batch_size); ++b) sizes.push_back(b);
    return sizes;
  }
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int size = 0;
    if (!absl::SimpleAtoi(item, &size) || size < 1 ||
        (max_batch_size == 0 ? size != 1 : size > max_batch_size)) {
      return absl::InvalidArgumentError(absl::StrCat("--batch-sizes: bad size '", item, "'"));
    }
    sizes.push_back(size);
  }
  return sizes;
}

absl::Status Main() {
  const std::filesystem::path model_dir = absl::GetFlag(FLAGS_model_dir);
  absl::StatusOr<core::ModelConfig> config = core::LoadModelConfig(model_dir);
  if (!config.ok()) return config.status();
  absl::StatusOr<std::vector<int>> sizes =
      BatchSizes(absl::GetFlag(FLAGS_batch_sizes), config->max_batch_size);
  if (!sizes.ok()) return sizes.status();
  std::vector<std::unique_ptr<backend::Model>> models;
  backend::TorchBackend torch_script;
  backend::TorchAotiBackend torch_aoti;
  backend::Backend& torch = config->platform == backend::kTorchAotiPlatform
                                ? static_cast<backend::Backend&>(torch_aoti)
                                : torch_script;
  for (int i = 0; i < std::max(1, absl::GetFlag(FLAGS_instances)); ++i) {
    absl::StatusOr<std::unique_ptr<backend::Model>> model =
        torch.Load(*config, model_dir / std::to_string(absl::GetFlag(FLAGS_version)));
    if (!model.ok()) return model.status();
    models.push_back(*std::move(model));
  }
  // What TorchBackend sets (torch_backend.cc, IntraOpThreads), repeated here for the report.
  const std::optional<std::string> parameter = config->Parameter("intra_op_thread_count");
  const int intra_op_threads =
      parameter ? std::stoi(*parameter)
                : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) /
                                  std::max(1, config->instance_count));

  std::vector<std::string> rows;
  std::cout
      << "| batch | calls | items/s | mean µs | p50 µs | p99 µs |\n|---|---|---|---|---|---|\n";
  for (int batch : *sizes) {
    absl::StatusOr<SizeResult> r =
        Measure(models, *config, batch, absl::GetFlag(FLAGS_seconds_per_size));
    if (!r.ok()) return r.status();
    std::cout << absl::StrFormat("| %d | %d | %.0f | %.1f | %.1f | %.1f |\n", r->batch, r->calls,
                                 r->items_per_second, r->mean_us, r->p50_us, r->p99_us);
    rows.push_back(absl::StrFormat(
        "    {\"batch\": %d, \"calls\": %d, \"seconds\": %.6g, \"items_per_second\": %.6g, "
        "\"mean_us\": %.6g, \"p50_us\": %.6g, \"p99_us\": %.6g}",
        r->batch, r->calls, r->seconds, r->items_per_second, r->mean_us, r->p50_us, r->p99_us));
  }
  if (const std::string path = absl::GetFlag(FLAGS_json); !path.empty()) {
    std::ofstream out(path);
    out << absl::StrCat("{\"model\": \"", config->name, "\", \"instances\": ", models.size(),
                        ", \"config_instance_count\": ", config->instance_count,
                        ", \"intra_op_threads\": ", intra_op_threads,
                        ", \"hardware_threads\": ", std::thread::hardware_concurrency(),
                        ",\n  \"sizes\": [\n", absl::StrJoin(rows, ",\n"), "\n  ]\n}\n");
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace modeld::bench

int main(int argc, char** argv) {
  modeld::bench::ParseDashedFlags(argc, argv);
  const absl::Status status = modeld::bench::Main();
  if (!status.ok()) {
    std::cerr << "modeld-bench-inprocess: " << status << "\n";
    return 1;
  }
  return 0;
}
