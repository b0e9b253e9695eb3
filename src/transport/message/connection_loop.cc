#include "transport/message/connection_loop.h"

#include "common/logging.h"
#include "transport/message/backoff.h"

namespace modeld::transport::message {

void RunConnectionLoop(const ConnectionLoop& loop, StopRequests& stop, const common::Clock& clock,
                       metrics::Counter& reconnects) {
  Backoff backoff(loop.min_backoff, loop.max_backoff);
  bool ever_connected = false;
  bool warned = false;
  while (!loop.done()) {
    if (!loop.connected()) {
      absl::Status connected = loop.connect();
      if (!connected.ok()) {
        if (!warned) {
          spdlog::warn("{}: {} ({}); retrying", loop.name, connected.message(), loop.where);
          warned = true;
        } else {
          spdlog::debug("{}: {}; retrying", loop.name, connected.message());
        }
        loop.lost();
        stop.SleepUntil(clock.Now() + backoff.Next(), clock);
        continue;
      }
      backoff.Reset();
      if (ever_connected) reconnects.Increment();
      if (warned || !ever_connected) spdlog::info("{}: {}", loop.name, loop.consuming());
      ever_connected = true;
      warned = false;
    }
    if (absl::Status step = loop.step(); !step.ok()) {
      spdlog::warn("{}: {}; reconnecting", loop.name, step.message());
      warned = true;
      loop.lost();
    }
  }
}

}  // namespace modeld::transport::message
