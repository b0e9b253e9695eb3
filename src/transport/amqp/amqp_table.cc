#include "transport/amqp/amqp_table.h"

#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "transport/http/json_util.h"

namespace modeld::transport::amqp {
namespace {

using http::JsonWriter;

absl::string_view View(const amqp_bytes_t& bytes) {
  return absl::string_view(static_cast<const char*>(bytes.bytes), bytes.len);
}

// UTF-8 text as it is; anything else read as Latin-1 (see the header).
void WriteText(JsonWriter& writer, absl::string_view bytes) {
  if (http::IsValidUtf8(bytes)) {
    http::WriteString(writer, bytes);
    return;
  }
  std::string latin1;
  latin1.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x80) {
      latin1.push_back(c);
    } else {
      latin1.push_back(static_cast<char>(0xC0 | (byte >> 6)));
      latin1.push_back(static_cast<char>(0x80 | (byte & 0x3F)));
    }
  }
  http::WriteString(writer, latin1);
}

// An AMQP decimal, `value` / 10^`scale`, as exact JSON number text.
std::string DecimalText(uint8_t scale, int32_t value) {
  std::string digits = absl::StrCat(std::abs(static_cast<int64_t>(value)));
  if (scale > 0) {
    if (digits.size() <= scale) digits.insert(0, scale - digits.size() + 1, '0');
    digits.insert(digits.size() - scale, ".");
  }
  return value < 0 ? absl::StrCat("-", digits) : digits;
}

absl::Status TooDeep(int max_depth) {
  return absl::InvalidArgumentError(
      absl::StrCat("AMQP field table nested deeper than ", max_depth, " levels"));
}

absl::Status WriteTable(JsonWriter& writer, const amqp_table_t& table, int depth, int max_depth);

absl::Status WriteValue(JsonWriter& writer, const amqp_field_value_t& value, int depth,
                        int max_depth) {
  switch (value.kind) {
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES:
      WriteText(writer, View(value.value.bytes));
      return absl::OkStatus();
    case AMQP_FIELD_KIND_I8:
      writer.Int(value.value.i8);
      return absl::OkStatus();
    case AMQP_FIELD_KIND_U8:
      writer.Uint(value.value.u8);
      return absl::OkStatus();
    case AMQP_FIELD_KIND_I16:
      writer.Int(value.value.i16);
      return absl::OkStatus();
    case AMQP_FIELD_KIND_U16:
      writer.Uint(value.value.u16);
      return absl::OkStatus();
    case AMQP_FIELD_KIND_I32:
      writer.Int(value.value.i32);
      return absl::OkStatus();
    case AMQP_FIELD_KIND_U32:
      writer.Uint(value.value.u32);
      return absl::OkStatus();
    case AMQP_FIELD_KIND_I64:
      writer.Int64(value.value.i64);
      return absl::OkStatus();
    case AMQP_FIELD_KIND_U64:
      // py-amqp writes signed 64-bit integers with 'L' (rabbitmq-c's unsigned kind).
      writer.Int64(static_cast<int64_t>(value.value.u64));
      return absl::OkStatus();
    case AMQP_FIELD_KIND_TIMESTAMP:
      writer.Uint64(value.value.u64);
      return absl::OkStatus();
    case AMQP_FIELD_KIND_F32:
      http::WriteFloat(writer, value.value.f32);
      return absl::OkStatus();
    case AMQP_FIELD_KIND_F64:
      http::WriteDouble(writer, value.value.f64);
      return absl::OkStatus();
    case AMQP_FIELD_KIND_DECIMAL: {
      const std::string text = DecimalText(value.value.decimal.decimals,
                                           static_cast<int32_t>(value.value.decimal.value));
      writer.RawValue(text.data(), text.size(), rapidjson::kNumberType);
      return absl::OkStatus();
    }
    case AMQP_FIELD_KIND_BOOLEAN:
      writer.Bool(value.value.boolean != 0);
      return absl::OkStatus();
    case AMQP_FIELD_KIND_VOID:
      writer.Null();
      return absl::OkStatus();
    case AMQP_FIELD_KIND_ARRAY: {
      if (depth + 1 > max_depth) return TooDeep(max_depth);
      writer.StartArray();
      const amqp_array_t& array = value.value.array;
      for (int i = 0; i < array.num_entries; ++i) {
        RETURN_IF_ERROR(WriteValue(writer, array.entries[i], depth + 1, max_depth));
      }
      writer.EndArray();
      return absl::OkStatus();
    }
    case AMQP_FIELD_KIND_TABLE:
      if (depth + 1 > max_depth) return TooDeep(max_depth);
      return WriteTable(writer, value.value.table, depth + 1, max_depth);
  }
  return absl::InvalidArgumentError(absl::StrCat("AMQP field table holds a value of unknown kind ",
                                                 static_cast<int>(value.kind)));
}

absl::Status WriteTable(JsonWriter& writer, const amqp_table_t& table, int depth, int max_depth) {
  writer.StartObject();
  for (int i = 0; i < table.num_entries; ++i) {
    WriteText(writer, View(table.entries[i].key));
    RETURN_IF_ERROR(WriteValue(writer, table.entries[i].value, depth, max_depth));
  }
  writer.EndObject();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> TableToJson(const amqp_table_t& table, int max_depth) {
  if (max_depth < 1) return TooDeep(max_depth);
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  RETURN_IF_ERROR(WriteTable(writer, table, /*depth=*/1, max_depth));
  return http::BufferText(buffer);
}

void TableBuilder::SetString(absl::string_view key, absl::string_view text) {
  amqp_table_entry_t& entry = Entry(key);
  entry.value.kind = AMQP_FIELD_KIND_UTF8;
  entry.value.value.bytes = Keep(text);
}

void TableBuilder::SetInt64(absl::string_view key, int64_t number) {
  amqp_table_entry_t& entry = Entry(key);
  entry.value.kind = AMQP_FIELD_KIND_I64;
  entry.value.value.i64 = number;
}

void TableBuilder::SetInt32(absl::string_view key, int32_t number) {
  amqp_table_entry_t& entry = Entry(key);
  entry.value.kind = AMQP_FIELD_KIND_I32;
  entry.value.value.i32 = number;
}

absl::Status TableBuilder::SetJson(absl::string_view json, int max_depth) {
  rapidjson::Document doc;
  RETURN_IF_ERROR(http::ParseJson(json, doc, max_depth));
  if (!doc.IsObject()) {
    return absl::InvalidArgumentError(
        absl::StrCat("AMQP headers must be a JSON object, not ", http::JsonTypeName(doc)));
  }
  // Everything converted first, so that a refusal sets nothing.
  std::vector<std::pair<absl::string_view, amqp_field_value_t>> members;
  for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
    const absl::string_view key(it->name.GetString(), it->name.GetStringLength());
    amqp_field_value_t value{};
    RETURN_IF_ERROR(Convert(it->value, value));
    if (key.size() > 255) {
      return absl::InvalidArgumentError(
          absl::StrCat("AMQP header name '", key.substr(0, 32), "...' is longer than 255 bytes"));
    }
    members.emplace_back(key, value);
  }
  for (const auto& [key, value] : members) Entry(key).value = value;
  return absl::OkStatus();
}

amqp_table_t TableBuilder::table() {
  return amqp_table_t{static_cast<int>(entries_.size()),
                      entries_.empty() ? nullptr : entries_.data()};
}

amqp_bytes_t TableBuilder::Keep(absl::string_view text) {
  const std::string& kept = strings_.emplace_back(text);
  return amqp_bytes_t{kept.size(), const_cast<char*>(kept.data())};
}

amqp_table_entry_t& TableBuilder::Entry(absl::string_view key) {
  for (amqp_table_entry_t& entry : entries_) {
    if (View(entry.key) == key) return entry;
  }
  amqp_table_entry_t& entry = entries_.emplace_back();
  entry.key = Keep(key);
  return entry;
}

// ParseJson bounded the nesting already, so this recursion is bounded too.
absl::Status TableBuilder::Convert(const rapidjson::Value& json, amqp_field_value_t& value) {
  switch (json.GetType()) {
    case rapidjson::kNullType:
      value.kind = AMQP_FIELD_KIND_VOID;
      return absl::OkStatus();
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      value.kind = AMQP_FIELD_KIND_BOOLEAN;
      value.value.boolean = json.GetBool() ? 1 : 0;
      return absl::OkStatus();
    case rapidjson::kStringType:
      value.kind = AMQP_FIELD_KIND_UTF8;
      value.value.bytes = Keep(absl::string_view(json.GetString(), json.GetStringLength()));
      return absl::OkStatus();
    case rapidjson::kNumberType:
      if (json.IsInt64()) {
        value.kind = AMQP_FIELD_KIND_I64;
        value.value.i64 = json.GetInt64();
      } else if (json.IsUint64()) {
        return absl::InvalidArgumentError(absl::StrCat("AMQP header integer ", json.GetUint64(),
                                                       " is above the signed 64-bit range"));
      } else {
        value.kind = AMQP_FIELD_KIND_F64;
        value.value.f64 = json.GetDouble();
      }
      return absl::OkStatus();
    case rapidjson::kArrayType: {
      std::vector<amqp_field_value_t>& items = arrays_.emplace_back(json.Size());
      for (rapidjson::SizeType i = 0; i < json.Size(); ++i) {
        items[i] = amqp_field_value_t{};
        RETURN_IF_ERROR(Convert(json[i], items[i]));
      }
      value.kind = AMQP_FIELD_KIND_ARRAY;
      value.value.array =
          amqp_array_t{static_cast<int>(items.size()), items.empty() ? nullptr : items.data()};
      return absl::OkStatus();
    }
    case rapidjson::kObjectType: {
      std::vector<amqp_table_entry_t>& entries = tables_.emplace_back(json.MemberCount());
      size_t i = 0;
      for (auto it = json.MemberBegin(); it != json.MemberEnd(); ++it, ++i) {
        const absl::string_view key(it->name.GetString(), it->name.GetStringLength());
        if (key.size() > 255) {
          return absl::InvalidArgumentError(absl::StrCat("AMQP header name '", key.substr(0, 32),
                                                         "...' is longer than 255 bytes"));
        }
        entries[i] = amqp_table_entry_t{};
        entries[i].key = Keep(key);
        RETURN_IF_ERROR(Convert(it->value, entries[i].value));
      }
      value.kind = AMQP_FIELD_KIND_TABLE;
      value.value.table = amqp_table_t{static_cast<int>(entries.size()),
                                       entries.empty() ? nullptr : entries.data()};
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError("a JSON value of unknown type");
}

}  // namespace modeld::transport::amqp
