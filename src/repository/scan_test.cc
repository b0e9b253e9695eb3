#include "repository/scan.h"

#include "gtest/gtest.h"
#include "testing/temp_repository.h"

namespace modeld::repository {
namespace {

TEST(ScanTest, ListsModelFoldersSortedAndSkipsHiddenAndFiles) {
  testing::TempRepository repo;
  repo.WriteFile("b/config.pbtxt", "");
  repo.WriteFile("a/config.pbtxt", "");
  repo.WriteFile(".hidden/config.pbtxt", "");
  repo.WriteFile("README", "not a model");
  absl::StatusOr<std::vector<ModelDir>> models = ListModelDirs(repo.path());
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->size(), 2u);
  EXPECT_EQ((*models)[0].name, "a");
  EXPECT_EQ((*models)[1].name, "b");
  EXPECT_EQ((*models)[1].path, repo.path() / "b");
}

TEST(ScanTest, MissingRepositoryIsNotFound) {
  absl::Status status = ListModelDirs("/nonexistent/repository").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_NE(status.message().find("/nonexistent/repository"), absl::string_view::npos);
}

TEST(ScanTest, VersionsFollowTritonsNamingRule) {
  testing::TempRepository repo;
  for (const char* name : {"m/1", "m/10", "m/2", "m/01", "m/0", "m/latest", "m/3a"}) {
    std::filesystem::create_directories(repo.path() / name);
  }
  repo.WriteFile("m/7", "a file, not a folder");
  EXPECT_EQ(ListVersions(repo.path() / "m"), (std::vector<int64_t>{1, 2, 10}));
  EXPECT_TRUE(ListVersions(repo.path() / "absent").empty());
}

}  // namespace
}  // namespace modeld::repository
