#include "common/uuid.h"

#include "absl/container/flat_hash_set.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeld::common {
namespace {

TEST(RandomUuidTest, IsAVersion4UuidInPythonsForm) {
  for (int i = 0; i < 100; ++i) {
    const std::string id = RandomUuid();
    EXPECT_THAT(id, ::testing::MatchesRegex(
                        "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"));
  }
}

TEST(RandomUuidTest, DoesNotRepeat) {
  absl::flat_hash_set<std::string> seen;
  for (int i = 0; i < 10000; ++i) EXPECT_TRUE(seen.insert(RandomUuid()).second);
}

}  // namespace
}  // namespace modeld::common
