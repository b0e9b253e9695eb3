// What the served models look like from outside: each model's versions with their states, the
// repository's index, and stuck runs. The repository produces these, the service hands them to
// the transports, and the transports encode them; none of them reaches past the service.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/model_config.h"

namespace modeld::core {

enum class VersionState { kLoading, kReady, kUnavailable };

// "LOADING", "READY", "UNAVAILABLE" (the names Triton's repository index uses).
absl::string_view VersionStateName(VersionState state);

struct VersionStatus {
  int64_t version = 0;
  VersionState state = VersionState::kLoading;
  std::string reason;  // why it is unavailable; empty otherwise
  // READY only: why the last reload of this version failed, while the copy loaded before keeps
  // serving; empty otherwise.
  std::string reload_error;
};

struct ModelStatus {
  std::string name;
  std::shared_ptr<const ModelConfig> config;  // null when config.pbtxt failed
  std::string reason;  // why the model as a whole cannot serve (config, backend, no versions)
  std::vector<VersionStatus> versions;  // ascending
  // Why the last reload failed while the versions above kept serving (nothing of the new
  // state could be loaded); empty otherwise. A version that kept its loaded copy says so in
  // its own VersionStatus::reload_error.
  std::string reload_error;
  // Not loaded now, and loaded on its first request (--model-memory-budget): it counts as
  // ready, so that load balancers keep sending it the requests that load it. Its versions are
  // UNAVAILABLE with the reason (unloaded or evicted).
  bool loads_on_demand = false;

  // A version READY, or the model loads on demand.
  bool ready() const;
  // The reload errors of the model and of each version, joined ("version 2: ..."); empty when
  // the last reload went through.
  std::string ReloadErrors() const;
  // The model's reason, else every unavailable version's, joined: for error messages.
  std::string UnavailableReason() const;
};

// One line of the repository's index (Triton's repository extension): a version of a model
// folder with its state; a folder that is not served is UNAVAILABLE "unloaded".
struct IndexEntry {
  std::string name;
  std::string version;  // empty for a model without versions
  VersionState state = VersionState::kUnavailable;
  std::string reason;
};

// A version with an instance inside one Run() since `since` (the watchdog).
struct StuckRun {
  std::string model;
  int64_t version = 0;
  absl::Time since;
};

}  // namespace modeld::core
