#include "transport/http/framing.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::transport::http {
namespace {

using ::testing::HasSubstr;

void ExpectRefused(const HeaderFields& fields, const std::string& fragment) {
  const absl::Status status = CheckRequestFraming(fields);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << fragment;
  EXPECT_THAT(status.message(), HasSubstr(fragment));
}

TEST(FramingTest, AcceptsOrdinaryRequests) {
  EXPECT_TRUE(CheckRequestFraming({}).ok());
  EXPECT_TRUE(CheckRequestFraming({{"content-length", "12"}, {"host", "x"}}).ok());
  // One value given twice is the same framing.
  EXPECT_TRUE(CheckRequestFraming({{"content-length", "12"}, {"content-length", " 12"}}).ok());
  EXPECT_TRUE(CheckRequestFraming({{"inference-header-content-length", "7"},
                                   {"inference-header-content-length", "7"}})
                  .ok());
  // Plain chunked passes here; the session answers it 411.
  EXPECT_TRUE(CheckRequestFraming({{"transfer-encoding", "chunked"}}).ok());
  EXPECT_TRUE(CheckRequestFraming({{"transfer-encoding", "gzip, Chunked"}}).ok());
}

TEST(FramingTest, RefusesAmbiguousLengths) {
  ExpectRefused({{"transfer-encoding", "xchunked"}, {"content-length", "5"}},
                "both Transfer-Encoding and Content-Length");
  ExpectRefused({{"transfer-encoding", "chunked"}, {"content-length", "5"}},
                "both Transfer-Encoding and Content-Length");
  ExpectRefused({{"transfer-encoding", "xchunked"}}, "Transfer-Encoding 'xchunked'");
  ExpectRefused({{"transfer-encoding", "chunked, gzip"}}, "'gzip' does not end in chunked");
  ExpectRefused({{"transfer-encoding", "chunked"}, {"transfer-encoding", "identity"}},
                "'identity' does not end in chunked");
  ExpectRefused({{"content-length", "5"}, {"content-length", "6"}},
                "Content-Length is given 2 times with different values ('5', '6')");
  ExpectRefused(
      {{"inference-header-content-length", "10"}, {"inference-header-content-length", "20"}},
      "Inference-Header-Content-Length is given 2 times");
}

}  // namespace
}  // namespace modeld::transport::http
