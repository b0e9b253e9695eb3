// JSON reading and writing shared by the REST codecs (RapidJSON underneath).
//
// Reading: one strict parser configuration for every body. Writing: a SAX writer into a
// string buffer, numbers printed so that they read back bit-exactly, and strings that are
// always valid UTF-8.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "transport/http/json_limits.h"

namespace modeld::transport::http {

// NaN and Infinity are written as the bare words NaN, Infinity and -Infinity, which Python's
// json, python-rapidjson and TensorFlow Serving's clients read (standard JSON has no form).
using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::UTF8<>,
                                     rapidjson::CrtAllocator, rapidjson::kWriteNanAndInfFlag>;

// Parses `text` as exactly one JSON value into `doc`: UTF-8 is validated, NaN/Infinity are
// accepted, numbers are read at full precision (a float64 printed shortest reads back
// bit-exactly), and parsing is iterative so deep nesting cannot exhaust the stack.
// INVALID_ARGUMENT "malformed JSON at byte N: <reason>" otherwise, and "JSON nested deeper
// than <max_depth> levels ..." when arrays and objects nest deeper than `max_depth` (the
// outermost array or object is level 1), found before the rest is read.
absl::Status ParseJson(absl::string_view text, rapidjson::Document& doc,
                       int max_depth = kDefaultMaxJsonDepth);

// "a string", "an object", "an array", "a number", "true", "false" or "null": for messages.
const char* JsonTypeName(const rapidjson::Value& value);

// Whether `bytes` is well-formed UTF-8 (no overlong forms, surrogates or values > U+10FFFF).
bool IsValidUtf8(absl::string_view bytes);

// Writes `text` as a JSON string; bytes that are not UTF-8 become U+FFFD.
void WriteSanitizedString(JsonWriter& writer, absl::string_view text);
// Writes `text` as a JSON string; the caller has checked it is valid UTF-8.
inline void WriteString(JsonWriter& writer, absl::string_view text) {
  writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
}

// Numbers in their shortest form that reads back to the same bits when parsed as float64
// (and, for WriteFloat, then rounded to float32, as numpy and every JSON client do).
void WriteFloat(JsonWriter& writer, float value);
void WriteDouble(JsonWriter& writer, double value);

// The text of a finished writer's buffer.
inline std::string BufferText(const rapidjson::StringBuffer& buffer) {
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace modeld::transport::http
