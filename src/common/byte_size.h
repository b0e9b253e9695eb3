// Sizes of memory as people write them on a command line ("2G", "512M", "1.5GiB") and as
// messages show them ("2.0 GiB"): --model-memory-budget and the budget's errors
// (docs/design/memory-budget.md).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace modeld::common {

// A positive number of bytes from `text`: a number, then optionally a unit.
//
//   number: digits, optionally with a fraction ("1.5"); no sign, no exponent.
//   unit:   K, M, G or T, optionally followed by "i", optionally followed by "B"; or "B"
//           alone; case-insensitive; optionally separated from the number by spaces
//           ("2 GB"). No unit means bytes.
//
// Every unit is a power of 1024, with or without the "i": K = Ki = KiB = 2^10,
// M = 2^20, G = 2^30, T = 2^40. This is what docker (--memory=2g) and the JVM (-Xmx2G) do
// and what a memory budget means; it differs from Kubernetes, where G = 10^9 and only Gi is
// 2^30 (a "2G" budget here is 7% larger than a Kubernetes "2G" limit, so size a container's
// limit in Gi). A fraction is rounded down to a whole byte ("0.1K" = 102); a number of bytes
// with no unit must be whole ("1.5" and "1.5B" are refused). Whitespace around the whole is
// ignored.
//
// INVALID_ARGUMENT, quoting `text` and saying why, for: empty text, a negative or zero size,
// anything that is not a number, an unknown unit, or more than INT64_MAX bytes. The message
// does not name a flag: the caller adds "--model-memory-budget: " or its own context.
// Thread-safe.
absl::StatusOr<int64_t> ParseByteSize(absl::string_view text);

// `bytes` for a message, in the largest binary unit under which it is at least 1 once
// rounded: "17 B", "1.5 MiB", "512 KiB", "900 MiB" (whole numbers from 10 of a unit below a
// GiB, one decimal under 10), "2.0 GiB", "3.1 GiB", "1.5 TiB" (one decimal from a GiB up, up
// to EiB). Rounded to nearest, so 1023.7 MiB is
// "1.0 GiB" rather than "1024 MiB". A negative size is formatted as its magnitude with a
// "-". Thread-safe.
std::string FormatBytes(int64_t bytes);

}  // namespace modeld::common
