// The two ways modeld-bench offers load, one level at a time.
//
// Closed loop (RunClosedLoop): `concurrency` requests are always in flight; each answer
// starts the next request at once, from gRPC's callback thread, so one process keeps
// hundreds in flight on a few threads. Latency: send to answer.
//
// Open loop (RunOpenLoop): requests are sent at fixed times t0 + i / rate whatever the
// server does, the way independent users arrive. Latency is measured from the *scheduled*
// send time, so a client that falls behind cannot hide the server's queueing (no
// coordinated omission). RESOURCE_EXHAUSTED answers are counted and timed apart from the
// successes. In-flight requests are capped (arrivals over the cap are skipped and counted) so
// an overloaded server cannot make the client run out of memory.
//
// Both: a warm-up, then the measurement window. Successes completed inside the window give
// the throughput. Every request carries a deadline, so a level always ends.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kserve/grpc_service.grpc.pb.h"
#include "load_generator/clock.h"
#include "load_generator/model_input.h"
#include "load_generator/report.h"

namespace modeld::bench {

struct LoadOptions {
  double warmup_seconds = 1;
  double seconds = 3;
  double deadline_seconds = 30;   // per request
  int64_t max_in_flight = 10000;  // open loop only
};

using Stubs = std::vector<std::unique_ptr<inference::GRPCInferenceService::Stub>>;

// Request i of a level goes out on stubs[i % stubs.size()] (one channel, one TCP connection
// each). `request` must outlive the call; it is shared by all in-flight requests (read only).
LevelResult RunClosedLoop(const Stubs& stubs, const PreparedRequest& request, int concurrency,
                          const LoadOptions& options);

LevelResult RunOpenLoop(const Stubs& stubs, const PreparedRequest& request, double rate,
                        const LoadOptions& options);

}  // namespace modeld::bench
