// modeld: keeps models resident in one process and serves them to web applications.

#include <csignal>
#include <cstdlib>
#include <iostream>

#include "absl/synchronization/mutex.h"
#include "app/idle_trimmer.h"
#include "app/openmp_env.h"
#include "app/protobuf_log.h"
#include "app/server.h"
#include "common/logging.h"
#include "common/signal_pipe.h"
#include "service/options.h"

int main(int argc, char** argv) {
  modeld::app::PreferShortOpenMpSpin(argv);
  modeld::app::LimitMallocArenas();
  // TensorFlow (opened later, for the first SavedModel) logs its INFO lines to stderr between
  // ours; warnings and errors are enough. Set before any thread could read the environment;
  // a value the user set wins.
  setenv("TF_CPP_MIN_LOG_LEVEL", "1", /*overwrite=*/0);
  absl::StatusOr<modeld::service::ParsedFlags> flags = modeld::service::ParseFlags(argc, argv);
  if (!flags.ok()) {
    std::cerr << "modeld: " << flags.status().message() << "\n";
    return 2;
  }
  if (flags->help) {
    std::cout << modeld::service::FlagsHelp();
    return 0;
  }
  if (absl::Status status = modeld::common::InitLogging(flags->options.log_level); !status.ok()) {
    std::cerr << "modeld: " << status.message() << "\n";
    return 2;
  }
  modeld::app::RouteProtobufLog();

  // Abseil's mutex deadlock detection is on in Debian's build; it costs CPU on every lock
  // and modeld's lock order is fixed by design (no nested locks across components).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  // Installed before loading, so a stop signal during loading is honoured once it is done.
  if (absl::Status status = modeld::common::InstallSignalPipe({SIGTERM, SIGINT, SIGHUP});
      !status.ok()) {
    spdlog::critical("cannot start: {}", status.message());
    return 1;
  }

  auto server = modeld::app::Server::Start(flags->options);
  if (!server.ok()) {
    spdlog::critical("cannot start: {}", server.status().message());
    return 1;
  }
  // SIGHUP re-reads the token file and rescans the repository (--model-control-mode=poll);
  // SIGTERM and SIGINT stop.
  int signal = 0;
  while (signal != SIGTERM && signal != SIGINT) {
    for (int arrived : modeld::common::WaitForSignals(absl::InfiniteDuration())) {
      if (arrived != SIGHUP) {
        signal = arrived;
        break;
      }
      spdlog::info("received SIGHUP");
      (*server)->ReloadAuthTokens();
      (*server)->Rescan();
    }
  }
  spdlog::info("received {}", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  (*server)->Shutdown();
  return 0;
}
