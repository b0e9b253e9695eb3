#include "transport/celery/redis/kombu_layout.h"

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "transport/celery/task_message.h"

namespace modeld::transport::celery {
namespace {

using ::testing::ElementsAre;
using ::testing::MatchesRegex;

const std::string kSep = kKombuSep;

rapidjson::Document Json(const std::string& text) {
  rapidjson::Document doc;
  doc.Parse(text.c_str(), text.size());
  EXPECT_FALSE(doc.HasParseError()) << text;
  return doc;
}

TEST(KombuLayoutTest, PriorityStepsAndKeysFollowQForPri) {
  EXPECT_EQ(KombuPriorityStep(-4), 0);
  EXPECT_EQ(KombuPriorityStep(0), 0);
  EXPECT_EQ(KombuPriorityStep(2), 0);
  EXPECT_EQ(KombuPriorityStep(3), 3);
  EXPECT_EQ(KombuPriorityStep(5), 3);
  EXPECT_EQ(KombuPriorityStep(8), 6);
  EXPECT_EQ(KombuPriorityStep(9), 9);
  EXPECT_EQ(KombuPriorityStep(200), 9);
  EXPECT_EQ(KombuQueueKey("q", 0), "q");
  EXPECT_EQ(KombuQueueKey("q", 4), "q" + kSep + "3");
  EXPECT_THAT(KombuQueueKeys("q"),
              ElementsAre("q", "q" + kSep + "3", "q" + kSep + "6", "q" + kSep + "9"));
  EXPECT_EQ(KombuQueueOfKey("q" + kSep + "6"), "q");
  EXPECT_EQ(KombuQueueOfKey("q"), "q");
}

TEST(KombuLayoutTest, BindingsAndDirectRoutes) {
  EXPECT_EQ(KombuBindingKey("modeld"), "_kombu.binding.modeld");
  EXPECT_EQ(KombuPermanentBindingKey("modeld"), "_kombu.binding_permanent.modeld");
  EXPECT_EQ(KombuBindingMember("rk", "", "q"), "rk" + kSep + kSep + "q");
  EXPECT_THAT(KombuDirectRoute({KombuBindingMember("a", "", "qa"),
                                KombuBindingMember("b", "", "qb"),
                                KombuBindingMember("a", "", "qa2"), "junk"},
                               "a"),
              ElementsAre("qa", "qa2"));
}

TEST(KombuLayoutTest, DeliveryTagsAreUuid4) {
  const std::string tag = NewKombuDeliveryTag();
  EXPECT_THAT(tag, MatchesRegex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                                "[0-9a-f]{12}"));
  EXPECT_NE(tag, NewKombuDeliveryTag());
}

TEST(KombuLayoutTest, EncodedMessageReadsBack) {
  KombuOutgoing out;
  out.body = R"([[1], {}, null])";
  out.headers_json = R"({"id": "t1", "task": "modeld.infer", "lang": "py"})";
  out.correlation_id = "t1";
  out.reply_to = "r";
  out.routing_key = "q";
  out.priority = 4;
  out.delivery_tag = "tag-1";
  absl::StatusOr<std::string> encoded = EncodeKombuMessage(out);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  absl::StatusOr<KombuRedisMessage> parsed = ParseKombuRedisMessage(*encoded);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->body, out.body);
  EXPECT_EQ(parsed->headers.ids.id, "t1");
  EXPECT_EQ(parsed->headers.task, "modeld.infer");
  EXPECT_EQ(parsed->headers.correlation_id, "t1");
  EXPECT_EQ(parsed->headers.reply_to, "r");
  EXPECT_EQ(parsed->headers.content_type, "application/json");
  EXPECT_EQ(parsed->delivery_tag, "tag-1");
  EXPECT_EQ(parsed->routing_key, "q");
  EXPECT_EQ(parsed->priority, 4);
  rapidjson::Document doc = Json(*encoded);
  EXPECT_EQ(doc["properties"]["delivery_mode"].GetInt(), 2);
  EXPECT_STREQ(doc["properties"]["delivery_info"]["exchange"].GetString(), "");

  out.reply_to.clear();
  rapidjson::Document without = Json(*EncodeKombuMessage(out));
  EXPECT_FALSE(without["properties"].HasMember("reply_to"));

  out.headers_json = "[1]";
  EXPECT_TRUE(absl::IsInvalidArgument(EncodeKombuMessage(out).status()));
}

TEST(KombuLayoutTest, InspectReadsTheBookkeepingFields) {
  KombuItemInfo info = InspectKombuItem(
      R"({"headers": {"redelivered": false}, "properties": {"delivery_tag": "d",
          "priority": 6, "delivery_info": {"exchange": "x", "routing_key": "rk",
          "redelivered": true}}})",
      64);
  EXPECT_TRUE(info.is_object);
  EXPECT_EQ(info.delivery_tag, "d");
  EXPECT_EQ(info.exchange, "x");
  EXPECT_EQ(info.routing_key, "rk");
  EXPECT_EQ(info.priority, 6);
  EXPECT_TRUE(info.redelivered);
  EXPECT_TRUE(InspectKombuItem(R"({"headers": {"redelivered": true}})", 64).redelivered);
  EXPECT_FALSE(InspectKombuItem("not json", 64).is_object);
  EXPECT_EQ(InspectKombuItem(R"({"properties": {"priority": 7.9}})", 64).priority, 7);
}

TEST(KombuLayoutTest, UnackedEntryRoundTripsMarkedRedelivered) {
  const std::string item =
      R"({"body": "e30=", "headers": {"id": "a"}, "properties": {"priority": 3,
          "delivery_info": {"exchange": "", "routing_key": "q"}}})";
  const std::string entry = KombuUnackedEntry(item, 64, "ex", "rk");
  rapidjson::Document doc = Json(entry);
  ASSERT_TRUE(doc.IsArray());
  EXPECT_STREQ(doc[1].GetString(), "ex");
  EXPECT_STREQ(doc[2].GetString(), "rk");
  absl::StatusOr<KombuRestore> restore = ParseKombuUnackedEntry(entry, 64);
  ASSERT_TRUE(restore.ok()) << restore.status();
  EXPECT_EQ(restore->exchange, "ex");
  EXPECT_EQ(restore->routing_key, "rk");
  EXPECT_EQ(restore->priority, 3);
  rapidjson::Document payload = Json(restore->payload);
  EXPECT_TRUE(payload["headers"]["redelivered"].GetBool());
  EXPECT_TRUE(payload["properties"]["delivery_info"]["redelivered"].GetBool());
  EXPECT_STREQ(payload["body"].GetString(), "e30=");
  EXPECT_EQ(restore->payload, MarkKombuRedelivered(item, 64));

  // Text that is not JSON is kept as a string and comes back as it was.
  absl::StatusOr<KombuRestore> text =
      ParseKombuUnackedEntry(KombuUnackedEntry("not json", 64, "", "q"), 64);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text->payload, "not json");
  EXPECT_EQ(MarkKombuRedelivered("not json", 64), "not json");
  EXPECT_FALSE(ParseKombuUnackedEntry(R"({"a": 1})", 64).ok());
}

TEST(KombuLayoutTest, DeadLetterReasonGoesIntoObjectsOnly) {
  rapidjson::Document doc =
      Json(WithDeadLetterReason(R"({"body": "x"})", "unknown task", 64));
  EXPECT_STREQ(doc["modeld-dead-letter-reason"].GetString(), "unknown task");
  EXPECT_STREQ(doc["body"].GetString(), "x");
  EXPECT_EQ(WithDeadLetterReason("[1, 2]", "why", 64), "[1, 2]");
  EXPECT_EQ(WithDeadLetterReason("garbage", "why", 64), "garbage");
}

}  // namespace
}  // namespace modeld::transport::celery
