// AMQP field tables (rabbitmq-c's amqp_table_t: message headers, queue arguments) to and from
// JSON object text, so that code above the link (the Celery broker) sees a message's whole
// header table without depending on rabbitmq-c.
//
// Table -> JSON (TableToJson), by field kind:
//   longstr 'S', byte array 'x'   a string. Bytes that are not UTF-8 are read as Latin-1 (each
//                                 byte b becomes U+00bb), so an odd header (binary tracing
//                                 data) never makes the whole message unreadable; such a
//                                 string reads the same as the text of those code points.
//   'b' 'B' 's' 'u' 'I' 'i' 'l'   an integer.
//   'L'                           an integer, read as signed 64-bit: py-amqp (Celery's client)
//                                 writes ints outside the 32-bit range with this letter.
//   'T' timestamp                 an integer (seconds since the epoch).
//   'f' 'd'                       a number (NaN and the infinities as NaN, Infinity).
//   'D' decimal                   a number, exact ("123.45"; the value read as signed, as
//                                 py-amqp writes it).
//   't'                           true / false.
//   'V' void                      null (py-amqp writes None so).
//   'A' array, 'F' table          a list, an object. Keys are read like strings.
// JSON -> table (TableBuilder::SetJson): string -> 'S', integer -> 'l', other number -> 'd',
// true/false -> 't', null -> 'V', list -> 'A', object -> 'F'. What py-amqp reads back is the
// same Python value Celery wrote.
//
// Nesting is bounded both ways (kMaxTableDepth levels, the outermost table is level 1), so a
// hostile message cannot exhaust the stack here.
#pragma once

#include <amqp.h>

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rapidjson/document.h"

namespace modeld::transport::amqp {

inline constexpr int kMaxTableDepth = 64;

// The JSON object text of `table` ("{}" for an empty one). INVALID_ARGUMENT when it nests
// deeper than `max_depth` levels or holds a field kind AMQP does not define.
absl::StatusOr<std::string> TableToJson(const amqp_table_t& table, int max_depth = kMaxTableDepth);

// An amqp_table_t and the memory it points into, built entry by entry. Setting a key that is
// already there replaces its value (top level only). Not copyable or movable: the table
// points into the builder.
class TableBuilder {
 public:
  TableBuilder() = default;
  TableBuilder(const TableBuilder&) = delete;
  TableBuilder& operator=(const TableBuilder&) = delete;

  void SetString(absl::string_view key, absl::string_view text);  // 'S'
  void SetInt64(absl::string_view key, int64_t number);           // 'l'
  // 'I': for arguments RabbitMQ compares by type as well (x-max-priority as modeld has always
  // declared it).
  void SetInt32(absl::string_view key, int32_t number);
  // Sets every member of the JSON object `json` (the conversions above). INVALID_ARGUMENT,
  // with nothing set, for text that is not a JSON object, nesting deeper than `max_depth`, a
  // key longer than 255 bytes (an AMQP short string) or an integer above the signed 64-bit
  // range.
  absl::Status SetJson(absl::string_view json, int max_depth = kMaxTableDepth);

  bool empty() const { return entries_.empty(); }
  // The table: valid while the builder lives and until the next Set call.
  amqp_table_t table();

 private:
  amqp_bytes_t Keep(absl::string_view text);
  amqp_table_entry_t& Entry(absl::string_view key);
  absl::Status Convert(const rapidjson::Value& json, amqp_field_value_t& value);

  // deques: growing them never moves what the entries already point at.
  std::deque<std::string> strings_;
  std::deque<std::vector<amqp_table_entry_t>> tables_;
  std::deque<std::vector<amqp_field_value_t>> arrays_;
  std::vector<amqp_table_entry_t> entries_;  // the top level
};

}  // namespace modeld::transport::amqp
