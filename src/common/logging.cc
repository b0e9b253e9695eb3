#include "common/logging.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "spdlog/sinks/base_sink.h"
#include "spdlog/spdlog.h"

namespace modeld::common {
namespace {

std::atomic<int> log_fd{STDERR_FILENO};

// Writes each formatted line to log_fd with write(2): no FILE buffer to lose or to share with
// libraries that print to stderr themselves.
class FileDescriptorSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& message) override {
    spdlog::memory_buf_t line;
    formatter_->format(message, line);
    const char* data = line.data();
    size_t left = line.size();
    const int fd = log_fd.load(std::memory_order_acquire);
    while (left > 0) {
      const ssize_t written = ::write(fd, data, left);
      if (written < 0 && errno == EINTR) continue;
      if (written <= 0) return;  // nowhere left to report it
      data += written;
      left -= static_cast<size_t>(written);
    }
  }
  void flush_() override {}
};

}  // namespace

void SetLogFileDescriptor(int fd) { log_fd.store(fd, std::memory_order_release); }

absl::Status InitLogging(absl::string_view level) {
  const spdlog::level::level_enum parsed = spdlog::level::from_str(std::string(level));
  // from_str answers "off" for any name it does not know; only "off" itself means off.
  if (parsed == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown log level '", level,
                     "' (expected trace, debug, info, warn, error, critical or off)"));
  }
  auto logger = std::make_shared<spdlog::logger>("modeld", std::make_shared<FileDescriptorSink>());
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return absl::OkStatus();
}

}  // namespace modeld::common
