#include "transport/amqp/amqp_table.h"

#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::transport::amqp {
namespace {

using ::testing::HasSubstr;

amqp_bytes_t B(const char* text) { return amqp_cstring_bytes(text); }

amqp_field_value_t Value(uint8_t kind) {
  amqp_field_value_t value{};
  value.kind = kind;
  return value;
}
amqp_field_value_t Text(const char* text) {
  amqp_field_value_t value = Value(AMQP_FIELD_KIND_UTF8);
  value.value.bytes = B(text);
  return value;
}
amqp_field_value_t I32(int32_t number) {
  amqp_field_value_t value = Value(AMQP_FIELD_KIND_I32);
  value.value.i32 = number;
  return value;
}
amqp_field_value_t Bool(bool flag) {
  amqp_field_value_t value = Value(AMQP_FIELD_KIND_BOOLEAN);
  value.value.boolean = flag ? 1 : 0;
  return value;
}
amqp_field_value_t Array(std::vector<amqp_field_value_t>& items) {
  amqp_field_value_t value = Value(AMQP_FIELD_KIND_ARRAY);
  value.value.array = amqp_array_t{static_cast<int>(items.size()), items.data()};
  return value;
}
amqp_field_value_t Table(std::vector<amqp_table_entry_t>& entries) {
  amqp_field_value_t value = Value(AMQP_FIELD_KIND_TABLE);
  value.value.table = amqp_table_t{static_cast<int>(entries.size()), entries.data()};
  return value;
}
amqp_table_entry_t Entry(const char* key, amqp_field_value_t value) {
  return amqp_table_entry_t{B(key), value};
}
amqp_table_t Of(std::vector<amqp_table_entry_t>& entries) {
  return amqp_table_t{static_cast<int>(entries.size()), entries.data()};
}

// What py-amqp writes for Celery 5's headers: str 'S', None 'V', lists 'A', bool 't', small
// ints 'I', large ones 'L', floats 'd'.
TEST(TableToJsonTest, ReadsTheHeadersCeleryWrites) {
  std::vector<amqp_field_value_t> timelimit = {Value(AMQP_FIELD_KIND_VOID),
                                               Value(AMQP_FIELD_KIND_VOID)};
  amqp_field_value_t big = Value(AMQP_FIELD_KIND_U64);
  big.value.u64 = static_cast<uint64_t>(int64_t{-5'000'000'000});
  amqp_field_value_t countdown = Value(AMQP_FIELD_KIND_F64);
  countdown.value.f64 = 1.5;
  std::vector<amqp_table_entry_t> stamps = {Entry("k", Text("v"))};
  std::vector<amqp_table_entry_t> headers = {
      Entry("lang", Text("py")),
      Entry("task", Text("modeld.infer")),
      Entry("id", Text("6f1c")),
      Entry("timelimit", Array(timelimit)),
      Entry("eta", Value(AMQP_FIELD_KIND_VOID)),
      Entry("retries", I32(0)),
      Entry("ignore_result", Bool(false)),
      Entry("big", big),
      Entry("countdown", countdown),
      Entry("stamps", Table(stamps)),
  };
  absl::StatusOr<std::string> json = TableToJson(Of(headers));
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(*json, R"({"lang":"py","task":"modeld.infer","id":"6f1c","timelimit":[null,null],)"
                   R"("eta":null,"retries":0,"ignore_result":false,"big":-5000000000,)"
                   R"("countdown":1.5,"stamps":{"k":"v"}})");
}

TEST(TableToJsonTest, ReadsEveryIntegerKind) {
  amqp_field_value_t i8 = Value(AMQP_FIELD_KIND_I8), u8 = Value(AMQP_FIELD_KIND_U8),
                     i16 = Value(AMQP_FIELD_KIND_I16), u16 = Value(AMQP_FIELD_KIND_U16),
                     u32 = Value(AMQP_FIELD_KIND_U32), i64 = Value(AMQP_FIELD_KIND_I64),
                     stamp = Value(AMQP_FIELD_KIND_TIMESTAMP);
  i8.value.i8 = -8;
  u8.value.u8 = 200;
  i16.value.i16 = -300;
  u16.value.u16 = 60000;
  u32.value.u32 = 4'000'000'000u;
  i64.value.i64 = INT64_MIN;
  stamp.value.u64 = 1'714'564'800;
  std::vector<amqp_table_entry_t> headers = {
      Entry("b", i8),      Entry("B", u8),  Entry("s", i16), Entry("u", u16),
      Entry("I", I32(-7)), Entry("i", u32), Entry("l", i64), Entry("T", stamp),
  };
  absl::StatusOr<std::string> json = TableToJson(Of(headers));
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(*json, R"({"b":-8,"B":200,"s":-300,"u":60000,"I":-7,"i":4000000000,)"
                   R"("l":-9223372036854775808,"T":1714564800})");
}

TEST(TableToJsonTest, ReadsFloatsDecimalsAndBytes) {
  amqp_field_value_t f32 = Value(AMQP_FIELD_KIND_F32);
  f32.value.f32 = 0.1f;
  amqp_field_value_t nan = Value(AMQP_FIELD_KIND_F64);
  nan.value.f64 = std::numeric_limits<double>::quiet_NaN();
  auto decimal = [](uint8_t scale, int32_t number) {
    amqp_field_value_t value = Value(AMQP_FIELD_KIND_DECIMAL);
    value.value.decimal = amqp_decimal_t{scale, static_cast<uint32_t>(number)};
    return value;
  };
  amqp_field_value_t bytes = Value(AMQP_FIELD_KIND_BYTES);
  bytes.value.bytes = B("raw");
  std::vector<amqp_table_entry_t> headers = {
      Entry("f", f32),
      Entry("nan", nan),
      Entry("d1", decimal(2, 12345)),
      Entry("d2", decimal(3, 5)),
      Entry("d3", decimal(1, -5)),
      Entry("d4", decimal(0, -42)),
      Entry("x", bytes),
      Entry("yes", Bool(true)),
  };
  absl::StatusOr<std::string> json = TableToJson(Of(headers));
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(*json, R"({"f":0.1,"nan":NaN,"d1":123.45,"d2":0.005,"d3":-0.5,"d4":-42,"x":"raw",)"
                   R"("yes":true})");
}

TEST(TableToJsonTest, ReadsBytesThatAreNotUtf8AsLatin1) {
  std::vector<amqp_table_entry_t> headers = {Entry("k\xff", Text("a\xe9\x01"))};
  absl::StatusOr<std::string> json = TableToJson(Of(headers));
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(*json, "{\"k\xc3\xbf\":\"a\xc3\xa9\\u0001\"}");
}

TEST(TableToJsonTest, AnEmptyTableIsAnEmptyObject) {
  EXPECT_EQ(TableToJson(amqp_empty_table).value(), "{}");
}

// `levels` nested lists inside one table entry: the table is level 1, each list one more.
std::string Nested(int levels, int max_depth, absl::Status* status) {
  std::vector<std::vector<amqp_field_value_t>> lists(levels);
  lists.back().push_back(I32(1));
  for (int i = levels - 2; i >= 0; --i) lists[i].push_back(Array(lists[i + 1]));
  std::vector<amqp_table_entry_t> headers = {Entry("deep", Array(lists[0]))};
  absl::StatusOr<std::string> json = TableToJson(Of(headers), max_depth);
  *status = json.status();
  return json.ok() ? *json : "";
}

TEST(TableToJsonTest, BoundsNesting) {
  absl::Status status;
  EXPECT_FALSE(Nested(kMaxTableDepth - 1, kMaxTableDepth, &status).empty());
  EXPECT_TRUE(status.ok()) << status;
  Nested(kMaxTableDepth, kMaxTableDepth, &status);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("nested deeper than 64 levels"));
  Nested(10'000, kMaxTableDepth, &status);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

TEST(TableToJsonTest, RefusesAnUnknownKind) {
  std::vector<amqp_table_entry_t> headers = {Entry("q", Value('Q'))};
  EXPECT_EQ(TableToJson(Of(headers)).status().code(), absl::StatusCode::kInvalidArgument);
}

const amqp_table_entry_t* Find(const amqp_table_t& table, absl::string_view key) {
  for (int i = 0; i < table.num_entries; ++i) {
    const amqp_bytes_t& name = table.entries[i].key;
    if (absl::string_view(static_cast<const char*>(name.bytes), name.len) == key) {
      return &table.entries[i];
    }
  }
  return nullptr;
}

TEST(TableBuilderTest, WritesJsonAsPyAmqpReadsIt) {
  TableBuilder builder;
  ASSERT_TRUE(builder
                  .SetJson(R"({"lang":"py","id":"6f1c","retries":3,"big":-5000000000,)"
                           R"("ratio":0.25,"ignore_result":true,"eta":null,)"
                           R"("timelimit":[null,30],"stamps":{"k":["v"]},"empty":[]})")
                  .ok());
  const amqp_table_t table = builder.table();
  ASSERT_EQ(table.num_entries, 10);
  EXPECT_EQ(Find(table, "lang")->value.kind, AMQP_FIELD_KIND_UTF8);
  EXPECT_EQ(Find(table, "retries")->value.kind, AMQP_FIELD_KIND_I64);
  EXPECT_EQ(Find(table, "retries")->value.value.i64, 3);
  EXPECT_EQ(Find(table, "big")->value.value.i64, -5'000'000'000);
  EXPECT_EQ(Find(table, "ratio")->value.kind, AMQP_FIELD_KIND_F64);
  EXPECT_EQ(Find(table, "ignore_result")->value.kind, AMQP_FIELD_KIND_BOOLEAN);
  EXPECT_EQ(Find(table, "eta")->value.kind, AMQP_FIELD_KIND_VOID);
  const amqp_field_value_t& timelimit = Find(table, "timelimit")->value;
  ASSERT_EQ(timelimit.kind, AMQP_FIELD_KIND_ARRAY);
  ASSERT_EQ(timelimit.value.array.num_entries, 2);
  EXPECT_EQ(timelimit.value.array.entries[0].kind, AMQP_FIELD_KIND_VOID);
  EXPECT_EQ(timelimit.value.array.entries[1].kind, AMQP_FIELD_KIND_I64);
  EXPECT_EQ(Find(table, "stamps")->value.kind, AMQP_FIELD_KIND_TABLE);
  // And back: the same JSON.
  EXPECT_EQ(TableToJson(table).value(),
            R"({"lang":"py","id":"6f1c","retries":3,"big":-5000000000,"ratio":0.25,)"
            R"("ignore_result":true,"eta":null,"timelimit":[null,30],"stamps":{"k":["v"]},)"
            R"("empty":[]})");
}

TEST(TableBuilderTest, ALaterSetReplacesAKey) {
  TableBuilder builder;
  ASSERT_TRUE(builder.SetJson(R"({"modeld-deliveries":"x","a":1})").ok());
  builder.SetInt64("modeld-deliveries", 2);
  builder.SetString("b", "text");
  builder.SetInt32("c", 7);
  EXPECT_EQ(TableToJson(builder.table()).value(),
            R"({"modeld-deliveries":2,"a":1,"b":"text","c":7})");
  EXPECT_EQ(Find(builder.table(), "c")->value.kind, AMQP_FIELD_KIND_I32);
}

TEST(TableBuilderTest, RefusesWhatIsNotAJsonObjectAndSetsNothing) {
  struct Case {
    std::string json;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"[1]", "must be a JSON object, not an array"},
      {"{\"a\":", "malformed JSON"},
      {R"({"a":1,"b":18446744073709551615})", "above the signed 64-bit range"},
      {absl::StrCat(R"({")", std::string(256, 'k'), R"(":1})"), "longer than 255 bytes"},
      {absl::StrCat(R"({"a":{")", std::string(256, 'k'), R"(":1}})"), "longer than 255 bytes"},
      {absl::StrCat("{\"a\":", std::string(kMaxTableDepth, '['), std::string(kMaxTableDepth, ']'),
                    "}"),
       "nested deeper than 64 levels"},
  };
  for (const Case& c : cases) {
    TableBuilder builder;
    const absl::Status status = builder.SetJson(c.json);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.json.substr(0, 40);
    EXPECT_THAT(status.message(), HasSubstr(c.error)) << c.json.substr(0, 40);
    EXPECT_TRUE(builder.empty());
  }
}

TEST(TableBuilderTest, NestsUpToTheBound) {
  TableBuilder builder;
  const std::string json = absl::StrCat("{\"a\":", std::string(kMaxTableDepth - 1, '['),
                                        std::string(kMaxTableDepth - 1, ']'), "}");
  ASSERT_TRUE(builder.SetJson(json).ok());
  EXPECT_EQ(TableToJson(builder.table()).value(), json);
}

}  // namespace
}  // namespace modeld::transport::amqp
