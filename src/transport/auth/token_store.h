// TokenStore: the bearer tokens that --auth-token-file lists, checked in constant time.
//
// The file holds one token per line; blank lines and lines starting with '#' are skipped,
// and spaces around a token are trimmed. A token is 1..4096 visible ASCII characters (what an
// HTTP header or gRPC metadata value carries unchanged). Only SHA-256 digests of the tokens
// are kept in memory.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace modeld::transport::auth {

// Thread-safe: Check may run on any transport thread while Reload runs on another.
class TokenStore {
 public:
  // Reads `path`. INVALID_ARGUMENT naming the file (and line) when it cannot be read, holds
  // no token or holds a malformed one.
  static absl::StatusOr<std::unique_ptr<TokenStore>> Load(const std::string& path);

  // Tokens given directly (tests). Same rules as the file's lines.
  static absl::StatusOr<std::unique_ptr<TokenStore>> FromTokens(
      const std::vector<std::string>& tokens);

  // Reads the file again (SIGHUP). On error the tokens in use stay and the error is returned.
  absl::Status Reload();

  // Whether `token` is one of the tokens. Takes the same time whichever token matches, and
  // whether one does: every stored digest is compared, each without an early exit.
  bool Check(absl::string_view token) const;

  // How many tokens are loaded.
  size_t size() const;

  const std::string& path() const { return path_; }

 private:
  using Digest = std::array<uint8_t, 32>;
  TokenStore(std::string path, std::vector<Digest> digests)
      : path_(std::move(path)), digests_(std::move(digests)) {}

  static absl::StatusOr<std::vector<Digest>> Parse(absl::string_view text,
                                                   absl::string_view origin);

  const std::string path_;  // empty for FromTokens
  mutable absl::Mutex mu_;
  std::vector<Digest> digests_ ABSL_GUARDED_BY(mu_);
};

}  // namespace modeld::transport::auth
