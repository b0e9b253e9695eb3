#include "server/options.h"

#include <functional>
#include <optional>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace modeld::server {
namespace {

struct Flag {
  absl::string_view name;
  absl::string_view value_name;
  absl::string_view help;
  std::function<absl::Status(ServerOptions&, absl::string_view)> set;
  std::function<std::string(const ServerOptions&)> show;
};

absl::Status ParsePositive(absl::string_view flag, absl::string_view text, int64_t* out) {
  if (!absl::SimpleAtoi(text, out) || *out <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " expects a positive integer, got '", text, "'"));
  }
  return absl::OkStatus();
}

const std::vector<Flag>& Flags() {
  static const auto* flags = new std::vector<Flag>{
      {"model-repository", "PATH",
       "Folder with one sub-folder per model: <model>/config.pbtxt and numeric version folders.",
       [](ServerOptions& o, absl::string_view v) {
         o.model_repository = std::string(v);
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return o.model_repository; }},
      {"grpc-address", "HOST:PORT",
       "Where to serve gRPC (KServe V2). Port 0 picks a free port and logs it.",
       [](ServerOptions& o, absl::string_view v) {
         o.grpc_address = std::string(v);
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return o.grpc_address; }},
      {"grpc-max-message-bytes", "N",
       "Largest gRPC message received or sent; larger requests get RESOURCE_EXHAUSTED.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("grpc-max-message-bytes", v, &o.grpc_max_message_bytes);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.grpc_max_message_bytes); }},
      {"http-address", "HOST:PORT",
       "Where to serve HTTP (KServe V2 REST, TensorFlow Serving REST, /metrics). Port 0 picks a "
       "free port and logs it.",
       [](ServerOptions& o, absl::string_view v) {
         o.http_address = std::string(v);
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return o.http_address; }},
      {"http-threads", "N", "I/O threads serving HTTP connections.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("http-threads", v, &o.http_threads);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.http_threads); }},
      {"http-max-body-bytes", "N", "Largest HTTP request body; larger requests get 413.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("http-max-body-bytes", v, &o.http_max_body_bytes);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.http_max_body_bytes); }},
      {"http-header-timeout-seconds", "N",
       "How long an HTTP client may take to send a request's headers, from its first byte.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("http-header-timeout-seconds", v, &o.http_header_timeout_seconds);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.http_header_timeout_seconds); }},
      {"http-idle-timeout-seconds", "N",
       "How long an HTTP connection may stay silent (between requests, mid-body, mid-write) "
       "before it is closed.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("http-idle-timeout-seconds", v, &o.http_idle_timeout_seconds);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.http_idle_timeout_seconds); }},
      {"drain-timeout-seconds", "N",
       "On SIGTERM/SIGINT, how long in-flight requests may take before they are cancelled.",
       [](ServerOptions& o, absl::string_view v) {
         return ParsePositive("drain-timeout-seconds", v, &o.drain_timeout_seconds);
       },
       [](const ServerOptions& o) { return absl::StrCat(o.drain_timeout_seconds); }},
      {"log-level", "LEVEL", "trace, debug, info, warn, error, critical or off.",
       [](ServerOptions& o, absl::string_view v) {
         o.log_level = std::string(v);
         return absl::OkStatus();
       },
       [](const ServerOptions& o) { return o.log_level; }},
  };
  return *flags;
}

const Flag* FindFlag(absl::string_view name) {
  for (const Flag& flag : Flags()) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<ParsedFlags> ParseFlags(int argc, const char* const* argv) {
  ParsedFlags parsed;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      parsed.help = true;
      return parsed;
    }
    if (!absl::ConsumePrefix(&arg, "--")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument '", arg, "' (flags look like --name=value)"));
    }
    absl::string_view name = arg;
    std::optional<absl::string_view> value;
    if (size_t eq = arg.find('='); eq != absl::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    const Flag* flag = FindFlag(name);
    if (flag == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, " (see modeld --help)"));
    }
    if (!value.has_value()) {
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
      value = argv[++i];
    }
    if (absl::Status status = flag->set(parsed.options, *value); !status.ok()) return status;
  }
  if (parsed.options.model_repository.empty()) {
    return absl::InvalidArgumentError("--model-repository is required (see modeld --help)");
  }
  return parsed;
}

std::string FlagsHelp() {
  const ServerOptions defaults;
  std::string text =
      "modeld: keeps TorchScript models resident and serves them over gRPC (KServe V2) and\n"
      "HTTP (KServe V2 REST, TensorFlow Serving REST).\n\n"
      "Usage: modeld --model-repository=PATH [flags]\n\nFlags:\n";
  for (const Flag& flag : Flags()) {
    absl::StrAppend(&text, "  --", flag.name, "=", flag.value_name, "\n      ", flag.help, "\n");
    if (std::string shown = flag.show(defaults); !shown.empty()) {
      absl::StrAppend(&text, "      (default: ", shown, ")\n");
    }
  }
  absl::StrAppend(&text, "  --help\n      Print this text and exit.\n");
  return text;
}

}  // namespace modeld::server
