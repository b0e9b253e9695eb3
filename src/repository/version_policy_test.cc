#include "repository/version_policy.h"

#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace modeld::repository {
namespace {

inference::ModelVersionPolicy Policy(const std::string& text) {
  inference::ModelVersionPolicy policy;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &policy)) << text;
  return policy;
}

TEST(VersionPolicyTest, DefaultIsTheNewest) {
  EXPECT_EQ(SelectVersions(Policy(""), {1, 2, 5}), (std::vector<int64_t>{5}));
  EXPECT_TRUE(SelectVersions(Policy(""), {}).empty());
}

TEST(VersionPolicyTest, LatestN) {
  EXPECT_EQ(SelectVersions(Policy("latest { num_versions: 2 }"), {1, 2, 5}),
            (std::vector<int64_t>{2, 5}));
  EXPECT_EQ(SelectVersions(Policy("latest { num_versions: 9 }"), {1, 2}),
            (std::vector<int64_t>{1, 2}));
}

TEST(VersionPolicyTest, All) {
  EXPECT_EQ(SelectVersions(Policy("all {}"), {1, 2, 5}), (std::vector<int64_t>{1, 2, 5}));
}

TEST(VersionPolicyTest, SpecificKeepsMissingVersionsSoTheyAreReported) {
  EXPECT_EQ(SelectVersions(Policy("specific { versions: [5, 1, 5, 7] }"), {1, 2, 5}),
            (std::vector<int64_t>{1, 5, 7}));
}

}  // namespace
}  // namespace modeld::repository
