#include "supervisor/supervisor_flags.h"

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace modeld::supervisor {
namespace {

absl::Status ParseAtLeast(absl::string_view name, absl::string_view value, int64_t minimum,
                          int64_t* out) {
  int64_t parsed = 0;
  if (!absl::SimpleAtoi(value, &parsed) || parsed < minimum) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " expects a whole number >= ", minimum, ", got '", value, "'"));
  }
  *out = parsed;
  return absl::OkStatus();
}

bool IsKnownFlag(absl::string_view name) {
  return name == "backoff-initial-ms" || name == "backoff-max-ms" ||
         name == "crash-loop-restarts" || name == "crash-loop-window-seconds";
}

absl::Status UnknownFlag(absl::string_view name) {
  return absl::InvalidArgumentError(
      absl::StrCat("unknown flag --", name, " (see modeld-supervisor --help)"));
}

absl::Status SetFlag(absl::string_view name, absl::string_view value,
                     RestartPolicyOptions& policy) {
  int64_t parsed = 0;
  if (name == "backoff-initial-ms") {
    if (absl::Status status = ParseAtLeast(name, value, 1, &parsed); !status.ok()) return status;
    policy.backoff_initial = absl::Milliseconds(parsed);
  } else if (name == "backoff-max-ms") {
    if (absl::Status status = ParseAtLeast(name, value, 1, &parsed); !status.ok()) return status;
    policy.backoff_max = absl::Milliseconds(parsed);
  } else if (name == "crash-loop-restarts") {
    if (absl::Status status = ParseAtLeast(name, value, 0, &parsed); !status.ok()) return status;
    if (parsed > 1000000) {
      return absl::InvalidArgumentError(
          absl::StrCat("--crash-loop-restarts is too large: ", value));
    }
    policy.crash_loop_restarts = static_cast<int>(parsed);
  } else if (name == "crash-loop-window-seconds") {
    if (absl::Status status = ParseAtLeast(name, value, 1, &parsed); !status.ok()) return status;
    policy.crash_loop_window = absl::Seconds(parsed);
  } else {
    return UnknownFlag(name);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SupervisorFlags> ParseSupervisorFlags(int argc, const char* const* argv) {
  SupervisorFlags flags;
  int i = 1;
  for (; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "--help" || arg == "-h") {
      flags.help = true;
      return flags;
    }
    if (!absl::ConsumePrefix(&arg, "--")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument '", arg,
                       "' (flags look like --name=value; the command to run follows \"--\")"));
    }
    absl::string_view name = arg;
    std::optional<absl::string_view> value;
    if (size_t eq = arg.find('='); eq != absl::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    if (!IsKnownFlag(name)) return UnknownFlag(name);
    if (!value.has_value()) {
      if (i + 1 >= argc || absl::string_view(argv[i + 1]) == "--") {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
      value = argv[++i];
    }
    if (absl::Status status = SetFlag(name, *value, flags.policy); !status.ok()) return status;
  }
  if (i >= argc || i + 1 >= argc) {
    return absl::InvalidArgumentError(
        "no command to run: give it after \"--\", e.g. modeld-supervisor -- /usr/bin/modeld "
        "--model-repository=/models (see modeld-supervisor --help)");
  }
  for (++i; i < argc; ++i) flags.command.emplace_back(argv[i]);
  if (flags.command.front().empty()) {
    return absl::InvalidArgumentError("the command to run is an empty string");
  }
  if (flags.policy.backoff_max < flags.policy.backoff_initial) {
    return absl::InvalidArgumentError(
        absl::StrCat("--backoff-max-ms (", absl::ToInt64Milliseconds(flags.policy.backoff_max),
                     ") is below --backoff-initial-ms (",
                     absl::ToInt64Milliseconds(flags.policy.backoff_initial), ")"));
  }
  return flags;
}

std::string SupervisorHelp() {
  const RestartPolicyOptions defaults;
  return absl::StrCat(
      "modeld-supervisor: runs modeld as a child process and restarts it when it dies.\n\n"
      "Usage: modeld-supervisor [flags] -- /path/to/modeld --model-repository=PATH "
      "[modeld flags]\n\n"
      "The command is run with execv (no shell, PATH is not searched), with the environment\n"
      "plus MODELD_SUPERVISED=1. Exit status 0 stops the supervisor (status 0); status 2 (bad\n"
      "flags) stops it with status 2; any other exit or death by a signal restarts it after a\n"
      "backoff. SIGTERM and SIGINT are forwarded, then the supervisor waits for the child and\n"
      "exits (0 if the child exited 0, else 1); SIGHUP is forwarded.\n\nFlags:\n",
      "  --backoff-initial-ms=N\n      Delay before the first restart; each further one doubles "
      "it.\n      (default: ",
      absl::ToInt64Milliseconds(defaults.backoff_initial), ")\n",
      "  --backoff-max-ms=N\n      The longest delay before a restart.\n      (default: ",
      absl::ToInt64Milliseconds(defaults.backoff_max), ")\n",
      "  --crash-loop-restarts=N\n      Give up (exit 1) when the child needs more restarts than "
      "this\n      within --crash-loop-window-seconds.\n      (default: ",
      defaults.crash_loop_restarts, ")\n",
      "  --crash-loop-window-seconds=N\n      The crash-loop window; a child that ran at least "
      "this long also\n      resets the backoff to --backoff-initial-ms.\n      (default: ",
      absl::ToInt64Seconds(defaults.crash_loop_window), ")\n",
      "  --help\n      Print this text and exit.\n");
}

}  // namespace modeld::supervisor
