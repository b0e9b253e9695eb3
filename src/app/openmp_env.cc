#include "app/openmp_env.h"

#include <unistd.h>

#include <cstdlib>

namespace modeld::app {

void PreferPassiveOpenMpWait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "passive", /*overwrite=*/1);
  execv("/proc/self/exe", argv);
  // Still here: exec failed (no /proc, say). Run on, with the default already loaded; the
  // variable stays set for any process modeld starts.
}

}  // namespace modeld::app
