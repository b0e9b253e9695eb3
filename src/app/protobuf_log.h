// protobuf logs through its own handler to stderr ("[libprotobuf ERROR ...]"), outside
// modeld's log format, for example when a Redis envelope holds invalid UTF-8 in a string field.
// RouteProtobufLog sends those lines through spdlog instead.
#pragma once

namespace modeld::app {

// Installs the handler; call once at start, after logging is set up. protobuf's ERROR lines
// are about the bytes a client sent, so they become warnings; FATAL stays critical.
void RouteProtobufLog();

}  // namespace modeld::app
