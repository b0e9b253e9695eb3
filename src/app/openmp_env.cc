#include "app/openmp_env.h"

#include <unistd.h>

#include <cstdlib>

namespace modeld::app {

void PreferShortOpenMpSpin(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) {
    return;
  }
  setenv("GOMP_SPINCOUNT", kDefaultOpenMpSpinCount, /*overwrite=*/1);
  execv("/proc/self/exe", argv);
  // Still here: exec failed (no /proc, say). Run on with the settings already read; the
  // variable stays set for any process modeld starts.
}

}  // namespace modeld::app
