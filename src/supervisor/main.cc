// modeld-supervisor: runs modeld as a child process and restarts it when it dies.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "absl/status/statusor.h"
#include "common/logging.h"
#include "supervisor/supervise.h"
#include "supervisor/supervisor_flags.h"

int main(int argc, char** argv) {
  absl::StatusOr<modeld::supervisor::SupervisorFlags> flags =
      modeld::supervisor::ParseSupervisorFlags(argc, argv);
  if (!flags.ok()) {
    std::cerr << "modeld-supervisor: " << flags.status().message() << "\n";
    return 2;
  }
  if (flags->help) {
    std::cout << modeld::supervisor::SupervisorHelp();
    return 0;
  }
  // Checked once here, so a wrong path is a usage error rather than a crash loop.
  if (access(flags->command.front().c_str(), X_OK) != 0) {
    std::cerr << "modeld-supervisor: cannot execute " << flags->command.front() << ": "
              << std::strerror(errno) << " (give the program's path; PATH is not searched)\n";
    return 2;
  }
  if (absl::Status status = modeld::common::InitLogging("info"); !status.ok()) {
    std::cerr << "modeld-supervisor: " << status.message() << "\n";
    return 1;
  }
  // modeld's line format, marked so the supervisor's lines stand out among the child's.
  spdlog::default_logger()->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ [supervisor] %v");
  return modeld::supervisor::Supervise(*flags);
}
