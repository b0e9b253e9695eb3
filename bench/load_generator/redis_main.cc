// modeld-bench-redis: a closed-loop load generator for Redis queue transports
// (bench/README.md, "The Redis transport").
//
//   modeld-bench-redis --redis-url=redis://127.0.0.1:6379 --protocol=envelope --model=mlp
//       --input=x:256 --concurrency=8,64 --json=out.json
//   modeld-bench-redis --redis-url=redis://127.0.0.1:6379 --protocol=list-baseline
//       --input=x:256 --concurrency=8,64
//
// Each client is a thread with its own connection and ONE request outstanding, as a web worker
// would have: no pipelining of requests. Per request:
//  - envelope (modeld, docs/redis.md): XADD <stream> MAXLEN ~ N * envelope <RequestEnvelope>
//    (or LPUSH <list> with --list) together with BLPOP <its own reply key>: one round trip, the
//    way the modeld Python client sends it. The reply must carry the request's id; one that
//    does not is counted as misrouted and not as a success.
//  - list-baseline (bench/baselines/redis_list): LPUSH <16-byte header + raw tensor> onto
//    modeld-bench:requests, then BRPOP the one shared results list. The answer popped may be
//    another client's: it is counted as an answer (the baseline's throughput) and, when the
//    header names another client, as misrouted. Latency is the popped answer's own send time
//    to now, as client.py measures it.
// Inputs are random FP32 values. Written in C++ so that the client's own cost (reported as
// client CPU) stays small beside the server's on a shared machine.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/flags.h"
#include "load_generator/clock.h"
#include "load_generator/latency.h"
#include "load_generator/report.h"
#include "modeld/redis.pb.h"
#include "transport/redis/hiredis_connection.h"
#include "transport/redis/redis_url.h"

ABSL_FLAG(std::string, redis_url, "redis://127.0.0.1:6379",
          "redis://[[user]:password@]host:port/db");
ABSL_FLAG(std::string, protocol, "envelope",
          "envelope (modeld's Redis transport) or list-baseline (bench/baselines/redis_list).");
ABSL_FLAG(std::string, stream, "modeld:requests", "envelope: the stream requests go to.");
ABSL_FLAG(std::string, list, "", "envelope: LPUSH onto this list instead of XADD (list mode).");
ABSL_FLAG(int64_t, maxlen, 100000, "envelope: XADD MAXLEN ~ this (0: none).");
ABSL_FLAG(std::string, model, "mlp", "envelope: the model name.");
ABSL_FLAG(std::string, input, "x:256",
          "The FP32 input of one item: NAME:D1,D2,... (sent with a batch dimension of 1).");
ABSL_FLAG(std::string, concurrency, "8,64", "Comma-separated client counts, one level each.");
ABSL_FLAG(double, warmup_seconds, 1, "Warm-up before each level's measurement.");
ABSL_FLAG(double, seconds, 3, "Measurement window of each level.");
ABSL_FLAG(double, deadline_seconds, 30, "Deadline (and BLPOP timeout) of each request.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the random input values.");
ABSL_FLAG(std::string, json, "", "Write the results to this JSON file.");

namespace modeld::bench {
namespace {

namespace redis = ::modeld::transport::redis;

constexpr char kBaselineRequests[] = "modeld-bench:requests";
constexpr char kBaselineResults[] = "modeld-bench:results";
constexpr size_t kBaselineHeader = 16;  // uint64 request id (client << 40 | seq), int64 send ns

struct Input {
  std::string name;
  std::vector<int64_t> shape;  // with the batch dimension
  std::string bytes;           // little-endian FP32
};

absl::StatusOr<Input> ParseInput(const std::string& text, uint64_t seed) {
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  if (parts.size() != 2 || parts[0].empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--input: '", text, "' is not NAME:D1,D2"));
  }
  Input input{parts[0], {1}, {}};
  int64_t count = 1;
  for (absl::string_view dim : absl::StrSplit(parts[1], ',')) {
    int64_t value = 0;
    if (!absl::SimpleAtoi(dim, &value) || value <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("--input: bad dimension '", dim, "'"));
    }
    input.shape.push_back(value);
    count *= value;
  }
  std::mt19937_64 random(seed);
  std::uniform_real_distribution<float> uniform(-1, 1);
  std::vector<float> values(count);
  for (float& v : values) v = uniform(random);
  input.bytes.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  return input;
}

struct Level {
  int64_t measure_start_ns = 0;
  int64_t measure_end_ns = 0;
};

// What one client thread saw inside the window.
struct ClientTally {
  std::vector<int64_t> latencies_ns;
  int64_t sent = 0;
  int64_t misrouted = 0;
  std::map<std::string, int64_t> errors;
  std::map<std::string, std::string> examples;

  void Error(const std::string& code, const std::string& message) {
    ++errors[code];
    examples.emplace(code, message);
  }
};

bool InWindow(const Level& level, int64_t t) {
  return t >= level.measure_start_ns && t < level.measure_end_ns;
}

class Client {
 public:
  Client(int index, std::unique_ptr<redis::RedisConnection> connection, const Input& input,
         const std::string& nonce)
      : index_(index), connection_(std::move(connection)), nonce_(nonce) {
    // The request part of the envelope is the same for every call of this client.
    inference::ModelInferRequest* request = envelope_.mutable_infer();
    request->set_model_name(absl::GetFlag(FLAGS_model));
    auto* tensor = request->add_inputs();
    tensor->set_name(input.name);
    tensor->set_datatype("FP32");
    for (int64_t dim : input.shape) tensor->add_shape(dim);
    request->add_raw_input_contents(input.bytes);
    baseline_payload_ = std::string(kBaselineHeader, '\0') + input.bytes;
  }

  void Run(const Level& level, bool envelope, ClientTally& tally) {
    const std::string deadline_seconds = absl::StrCat(absl::GetFlag(FLAGS_deadline_seconds));
    while (true) {
      const int64_t sent_ns = NowNs();
      if (sent_ns >= level.measure_end_ns) break;
      ++sequence_;
      if (InWindow(level, sent_ns)) ++tally.sent;
      if (envelope) {
        Envelope(level, sent_ns, deadline_seconds, tally);
      } else {
        Baseline(level, sent_ns, deadline_seconds, tally);
      }
    }
  }

 private:
  void Envelope(const Level& level, int64_t sent_ns, const std::string& deadline_seconds,
                ClientTally& tally) {
    const std::string id = absl::StrCat(nonce_, "-", index_, "-", sequence_);
    envelope_.set_request_id(id);
    envelope_.set_reply_key(absl::StrCat("modeld:reply:", id));
    envelope_.set_deadline_unix_ms(
        absl::ToUnixMillis(absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_deadline_seconds))));
    std::vector<redis::RedisCommand> commands;
    const std::string list = absl::GetFlag(FLAGS_list);
    if (!list.empty()) {
      commands.push_back({"LPUSH", list, envelope_.SerializeAsString()});
    } else if (const int64_t maxlen = absl::GetFlag(FLAGS_maxlen); maxlen > 0) {
      commands.push_back({"XADD", absl::GetFlag(FLAGS_stream), "MAXLEN", "~", absl::StrCat(maxlen),
                          "*", "envelope", envelope_.SerializeAsString()});
    } else {
      commands.push_back(
          {"XADD", absl::GetFlag(FLAGS_stream), "*", "envelope", envelope_.SerializeAsString()});
    }
    commands.push_back({"BLPOP", envelope_.reply_key(), deadline_seconds});
    absl::StatusOr<std::vector<redis::RedisReply>> replies =
        connection_->Pipeline(std::move(commands));
    const int64_t done_ns = NowNs();
    const bool counted = InWindow(level, done_ns);
    if (!replies.ok()) {
      if (counted) tally.Error("UNAVAILABLE", std::string(replies.status().message()));
      return;
    }
    if ((*replies)[0].IsError()) {
      if (counted) tally.Error("REDIS_ERROR", (*replies)[0].str);
      return;
    }
    const redis::RedisReply& popped = (*replies)[1];
    if (popped.type != redis::RedisReply::Type::kArray || popped.elements.size() != 2) {
      if (counted) tally.Error("DEADLINE_EXCEEDED", "no reply before the BLPOP timeout");
      return;
    }
    ::modeld::redis::ReplyEnvelope reply;
    if (!reply.ParseFromString(popped.elements[1].str)) {
      if (counted) tally.Error("MALFORMED", "the reply is not a ReplyEnvelope");
      return;
    }
    if (!counted) return;
    if (reply.request_id() != id) {
      ++tally.misrouted;
      return;
    }
    if (reply.code() != 0) {
      tally.Error(StatusCodeName(static_cast<grpc::StatusCode>(reply.code())), reply.message());
      return;
    }
    tally.latencies_ns.push_back(done_ns - sent_ns);
  }

  void Baseline(const Level& level, int64_t sent_ns, const std::string& deadline_seconds,
                ClientTally& tally) {
    const uint64_t request_id = (static_cast<uint64_t>(index_) << 40) | sequence_;
    std::memcpy(baseline_payload_.data(), &request_id, sizeof(request_id));
    std::memcpy(baseline_payload_.data() + 8, &sent_ns, sizeof(sent_ns));
    absl::StatusOr<std::vector<redis::RedisReply>> replies =
        connection_->Pipeline({{"LPUSH", kBaselineRequests, baseline_payload_},
                               {"BRPOP", kBaselineResults, deadline_seconds}});
    const int64_t done_ns = NowNs();
    if (!InWindow(level, done_ns)) return;
    if (!replies.ok()) {
      tally.Error("UNAVAILABLE", std::string(replies.status().message()));
      return;
    }
    const redis::RedisReply& popped = (*replies)[1];
    if (popped.type != redis::RedisReply::Type::kArray || popped.elements.size() != 2 ||
        popped.elements[1].str.size() < kBaselineHeader) {
      tally.Error("DEADLINE_EXCEEDED", "no answer before the BRPOP timeout");
      return;
    }
    uint64_t answered_id = 0;
    int64_t answered_sent_ns = 0;
    std::memcpy(&answered_id, popped.elements[1].str.data(), sizeof(answered_id));
    std::memcpy(&answered_sent_ns, popped.elements[1].str.data() + 8, sizeof(answered_sent_ns));
    // As client.py: an answer counts (the worker answered someone), timed from its own send.
    tally.latencies_ns.push_back(done_ns - answered_sent_ns);
    if ((answered_id >> 40) != static_cast<uint64_t>(index_)) ++tally.misrouted;
  }

  const int index_;
  const std::unique_ptr<redis::RedisConnection> connection_;
  const std::string nonce_;
  ::modeld::redis::RequestEnvelope envelope_;
  std::string baseline_payload_;
  uint64_t sequence_ = 0;
};

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
         usage.ru_stime.tv_usec / 1e6;
}

absl::StatusOr<LevelResult> RunLevel(const redis::RedisEndpoint& endpoint, const Input& input,
                                     bool envelope, int concurrency) {
  redis::HiredisOptions options;
  options.command_timeout = absl::Seconds(absl::GetFlag(FLAGS_deadline_seconds) + 10);
  const std::string nonce = absl::StrCat(absl::Hex(absl::Uniform<uint64_t>(absl::BitGen())));
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < concurrency; ++i) {
    absl::StatusOr<std::unique_ptr<redis::RedisConnection>> connection =
        redis::ConnectHiredis(endpoint, options, "bench");
    if (!connection.ok()) return connection.status();
    clients.push_back(std::make_unique<Client>(i, *std::move(connection), input, nonce));
  }
  if (!envelope) {
    // Answers left from an earlier level would be popped by this level's clients.
    absl::StatusOr<std::unique_ptr<redis::RedisConnection>> admin =
        redis::ConnectHiredis(endpoint, options, "bench-admin");
    if (!admin.ok()) return admin.status();
    if (absl::Status status =
            (*admin)->Command({"DEL", kBaselineRequests, kBaselineResults}).status();
        !status.ok()) {
      return status;
    }
  }

  Level level;
  const int64_t start_ns = NowNs();
  level.measure_start_ns =
      start_ns + static_cast<int64_t>(absl::GetFlag(FLAGS_warmup_seconds) * 1e9);
  level.measure_end_ns =
      level.measure_start_ns + static_cast<int64_t>(absl::GetFlag(FLAGS_seconds) * 1e9);
  std::vector<ClientTally> tallies(concurrency);
  std::vector<std::thread> threads;
  for (int i = 0; i < concurrency; ++i) {
    threads.emplace_back([&, i] { clients[i]->Run(level, envelope, tallies[i]); });
  }
  SleepUntilNs(level.measure_start_ns);
  const double cpu_start = CpuSeconds();
  SleepUntilNs(level.measure_end_ns);
  const double cpu_end = CpuSeconds();
  for (std::thread& thread : threads) thread.join();

  LevelResult result;
  result.mode = "concurrency";
  result.level = concurrency;
  result.seconds = absl::GetFlag(FLAGS_seconds);
  std::vector<int64_t> latencies;
  int64_t misrouted = 0;
  for (ClientTally& tally : tallies) {
    latencies.insert(latencies.end(), tally.latencies_ns.begin(), tally.latencies_ns.end());
    result.sent += tally.sent;
    misrouted += tally.misrouted;
    for (const auto& [code, count] : tally.errors) result.errors[code] += count;
    for (const auto& [code, example] : tally.examples) result.error_examples.emplace(code, example);
  }
  result.successes = static_cast<int64_t>(latencies.size());
  result.throughput = result.successes / result.seconds;
  result.items_per_second = result.throughput;
  result.latency = Summarize(latencies);
  result.misrouted = misrouted;
  result.client_cpu_cores = (cpu_end - cpu_start) / result.seconds;
  return result;
}

absl::Status Main() {
  const std::string protocol = absl::GetFlag(FLAGS_protocol);
  if (protocol != "envelope" && protocol != "list-baseline") {
    return absl::InvalidArgumentError("--protocol must be envelope or list-baseline");
  }
  absl::StatusOr<redis::RedisEndpoint> endpoint =
      redis::ParseRedisUrl(absl::GetFlag(FLAGS_redis_url));
  if (!endpoint.ok()) return endpoint.status();
  absl::StatusOr<Input> input = ParseInput(absl::GetFlag(FLAGS_input), absl::GetFlag(FLAGS_seed));
  if (!input.ok()) return input.status();
  std::vector<LevelResult> levels;
  for (absl::string_view item : absl::StrSplit(absl::GetFlag(FLAGS_concurrency), ',')) {
    int concurrency = 0;
    if (!absl::SimpleAtoi(item, &concurrency) || concurrency <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("--concurrency: bad level '", item, "'"));
    }
    absl::StatusOr<LevelResult> level =
        RunLevel(*endpoint, *input, protocol == "envelope", concurrency);
    if (!level.ok()) return level.status();
    levels.push_back(*std::move(level));
    std::cerr << protocol << " c=" << concurrency << ": " << levels.back().throughput
              << " req/s, p50 " << levels.back().latency.p50_us << " us, p99 "
              << levels.back().latency.p99_us << " us, misrouted " << levels.back().misrouted
              << "\n";
  }
  std::cout << MarkdownTable(levels) << std::flush;
  if (const std::string path = absl::GetFlag(FLAGS_json); !path.empty()) {
    RunInfo info{endpoint->ToString(),
                 protocol == "envelope" ? absl::GetFlag(FLAGS_model) : "baseline worker's",
                 absl::StrCat(input->name, " FP32 ", input->bytes.size(), " bytes"),
                 1,
                 static_cast<int64_t>(input->bytes.size()),
                 0,
                 absl::GetFlag(FLAGS_warmup_seconds)};
    return WriteJson(path, info, levels);
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace modeld::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "closed-loop load through a Redis queue: --protocol=envelope|list-baseline "
      "--concurrency=8,64");
  modeld::bench::ParseDashedFlags(argc, argv);
  const absl::Status status = modeld::bench::Main();
  if (!status.ok()) {
    std::cerr << "modeld-bench-redis: " << status << "\n";
    return 1;
  }
  return 0;
}
