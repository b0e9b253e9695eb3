// modeld-bench: a KServe V2 gRPC load generator (bench/README.md).
//
//   modeld-bench --target=127.0.0.1:8001 --model=mlp --concurrency=1,2,4,8,16,32,64
//   modeld-bench --target=127.0.0.1:8001 --model=mlp --rate=5000 --seconds=10
//
// Prints a markdown table per run; --json writes every level for bench/run.py.
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/flags.h"
#include "grpcpp/grpcpp.h"
#include "load_generator/load.h"

ABSL_FLAG(std::string, target, "127.0.0.1:8001", "Server address, HOST:PORT.");
ABSL_FLAG(std::string, model, "", "Model name (required).");
ABSL_FLAG(std::string, model_version, "", "Model version; empty: the newest.");
ABSL_FLAG(int64_t, batch, 1, "Items per request (the first dimension) for batching models.");
ABSL_FLAG(std::string, shape, "",
          "Dims (without the batch) of inputs with -1 dims: NAME:D1,D2[;NAME:...].");
ABSL_FLAG(std::string, concurrency, "",
          "Closed loop: comma-separated in-flight request counts, one level each.");
ABSL_FLAG(std::string, rate, "", "Open loop: comma-separated arrival rates (requests/s).");
ABSL_FLAG(double, warmup_seconds, 1, "Warm-up before each level's measurement.");
ABSL_FLAG(double, seconds, 3, "Measurement window of each level.");
ABSL_FLAG(int, channels, 4, "gRPC channels (TCP connections) the requests are spread over.");
ABSL_FLAG(double, deadline_seconds, 30, "Deadline of each request.");
ABSL_FLAG(int64_t, max_in_flight, 10000, "Open loop: cap on requests in flight.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the random input values.");
ABSL_FLAG(std::string, json, "", "Write the results to this JSON file.");

namespace modeld::bench {
namespace {

absl::StatusOr<std::vector<double>> ParseList(const std::string& flag, const std::string& text) {
  std::vector<double> values;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    double value = 0;
    if (!absl::SimpleAtod(item, &value) || value <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": '", item, "' is not a positive number"));
    }
    values.push_back(value);
  }
  return values;
}

Stubs OpenStubs(const std::string& target, int count) {
  Stubs stubs;
  for (int i = 0; i < count; ++i) {
    grpc::ChannelArguments args;
    // A distinct argument and a local subchannel pool give each channel its own connection.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("modeld.bench.channel_index", i);
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    stubs.push_back(inference::GRPCInferenceService::NewStub(
        grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args)));
  }
  return stubs;
}

absl::Status Main() {
  if (absl::GetFlag(FLAGS_model).empty()) return absl::InvalidArgumentError("--model is required");
  absl::StatusOr<std::vector<double>> concurrency =
      ParseList("concurrency", absl::GetFlag(FLAGS_concurrency));
  if (!concurrency.ok()) return concurrency.status();
  absl::StatusOr<std::vector<double>> rates = ParseList("rate", absl::GetFlag(FLAGS_rate));
  if (!rates.ok()) return rates.status();
  if (concurrency->empty() == rates->empty()) {
    return absl::InvalidArgumentError("give exactly one of --concurrency and --rate");
  }
  InputOptions input;
  input.model = absl::GetFlag(FLAGS_model);
  input.version = absl::GetFlag(FLAGS_model_version);
  input.batch = absl::GetFlag(FLAGS_batch);
  input.seed = absl::GetFlag(FLAGS_seed);
  absl::StatusOr<std::map<std::string, std::vector<int64_t>>> shapes =
      ParseShapes(absl::GetFlag(FLAGS_shape));
  if (!shapes.ok()) return shapes.status();
  input.shapes = *shapes;

  const std::string target = absl::GetFlag(FLAGS_target);
  const Stubs stubs = OpenStubs(target, std::max(1, absl::GetFlag(FLAGS_channels)));
  absl::StatusOr<PreparedRequest> request = PrepareRequest(*stubs.front(), input);
  if (!request.ok()) return request.status();

  LoadOptions options;
  options.warmup_seconds = absl::GetFlag(FLAGS_warmup_seconds);
  options.seconds = absl::GetFlag(FLAGS_seconds);
  options.deadline_seconds = absl::GetFlag(FLAGS_deadline_seconds);
  options.max_in_flight = absl::GetFlag(FLAGS_max_in_flight);

  std::cout << "## " << input.model << " at " << target << ": " << request->description << ", "
            << request->payload_bytes << " input bytes per request, " << stubs.size()
            << " channels\n\n";
  std::vector<LevelResult> levels;
  for (double level : concurrency->empty() ? *rates : *concurrency) {
    levels.push_back(concurrency->empty()
                         ? RunOpenLoop(stubs, *request, level, options)
                         : RunClosedLoop(stubs, *request, static_cast<int>(level), options));
    std::cerr << "level " << level << ": " << levels.back().throughput << " req/s, p99 "
              << levels.back().latency.p99_us << " us\n";
  }
  std::cout << MarkdownTable(levels) << std::flush;
  for (const LevelResult& level : levels) {
    for (const auto& [code, message] : level.error_examples) {
      std::cout << "\n" << code << " (level " << level.level << "): " << message;
    }
  }
  if (const std::string path = absl::GetFlag(FLAGS_json); !path.empty()) {
    RunInfo info{target,
                 input.model,
                 request->description,
                 request->batch,
                 request->payload_bytes,
                 static_cast<int>(stubs.size()),
                 options.warmup_seconds};
    return WriteJson(path, info, levels);
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace modeld::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "KServe V2 gRPC load generator: --model=M --concurrency=1,2,4 or --rate=R");
  modeld::bench::ParseDashedFlags(argc, argv);
  const absl::Status status = modeld::bench::Main();
  if (!status.ok()) {
    std::cerr << "modeld-bench: " << status << "\n";
    return 1;
  }
  return 0;
}
