#include "core/model_status.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace modeld::core {

absl::string_view VersionStateName(VersionState state) {
  switch (state) {
    case VersionState::kLoading:
      return "LOADING";
    case VersionState::kReady:
      return "READY";
    case VersionState::kUnavailable:
      return "UNAVAILABLE";
  }
  return "UNKNOWN";
}

bool ModelStatus::ready() const {
  return loads_on_demand || std::any_of(versions.begin(), versions.end(),
                     [](const VersionStatus& v) { return v.state == VersionState::kReady; });
}

std::string ModelStatus::ReloadErrors() const {
  std::vector<std::string> errors;
  if (!reload_error.empty()) errors.push_back(reload_error);
  for (const VersionStatus& v : versions) {
    if (!v.reload_error.empty()) {
      errors.push_back(absl::StrCat("version ", v.version, ": ", v.reload_error));
    }
  }
  return absl::StrJoin(errors, "; ");
}

std::string ModelStatus::UnavailableReason() const {
  if (!reason.empty()) return reason;
  std::vector<std::string> reasons;
  for (const VersionStatus& v : versions) {
    if (v.state == VersionState::kUnavailable) {
      reasons.push_back(absl::StrCat("version ", v.version, ": ", v.reason));
    } else if (v.state == VersionState::kLoading) {
      reasons.push_back(absl::StrCat("version ", v.version, " is loading"));
    }
  }
  return absl::StrJoin(reasons, "; ");
}

}  // namespace modeld::core
