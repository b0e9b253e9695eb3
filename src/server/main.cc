// modeld: keeps models resident in one process and serves them to web applications.
#include <csignal>
#include <cstdio>
#include <iostream>

#include "common/logging.h"
#include "server/options.h"
#include "server/server.h"
#include "common/logging.h"

int main(int argc, char** argv) {
  absl::StatusOr<modeld::server::ParsedFlags> flags = modeld::server::ParseFlags(argc, argv);
  if (!flags.ok()) {
    std::cerr << "modeld: " << flags.status().message() << "\n";
    return 2;
  }
  if (flags->help) {
    std::cout << modeld::server::FlagsHelp();
    return 0;
  }
  if (absl::Status status = modeld::common::InitLogging(flags->options.log_level); !status.ok()) {
    std::cerr << "modeld: " << status.message() << "\n";
    return 2;
  }

  // Block the stop signals before any thread starts, so every thread inherits the mask and
  // only sigwait() below receives them; a signal during loading is handled once it is done.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto server = modeld::server::Server::Start(flags->options);
  if (!server.ok()) {
    spdlog::critical("cannot start: {}", server.status().message());
    return 1;
  }
  spdlog::info("modeld is ready");
  int signal = 0;
  sigwait(&stop_signals, &signal);
  spdlog::info("received {}", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->Shutdown();
  return 0;
}
