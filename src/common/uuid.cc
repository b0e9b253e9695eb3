#include "common/uuid.h"

#include <cstdint>

#include "absl/random/random.h"
#include "absl/strings/str_format.h"

namespace modeld::common {

std::string RandomUuid() {
  thread_local absl::BitGen bits;
  const uint64_t high = absl::Uniform<uint64_t>(bits);
  const uint64_t low = absl::Uniform<uint64_t>(bits);
  // Version 4 in the 13th hex digit, the RFC 4122 variant (10xx) in the 17th.
  const uint64_t version_high = (high & 0xFFFFFFFFFFFF0FFFull) | 0x0000000000004000ull;
  const uint64_t variant_low = (low & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", version_high >> 32,
                         (version_high >> 16) & 0xFFFF, version_high & 0xFFFF, variant_low >> 48,
                         variant_low & 0xFFFFFFFFFFFFull);
}

}  // namespace modeld::common
