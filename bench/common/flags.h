// Command lines of the bench tools: Abseil flags, spelled with dashes like modeld's own
// (--warmup-seconds=1); Abseil itself only knows --warmup_seconds, so names are translated.
#pragma once

#include <string>
#include <vector>

#include "absl/flags/parse.h"

namespace modeld::bench {

// absl::ParseCommandLine after turning "--some-flag=v" into "--some_flag=v" (the value keeps
// its dashes). Returns the positional arguments, as Abseil does.
inline std::vector<char*> ParseDashedFlags(int argc, char** argv) {
  static std::vector<std::string> storage;
  storage.assign(argv, argv + argc);
  std::vector<char*> args;
  for (std::string& arg : storage) {
    if (arg.rfind("--", 0) == 0) {
      for (size_t i = 2; i < arg.size() && arg[i] != '='; ++i) {
        if (arg[i] == '-') arg[i] = '_';
      }
    }
    args.push_back(arg.data());
  }
  return absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
}

}  // namespace modeld::bench
