// Which of a model's version folders to serve, per its config's version_policy.
#pragma once

#include <cstdint>
#include <vector>

#include "kserve/model_config.pb.h"

namespace modeld::repository {

// The versions to serve, ascending. `available` is ascending. latest (default, n = 1): the n
// highest; all: every one; specific: those listed, including ones with no folder (their load
// then fails with a reason, so a typo in the config is visible rather than silently ignored).
std::vector<int64_t> SelectVersions(const inference::ModelVersionPolicy& policy,
                                    const std::vector<int64_t>& available);

}  // namespace modeld::repository
