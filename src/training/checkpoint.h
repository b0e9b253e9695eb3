// Checkpoints of a trained model: one file per checkpoint, written atomically and checked on
// read, so a crash at any moment leaves either the old newest checkpoint or the new one, and a
// torn or corrupt file is noticed and skipped instead of restored.
//
// A file holds a header (magic, format, step, the model version trained, when), the
// backend's named state sections, and a CRC-32 of everything before it; all integers are
// little-endian. docs/online-learning.md describes the layout.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "backend/backend.h"

namespace modeld::training {

struct Checkpoint {
  int64_t step = 0;           // the model's training steps it holds
  int64_t model_version = 0;  // the version that was trained
  absl::Time written;
  backend::Model::State state;
};

// The file's bytes, and back. Decode: INVALID_ARGUMENT naming the problem (wrong magic, an
// unknown format, a length past the end, a checksum mismatch, bytes after the end).
std::string EncodeCheckpoint(const Checkpoint& checkpoint);
absl::StatusOr<Checkpoint> DecodeCheckpoint(absl::string_view bytes);

// The file name of the checkpoint at `step`: step-<20 digits>.ckpt, so names sort by step.
std::string CheckpointFileName(int64_t step);

// Writes `checkpoint` into `dir` (created if needed): a temporary file, fsync, rename to its
// final name, fsync of the folder. Returns the file's path. INTERNAL naming the file and the
// system error.
absl::StatusOr<std::filesystem::path> WriteCheckpoint(const std::filesystem::path& dir,
                                                      const Checkpoint& checkpoint);

// Reads and checks one file.
absl::StatusOr<Checkpoint> ReadCheckpoint(const std::filesystem::path& file);

struct FoundCheckpoint {
  Checkpoint checkpoint;
  std::filesystem::path file;
};
// The valid checkpoint with the highest step in `dir`; nullopt when there is none (or no
// folder). Each file that fails its checks is reported through `skipped` ("<file>: <why>")
// and passed over for the next newest.
std::optional<FoundCheckpoint> NewestValidCheckpoint(const std::filesystem::path& dir,
                                                     std::vector<std::string>* skipped);

// Deletes the checkpoint files of `dir` but the `keep` newest by step.
void PruneCheckpoints(const std::filesystem::path& dir, int keep);
// Deletes the temporary files that writes cut short by a crash left in `dir`.
void RemoveUnfinishedWrites(const std::filesystem::path& dir);

// fsync of a folder, so the renames inside it survive a crash.
absl::Status SyncFolder(const std::filesystem::path& dir);

// Writes a file durably and atomically: `path`.tmp, fsync, rename, fsync of its folder.
absl::Status WriteFileAtomically(const std::filesystem::path& path, absl::string_view bytes);

}  // namespace modeld::training
