// Limits on the JSON the REST APIs read, apart from the parser (json_util.h) so that headers
// can name them without including RapidJSON.
#pragma once

namespace modeld::transport::http {

// --http-max-json-depth's default: how deep arrays and objects may nest in a request body.
inline constexpr int kDefaultMaxJsonDepth = 64;

}  // namespace modeld::transport::http
