#include "transport/amqp/amqp_url.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace modeld::transport::amqp {
namespace {

// Never quotes the URL: it may hold a password.
absl::Status Bad(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(
      "--amqp-url expects amqp://[user[:password]@]host[:port][/vhost] (or amqps://): ", why));
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = absl::ascii_tolower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

absl::StatusOr<std::string> Decode(absl::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size()) return Bad("a '%' escape is cut short");
    const int high = HexValue(text[i + 1]);
    const int low = HexValue(text[i + 2]);
    if (high < 0 || low < 0) return Bad("a '%' escape is not two hex digits");
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return out;
}

}  // namespace

std::string AmqpUrl::Redacted() const {
  return absl::StrCat(tls ? "amqps" : "amqp", "://", user, password.empty() ? "" : ":***", "@",
                      host, ":", port, "/", vhost == "/" ? "" : vhost);
}

absl::StatusOr<AmqpUrl> ParseAmqpUrl(absl::string_view url) {
  AmqpUrl parsed;
  absl::string_view rest = url;
  if (absl::ConsumePrefix(&rest, "amqps://")) {
    parsed.tls = true;
    parsed.port = 5671;
  } else if (!absl::ConsumePrefix(&rest, "amqp://")) {
    return Bad("the scheme is neither amqp:// nor amqps://");
  }
  if (absl::StrContains(rest, '?')) {
    return Bad("it takes no ?query (name the queue with --amqp-queue)");
  }
  const size_t slash = rest.find('/');
  absl::string_view authority = rest.substr(0, slash);
  if (slash != rest.npos) {
    absl::string_view path = rest.substr(slash + 1);
    if (absl::StrContains(path, '/') || absl::StrContains(path, '?')) {
      return Bad("the vhost holds '/' or '?' (write '/' as %2f)");
    }
    if (!path.empty()) {
      absl::StatusOr<std::string> vhost = Decode(path);
      if (!vhost.ok()) return vhost.status();
      parsed.vhost = *vhost;
    }
  }
  const size_t at = authority.rfind('@');
  if (at != authority.npos) {
    const absl::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const size_t colon = userinfo.find(':');
    absl::StatusOr<std::string> user = Decode(userinfo.substr(0, colon));
    if (!user.ok()) return user.status();
    parsed.user = *user;
    parsed.password = "";
    if (colon != userinfo.npos) {
      absl::StatusOr<std::string> password = Decode(userinfo.substr(colon + 1));
      if (!password.ok()) return password.status();
      parsed.password = *password;
    }
  }
  // An IPv6 address is written in brackets: [::1]:5672.
  absl::string_view host = authority;
  absl::string_view port_text;
  if (absl::StartsWith(authority, "[")) {
    const size_t close = authority.find(']');
    if (close == authority.npos) return Bad("an IPv6 address lacks its closing ']'");
    host = authority.substr(1, close - 1);
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty() && !absl::ConsumePrefix(&after, ":")) {
      return Bad("something other than :port follows the IPv6 address");
    }
    port_text = after;
  } else if (const size_t colon = authority.rfind(':'); colon != authority.npos) {
    host = authority.substr(0, colon);
    port_text = authority.substr(colon + 1);
  }
  if (!port_text.empty()) {
    int port = 0;
    if (!absl::SimpleAtoi(port_text, &port) || port <= 0 || port > 65535) {
      return Bad("the port is not a number from 1 to 65535");
    }
    parsed.port = port;
  }
  if (!host.empty()) parsed.host = std::string(host);
  return parsed;
}

}  // namespace modeld::transport::amqp
