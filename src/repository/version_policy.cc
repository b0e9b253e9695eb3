#include "repository/version_policy.h"

#include <algorithm>

namespace modeld::repository {

std::vector<int64_t> SelectVersions(const inference::ModelVersionPolicy& policy,
                                    const std::vector<int64_t>& available) {
  if (policy.has_all()) return available;
  if (policy.has_specific()) {
    std::vector<int64_t> wanted(policy.specific().versions().begin(),
                                policy.specific().versions().end());
    std::sort(wanted.begin(), wanted.end());
    wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
    return wanted;
  }
  const size_t n = policy.has_latest() ? std::max<uint32_t>(1, policy.latest().num_versions()) : 1;
  const size_t keep = std::min(n, available.size());
  return std::vector<int64_t>(available.end() - keep, available.end());
}

}  // namespace modeld::repository
