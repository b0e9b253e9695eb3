#include "training/checkpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "testing/temp_repository.h"

namespace modeld::training {
namespace {

using ::testing::HasSubstr;

Checkpoint Sample(int64_t step) {
  return Checkpoint{step,
                    3,
                    absl::FromUnixMillis(1'700'000'000'123),
                    {{"weights", std::string("\0\1\2 bytes", 9)}, {"optimizer", ""}}};
}

TEST(CheckpointTest, RoundTrips) {
  const Checkpoint original = Sample(42);
  absl::StatusOr<Checkpoint> decoded = DecodeCheckpoint(EncodeCheckpoint(original));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->step, 42);
  EXPECT_EQ(decoded->model_version, 3);
  EXPECT_EQ(decoded->written, original.written);
  EXPECT_EQ(decoded->state, original.state);
}

TEST(CheckpointTest, EveryFlippedByteAndEveryTruncationIsRefused) {
  const std::string bytes = EncodeCheckpoint(Sample(7));
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string flipped = bytes;
    flipped[i] = static_cast<char>(flipped[i] ^ 0x40);
    EXPECT_FALSE(DecodeCheckpoint(flipped).ok()) << "byte " << i;
    EXPECT_FALSE(DecodeCheckpoint(bytes.substr(0, i)).ok()) << "length " << i;
  }
  EXPECT_THAT(DecodeCheckpoint(bytes + "x").status().message(), HasSubstr("checksum"));
  EXPECT_THAT(DecodeCheckpoint("PK\3\4 a zip").status().message(), HasSubstr("magic"));
}

TEST(CheckpointTest, NewestValidSkipsCorruptFilesAndPrunes) {
  testing::TempRepository dir;
  for (int64_t step : {10, 20, 30}) ASSERT_TRUE(WriteCheckpoint(dir.path(), Sample(step)).ok());
  // The newest is torn (as by a crash in a write without rename) and a leftover temporary
  // file sits beside it.
  const std::filesystem::path newest = dir.path() / CheckpointFileName(30);
  std::filesystem::resize_file(newest, std::filesystem::file_size(newest) - 5);
  dir.WriteFile(CheckpointFileName(40) + ".tmp", "half");
  dir.WriteFile("notes.txt", "not a checkpoint");

  std::vector<std::string> skipped;
  std::optional<FoundCheckpoint> found = NewestValidCheckpoint(dir.path(), &skipped);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->checkpoint.step, 20);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_THAT(skipped[0], HasSubstr(CheckpointFileName(30)));

  RemoveUnfinishedWrites(dir.path());
  EXPECT_FALSE(std::filesystem::exists(dir.path() / (CheckpointFileName(40) + ".tmp")));
  PruneCheckpoints(dir.path(), 2);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / CheckpointFileName(10)));
  EXPECT_TRUE(std::filesystem::exists(dir.path() / CheckpointFileName(20)));
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "notes.txt"));
}

TEST(CheckpointTest, AFileWhoseNameLiesIsSkipped) {
  testing::TempRepository dir;
  const std::string bytes = EncodeCheckpoint(Sample(5));
  dir.WriteFile(CheckpointFileName(9), bytes);
  std::vector<std::string> skipped;
  EXPECT_FALSE(NewestValidCheckpoint(dir.path(), &skipped).has_value());
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_THAT(skipped[0], HasSubstr("not the step in its name"));
}

TEST(CheckpointTest, NoFolderMeansNoCheckpoint) {
  EXPECT_FALSE(NewestValidCheckpoint("/nonexistent/modeld/checkpoints", nullptr).has_value());
}

}  // namespace
}  // namespace modeld::training
