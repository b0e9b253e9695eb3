#include "app/protobuf_log.h"

#include <string>

#include "common/logging.h"
#include "google/protobuf/stubs/logging.h"

namespace modeld::app {
namespace {

void LogThroughSpdlog(google::protobuf::LogLevel level, const char* /*filename*/, int /*line*/,
                      const std::string& message) {
  switch (level) {
    case google::protobuf::LOGLEVEL_INFO:
      spdlog::debug("protobuf: {}", message);
      return;
    case google::protobuf::LOGLEVEL_WARNING:
    case google::protobuf::LOGLEVEL_ERROR:
      spdlog::warn("protobuf: {}", message);
      return;
    case google::protobuf::LOGLEVEL_FATAL:
      spdlog::critical("protobuf: {}", message);
      return;
  }
}

}  // namespace

void RouteProtobufLog() { google::protobuf::SetLogHandler(&LogThroughSpdlog); }

}  // namespace modeld::app
