#include "common/runtime_library.h"

#include <system_error>

namespace modeld::common {

std::string RuntimeLibrary(const std::string& built_in, const std::filesystem::path& executable) {
  if (built_in.empty() || executable.empty()) return built_in;
  const std::filesystem::path installed = executable.parent_path() / kInstalledLibraryDir /
                                          std::filesystem::path(built_in).filename();
  std::error_code error;
  if (std::filesystem::exists(installed, error)) return installed.lexically_normal().string();
  return built_in;
}

std::string RuntimeLibrary(const std::string& built_in) {
  std::error_code error;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  return RuntimeLibrary(built_in, error ? std::filesystem::path() : self);
}

}  // namespace modeld::common
