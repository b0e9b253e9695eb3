#include "transport/auth/token_store.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace modeld::transport::auth {
namespace {

constexpr size_t kMaxTokenBytes = 4096;

bool IsTokenChar(char c) { return c > 0x20 && c < 0x7f; }

}  // namespace

absl::StatusOr<std::vector<TokenStore::Digest>> TokenStore::Parse(absl::string_view text,
                                                                  absl::string_view origin) {
  std::vector<Digest> digests;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    if (line.size() > kMaxTokenBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          origin, ":", line_number, ": a token is longer than ", kMaxTokenBytes, " bytes"));
    }
    for (char c : line) {
      if (!IsTokenChar(c)) {
        return absl::InvalidArgumentError(
            absl::StrCat(origin, ":", line_number,
                         ": a token may hold only visible ASCII characters (no spaces)"));
      }
    }
    Digest digest;
    SHA256(reinterpret_cast<const unsigned char*>(line.data()), line.size(), digest.data());
    digests.push_back(digest);
  }
  if (digests.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, " holds no token (one per line; '#' starts a comment)"));
  }
  return digests;
}

absl::StatusOr<std::unique_ptr<TokenStore>> TokenStore::Load(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read the token file ", path));
  }
  std::stringstream text;
  text << file.rdbuf();
  ASSIGN_OR_RETURN(std::vector<Digest> digests, Parse(text.str(), path));
  return std::unique_ptr<TokenStore>(new TokenStore(path, std::move(digests)));
}

absl::StatusOr<std::unique_ptr<TokenStore>> TokenStore::FromTokens(
    const std::vector<std::string>& tokens) {
  ASSIGN_OR_RETURN(std::vector<Digest> digests, Parse(absl::StrJoin(tokens, "\n"), "tokens"));
  return std::unique_ptr<TokenStore>(new TokenStore("", std::move(digests)));
}

absl::Status TokenStore::Reload() {
  if (path_.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::unique_ptr<TokenStore> fresh, Load(path_));
  absl::MutexLock lock(&fresh->mu_);
  std::vector<Digest> digests = std::move(fresh->digests_);
  absl::MutexLock mine(&mu_);
  digests_ = std::move(digests);
  return absl::OkStatus();
}

bool TokenStore::Check(absl::string_view token) const {
  Digest digest;
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest.data());
  absl::ReaderMutexLock lock(&mu_);
  int matches = 0;
  for (const Digest& stored : digests_) {
    matches |= CRYPTO_memcmp(stored.data(), digest.data(), digest.size()) == 0;
  }
  return matches != 0;
}

size_t TokenStore::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return digests_.size();
}

}  // namespace modeld::transport::auth
