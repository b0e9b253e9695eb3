#include "training/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace modeld::training {
namespace {

constexpr absl::string_view kMagic = "MODELDCK";
constexpr uint32_t kFormat = 1;
constexpr absl::string_view kPrefix = "step-";
constexpr absl::string_view kSuffix = ".ckpt";
constexpr absl::string_view kTemporarySuffix = ".tmp";

void PutU32(std::string& out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}
void PutU64(std::string& out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

uint32_t Crc32(absl::string_view bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib takes lengths as uInt; feed large states in pieces.
  while (!bytes.empty()) {
    const size_t piece = std::min<size_t>(bytes.size(), 1u << 30);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(piece));
    bytes.remove_prefix(piece);
  }
  return static_cast<uint32_t>(crc);
}

// Reads little-endian fields off the front of a byte string, failing on a short one.
class Reader {
 public:
  explicit Reader(absl::string_view bytes) : bytes_(bytes) {}

  absl::StatusOr<uint64_t> U64(absl::string_view what) { return Number(what, 8); }
  absl::StatusOr<uint32_t> U32(absl::string_view what) {
    ASSIGN_OR_RETURN(uint64_t value, Number(what, 4));
    return static_cast<uint32_t>(value);
  }
  absl::StatusOr<absl::string_view> Bytes(absl::string_view what, uint64_t size) {
    if (size > bytes_.size()) {
      return absl::InvalidArgumentError(absl::StrCat(what, " runs past the end of the file (", size,
                                                     " bytes, ", bytes_.size(), " left)"));
    }
    absl::string_view out = bytes_.substr(0, size);
    bytes_.remove_prefix(size);
    return out;
  }
  size_t left() const { return bytes_.size(); }

 private:
  absl::StatusOr<uint64_t> Number(absl::string_view what, int size) {
    ASSIGN_OR_RETURN(absl::string_view raw, Bytes(what, size));
    uint64_t value = 0;
    for (int i = size - 1; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(raw[i]);
    return value;
  }

  absl::string_view bytes_;
};

absl::Status SystemError(absl::string_view action, const std::filesystem::path& path) {
  return absl::InternalError(absl::StrCat(action, " ", path.string(), ": ", std::strerror(errno)));
}

// The step in a checkpoint file's name; nullopt for other files.
std::optional<int64_t> StepOfFile(const std::filesystem::path& file) {
  const std::string filename = file.filename().string();
  absl::string_view name = filename;
  int64_t step = 0;
  if (!absl::ConsumePrefix(&name, kPrefix) || !absl::ConsumeSuffix(&name, kSuffix) ||
      !absl::SimpleAtoi(name, &step)) {
    return std::nullopt;
  }
  return step;
}

// The checkpoint files of `dir` by step, newest first.
std::vector<std::pair<int64_t, std::filesystem::path>> ListCheckpoints(
    const std::filesystem::path& dir) {
  std::vector<std::pair<int64_t, std::filesystem::path>> files;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (std::optional<int64_t> step = StepOfFile(entry.path())) {
      files.emplace_back(*step, entry.path());
    }
  }
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a > b; });
  return files;
}

}  // namespace

absl::Status SyncFolder(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return SystemError("opening", dir);
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  return synced ? absl::OkStatus() : SystemError("syncing", dir);
}

std::string EncodeCheckpoint(const Checkpoint& checkpoint) {
  std::string out(kMagic);
  PutU32(out, kFormat);
  PutU64(out, static_cast<uint64_t>(checkpoint.step));
  PutU64(out, static_cast<uint64_t>(checkpoint.model_version));
  PutU64(out, static_cast<uint64_t>(absl::ToUnixMillis(checkpoint.written)));
  PutU32(out, static_cast<uint32_t>(checkpoint.state.size()));
  for (const auto& [name, bytes] : checkpoint.state) {
    PutU32(out, static_cast<uint32_t>(name.size()));
    out.append(name);
    PutU64(out, bytes.size());
    out.append(bytes);
  }
  PutU32(out, Crc32(out));
  return out;
}

absl::StatusOr<Checkpoint> DecodeCheckpoint(absl::string_view bytes) {
  if (bytes.size() < kMagic.size() + 4 || !absl::StartsWith(bytes, kMagic)) {
    return absl::InvalidArgumentError("not a modeld checkpoint (the magic bytes are missing)");
  }
  const absl::string_view body = bytes.substr(0, bytes.size() - 4);
  Reader trailer(bytes.substr(bytes.size() - 4));
  ASSIGN_OR_RETURN(const uint32_t crc, trailer.U32("the checksum"));
  if (Crc32(body) != crc) {
    return absl::InvalidArgumentError(
        "the checksum does not match (the file is torn or was changed)");
  }
  Reader reader(body.substr(kMagic.size()));
  ASSIGN_OR_RETURN(const uint32_t format, reader.U32("the format"));
  if (format != kFormat) {
    return absl::InvalidArgumentError(
        absl::StrCat("format ", format, " is not one this modeld reads (", kFormat, ")"));
  }
  Checkpoint checkpoint;
  ASSIGN_OR_RETURN(const uint64_t step, reader.U64("the step"));
  ASSIGN_OR_RETURN(const uint64_t version, reader.U64("the model version"));
  ASSIGN_OR_RETURN(const uint64_t millis, reader.U64("the time"));
  checkpoint.step = static_cast<int64_t>(step);
  checkpoint.model_version = static_cast<int64_t>(version);
  checkpoint.written = absl::FromUnixMillis(static_cast<int64_t>(millis));
  ASSIGN_OR_RETURN(const uint32_t sections, reader.U32("the section count"));
  for (uint32_t i = 0; i < sections; ++i) {
    ASSIGN_OR_RETURN(const uint32_t name_size, reader.U32("a section name's length"));
    ASSIGN_OR_RETURN(const absl::string_view name, reader.Bytes("a section name", name_size));
    ASSIGN_OR_RETURN(const uint64_t size, reader.U64("a section's length"));
    ASSIGN_OR_RETURN(const absl::string_view data, reader.Bytes("a section", size));
    checkpoint.state.emplace(std::string(name), std::string(data));
  }
  if (reader.left() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(reader.left(), " bytes follow the last section"));
  }
  return checkpoint;
}

std::string CheckpointFileName(int64_t step) {
  return absl::StrFormat("%s%020d%s", kPrefix, step, kSuffix);
}

absl::Status WriteFileAtomically(const std::filesystem::path& path, absl::string_view bytes) {
  const std::filesystem::path temporary = path.string() + std::string(kTemporarySuffix);
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return SystemError("creating", temporary);
  absl::string_view left = bytes;
  while (!left.empty()) {
    const ssize_t written = ::write(fd, left.data(), left.size());
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) {
      absl::Status error = SystemError("writing", temporary);
      ::close(fd);
      ::unlink(temporary.c_str());
      return error;
    }
    left.remove_prefix(static_cast<size_t>(written));
  }
  // The data must be on disk before the rename makes it the file's content: otherwise a crash
  // could leave the new name pointing at a file that was never fully written.
  if (::fsync(fd) != 0) {
    absl::Status error = SystemError("syncing", temporary);
    ::close(fd);
    ::unlink(temporary.c_str());
    return error;
  }
  ::close(fd);
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    absl::Status error = SystemError("renaming to", path);
    ::unlink(temporary.c_str());
    return error;
  }
  return SyncFolder(path.parent_path());
}

absl::StatusOr<std::filesystem::path> WriteCheckpoint(const std::filesystem::path& dir,
                                                      const Checkpoint& checkpoint) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::InternalError(absl::StrCat("creating ", dir.string(), ": ", error.message()));
  }
  const std::filesystem::path path = dir / CheckpointFileName(checkpoint.step);
  RETURN_IF_ERROR(WriteFileAtomically(path, EncodeCheckpoint(checkpoint)));
  return path;
}

absl::StatusOr<Checkpoint> ReadCheckpoint(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return SystemError("opening", file);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return SystemError("reading", file);
  return DecodeCheckpoint(bytes);
}

std::optional<FoundCheckpoint> NewestValidCheckpoint(const std::filesystem::path& dir,
                                                     std::vector<std::string>* skipped) {
  for (auto& [step, file] : ListCheckpoints(dir)) {
    absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(file);
    if (checkpoint.ok() && checkpoint->step != step) {
      checkpoint = absl::InvalidArgumentError(
          absl::StrCat("it holds step ", checkpoint->step, ", not the step in its name"));
    }
    if (!checkpoint.ok()) {
      if (skipped != nullptr) {
        skipped->push_back(absl::StrCat(file.string(), ": ", checkpoint.status().message()));
      }
      continue;
    }
    return FoundCheckpoint{*std::move(checkpoint), file};
  }
  return std::nullopt;
}

void PruneCheckpoints(const std::filesystem::path& dir, int keep) {
  std::error_code error;
  const auto files = ListCheckpoints(dir);
  for (size_t i = std::max(keep, 0); i < files.size(); ++i) {
    std::filesystem::remove(files[i].second, error);
  }
}

void RemoveUnfinishedWrites(const std::filesystem::path& dir) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (absl::EndsWith(entry.path().filename().native(), kTemporarySuffix)) {
      std::filesystem::remove(entry.path(), error);
    }
  }
}

}  // namespace modeld::training
