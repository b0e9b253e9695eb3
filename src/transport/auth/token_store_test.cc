#include "transport/auth/token_store.h"

#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "testing/temp_repository.h"

namespace modeld::transport::auth {
namespace {

using ::testing::HasSubstr;

void Write(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

TEST(TokenStoreTest, ReadsTokensSkippingCommentsAndBlankLines) {
  modeld::testing::TempRepository dir;
  const auto path = dir.path() / "tokens";
  Write(path, "# web tier\n  alpha-1  \n\n# batch jobs\nbeta.2\r\n");
  auto store = TokenStore::Load(path.string());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->size(), 2u);
  EXPECT_TRUE((*store)->Check("alpha-1"));
  EXPECT_TRUE((*store)->Check("beta.2"));
  EXPECT_FALSE((*store)->Check("alpha-"));
  EXPECT_FALSE((*store)->Check("alpha-12"));
  EXPECT_FALSE((*store)->Check("# web tier"));
  EXPECT_FALSE((*store)->Check(""));
}

TEST(TokenStoreTest, RefusesFilesWithoutTokensOrWithBadOnes) {
  modeld::testing::TempRepository dir;
  const auto path = dir.path() / "tokens";
  EXPECT_THAT(TokenStore::Load(path.string()).status().message(),
              HasSubstr("cannot read the token file"));
  Write(path, "# only a comment\n\n");
  EXPECT_THAT(TokenStore::Load(path.string()).status().message(), HasSubstr("holds no token"));
  Write(path, "good\ntwo words\n");
  absl::Status status = TokenStore::Load(path.string()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(":2: a token may hold only visible ASCII"));
}

TEST(TokenStoreTest, ReloadReplacesTokensAndKeepsThemOnError) {
  modeld::testing::TempRepository dir;
  const auto path = dir.path() / "tokens";
  Write(path, "old\n");
  auto store = TokenStore::Load(path.string());
  ASSERT_TRUE(store.ok());
  Write(path, "new\n");
  ASSERT_TRUE((*store)->Reload().ok());
  EXPECT_FALSE((*store)->Check("old"));
  EXPECT_TRUE((*store)->Check("new"));
  Write(path, "\n");  // emptied by mistake: the tokens in use stay
  EXPECT_FALSE((*store)->Reload().ok());
  EXPECT_TRUE((*store)->Check("new"));
}

TEST(TokenStoreTest, FromTokens) {
  auto store = TokenStore::FromTokens({"a", "b"});
  ASSERT_TRUE(store.ok());
  EXPECT_TRUE((*store)->Check("b"));
  EXPECT_FALSE((*store)->Check("c"));
  EXPECT_FALSE(TokenStore::FromTokens({}).ok());
}

}  // namespace
}  // namespace modeld::transport::auth
