// Where modeld finds the framework libraries it opens at run time (TensorFlow, ONNX Runtime,
// LibTorch's CUDA library): beside an installed modeld first, else where the build found them.
#pragma once

#include <filesystem>
#include <string>

namespace modeld::common {

// The folder `cmake --install` copies the framework libraries into, relative to the folder of
// the modeld binary: <prefix>/bin/modeld finds them in <prefix>/lib/modeld.
inline constexpr char kInstalledLibraryDir[] = "../lib/modeld";

// `built_in` (an absolute path compiled in: a wheel's library in the build's .venv), unless a
// file of the same name lies in the installed library folder beside `executable`; that copy
// wins, so an installed modeld never depends on the checkout it was built from. Empty stays
// empty.
std::string RuntimeLibrary(const std::string& built_in, const std::filesystem::path& executable);

// As above, for the running binary (/proc/self/exe).
std::string RuntimeLibrary(const std::string& built_in);

}  // namespace modeld::common
