#include "transport/redis/redis_url.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace modeld::transport::redis {
namespace {

absl::StatusOr<std::string> PercentDecode(absl::string_view text, absl::string_view what) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    int value = 0;
    if (i + 2 >= text.size()) {
      return absl::InvalidArgumentError(absl::StrCat("bad percent-encoding in the ", what));
    }
    for (int k = 1; k <= 2; ++k) {
      const char c = absl::ascii_tolower(text[i + k]);
      if (!absl::ascii_isxdigit(c)) {
        return absl::InvalidArgumentError(absl::StrCat("bad percent-encoding in the ", what));
      }
      value = value * 16 + (absl::ascii_isdigit(c) ? c - '0' : c - 'a' + 10);
    }
    out.push_back(static_cast<char>(value));
    i += 2;
  }
  return out;
}

}  // namespace

std::string RedisEndpoint::ToString() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  return absl::StrCat(ipv6 ? "[" : "", host, ipv6 ? "]" : "", ":", port, "/", db);
}

absl::StatusOr<RedisEndpoint> ParseRedisUrl(absl::string_view url) {
  auto error = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad Redis URL (", why, "); expected redis://[[user]:password@]host[:port][/db]"));
  };
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "redis://")) return error("it must start with redis://");
  RedisEndpoint endpoint;

  // The path: /db (an empty path or "/" keeps db 0).
  if (const size_t slash = rest.find('/'); slash != absl::string_view::npos) {
    const absl::string_view db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty() && (!absl::SimpleAtoi(db, &endpoint.db) || endpoint.db < 0)) {
      return error(absl::StrCat("db '", db, "' is not a non-negative number"));
    }
  }
  // Credentials: the last '@' ends them (a password may contain '@' only percent-encoded, but
  // be lenient with a raw one).
  if (const size_t at = rest.rfind('@'); at != absl::string_view::npos) {
    const absl::string_view credentials = rest.substr(0, at);
    rest = rest.substr(at + 1);
    absl::string_view user = credentials;
    absl::string_view password;
    if (const size_t colon = credentials.find(':'); colon != absl::string_view::npos) {
      user = credentials.substr(0, colon);
      password = credentials.substr(colon + 1);
    } else {
      // redis://secret@host: a lone credential is the password, as redis-cli reads it.
      password = credentials;
      user = {};
    }
    absl::StatusOr<std::string> decoded_user = PercentDecode(user, "user");
    if (!decoded_user.ok()) return error(decoded_user.status().message());
    absl::StatusOr<std::string> decoded_password = PercentDecode(password, "password");
    if (!decoded_password.ok()) return error(decoded_password.status().message());
    endpoint.user = *std::move(decoded_user);
    endpoint.password = *std::move(decoded_password);
    if (!endpoint.user.empty() && endpoint.password.empty()) {
      return error("a user needs a password");
    }
  }
  // host[:port], the host maybe in brackets (IPv6).
  absl::string_view host = rest;
  absl::string_view port;
  if (absl::ConsumePrefix(&host, "[")) {
    const size_t close = host.find(']');
    if (close == absl::string_view::npos) return error("unclosed '[' in the host");
    absl::string_view after = host.substr(close + 1);
    host = host.substr(0, close);
    if (!after.empty()) {
      if (!absl::ConsumePrefix(&after, ":")) return error("junk after the host");
      port = after;
      if (port.empty()) return error("empty port");
    }
  } else if (const size_t colon = host.rfind(':'); colon != absl::string_view::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
    if (port.empty()) return error("empty port");
  }
  if (host.empty()) return error("no host");
  endpoint.host = std::string(host);
  if (!port.empty()) {
    int value = 0;
    if (!absl::SimpleAtoi(port, &value) || value < 1 || value > 65535) {
      return error(absl::StrCat("port '", port, "' is not in 1..65535"));
    }
    endpoint.port = value;
  }
  return endpoint;
}

}  // namespace modeld::transport::redis
