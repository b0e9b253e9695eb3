#include "transport/http/router.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "transport/auth/bearer.h"
#include "transport/status_codes.h"

namespace modeld::transport::http {
namespace {

constexpr char kTfModelsPrefix[] = "/v1/models/";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes one path segment; nullopt for a malformed escape.
std::optional<std::string> PercentDecode(absl::string_view segment) {
  std::string out;
  out.reserve(segment.size());
  for (size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] != '%') {
      out.push_back(segment[i]);
      continue;
    }
    if (i + 2 >= segment.size()) return std::nullopt;
    const int high = HexValue(segment[i + 1]);
    const int low = HexValue(segment[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return out;
}

// GET, or HEAD, which is answered as GET without the body (RFC 9110 §9.3.2; the session
// leaves the body out).
bool IsGet(const Request& request) { return request.method == "GET" || request.method == "HEAD"; }

Response NotFound() { return ErrorResponse(404, "Not Found"); }

Response MethodNotAllowed(const Request& request, const char* allowed) {
  Response response = ErrorResponse(405, absl::StrCat("Method Not Allowed: ", request.method, " ",
                                                      request.Path(), " takes ", allowed));
  response.headers.emplace_back("Allow", allowed);
  return response;
}

Response Malformed(const Request& request) {
  return ErrorResponse(400,
                       absl::StrCat("Malformed request: ", request.method, " ", request.Path()));
}

// Takes a path segment up to the next '/' or ':' off the front of `rest`.
absl::string_view TakeSegment(absl::string_view& rest) {
  const size_t end = std::min(rest.find_first_of("/:"), rest.size());
  absl::string_view segment = rest.substr(0, end);
  rest.remove_prefix(end);
  return segment;
}

}  // namespace

bool IsHealthPath(absl::string_view path) {
  if (path == "/metrics") return true;
  std::vector<absl::string_view> segments = absl::StrSplit(path, '/');
  if (segments.size() > 2 && segments.back().empty()) segments.pop_back();  // trailing '/'
  // "", "v2", ...
  const size_t n = segments.size();
  if (n < 3 || segments[0] != "" || segments[1] != "v2") return false;
  if (n == 4 && segments[2] == "health") return segments[3] == "live" || segments[3] == "ready";
  if (segments[2] != "models" || segments.back() != "ready") return false;
  return n == 5 || (n == 7 && segments[4] == "versions");
}

bool IsInferenceCall(absl::string_view method, absl::string_view path) {
  if (method != "POST") return false;
  if (absl::StartsWith(path, "/v2/models/")) return absl::EndsWith(path, "/infer");
  return absl::StartsWith(path, "/v1/models/") &&
         (absl::EndsWith(path, ":predict") || absl::EndsWith(path, ":classify") ||
          absl::EndsWith(path, ":regress"));
}

Router::Router(service::InferenceService& service, std::function<std::string()> metrics_text,
               RouterOptions options)
    : options_(options),
      kserve_(service, options.max_json_depth),
      tfserving_(service, options.max_json_depth),
      metrics_text_(std::move(metrics_text)) {}

std::optional<Response> Router::Authenticate(const Request& request) const {
  if (options_.tokens == nullptr) return std::nullopt;
  if (options_.health_open && IsHealthPath(request.Path())) return std::nullopt;
  const std::optional<absl::string_view> authorization = request.Header("authorization");
  const absl::Status status = auth::CheckBearer(*options_.tokens, authorization);
  if (status.ok()) return std::nullopt;
  Response response = ErrorResponse(ToHttpStatus(status), status.message());
  // RFC 6750: a request with no credentials gets the bare challenge, a wrong one the error.
  response.headers.emplace_back("WWW-Authenticate", authorization.has_value()
                                                        ? "Bearer realm=\"modeld\", "
                                                          "error=\"invalid_token\""
                                                        : "Bearer realm=\"modeld\"");
  return response;
}

void Router::Handle(std::shared_ptr<const Request> request, Reply reply) {
  if (std::optional<Response> refused = Authenticate(*request); refused.has_value()) {
    std::move(reply)(*std::move(refused));
    return;
  }
  const absl::string_view path = request->Path();
  if (path == "/metrics") {
    if (!IsGet(*request)) {
      std::move(reply)(MethodNotAllowed(*request, "GET"));
      return;
    }
    Response response;
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    if (metrics_text_) response.body = metrics_text_();
    std::move(reply)(std::move(response));
    return;
  }
  if (path == "/v2" || absl::StartsWith(path, "/v2/")) {
    RouteKServe(std::move(request), std::move(reply));
  } else if (absl::StartsWith(path, "/v1/")) {
    RouteTfServing(std::move(request), std::move(reply));
  } else {
    std::move(reply)(NotFound());
  }
}

void Router::RouteKServe(std::shared_ptr<const Request> request, Reply reply) {
  std::vector<absl::string_view> segments = absl::StrSplit(request->Path().substr(1), '/');
  if (segments.size() > 1 && segments.back().empty()) segments.pop_back();  // trailing '/'
  const bool get = IsGet(*request);
  const bool post = request->method == "POST";
  const size_t n = segments.size();
  if (n == 1) {
    get ? kserve_.ServerMetadata(std::move(reply))
        : std::move(reply)(MethodNotAllowed(*request, "GET"));
    return;
  }
  if (n == 3 && segments[1] == "health" && (segments[2] == "live" || segments[2] == "ready")) {
    if (!get) {
      std::move(reply)(MethodNotAllowed(*request, "GET"));
    } else if (segments[2] == "live") {
      kserve_.ServerLive(std::move(reply));
    } else {
      kserve_.ServerReady(std::move(reply));
    }
    return;
  }
  if (segments[1] == "repository") {
    RouteRepository(std::move(request), segments, std::move(reply));
    return;
  }
  if (n < 3 || segments[1] != "models" || segments[2].empty()) {
    std::move(reply)(NotFound());
    return;
  }
  const std::optional<std::string> model = PercentDecode(segments[2]);
  if (!model.has_value()) {
    std::move(reply)(ErrorResponse(
        400, absl::StrCat("model name '", segments[2], "' has a malformed %-escape")));
    return;
  }
  size_t i = 3;
  absl::string_view version;
  if (i + 1 < n && segments[i] == "versions") {
    version = segments[i + 1];
    if (version.empty()) {
      std::move(reply)(ErrorResponse(400,
                                     "the path's model version is empty (/versions//...); name "
                                     "a version, or leave /versions/{v} out for the newest"));
      return;
    }
    i += 2;
  }
  const absl::string_view action = i < n ? segments[i] : "";
  if (i + 1 < n) {
    std::move(reply)(NotFound());
    return;
  }
  if (action == "infer" || action == "train") {
    if (!post) {
      std::move(reply)(MethodNotAllowed(*request, "POST"));
    } else if (action == "infer") {
      kserve_.Infer(std::move(request), *model, version, std::move(reply));
    } else {
      kserve_.Train(std::move(request), *model, version, std::move(reply));
    }
    return;
  }
  if (action != "" && action != "ready" && action != "config") {
    std::move(reply)(NotFound());
    return;
  }
  if (!get) {
    std::move(reply)(MethodNotAllowed(*request, "GET"));
  } else if (action == "ready") {
    kserve_.ModelReady(*model, version, std::move(reply));
  } else if (action == "config") {
    kserve_.ModelConfig(*model, version, std::move(reply));
  } else {
    kserve_.ModelMetadata(*model, version, std::move(reply));
  }
}

void Router::RouteRepository(std::shared_ptr<const Request> request,
                             const std::vector<absl::string_view>& segments, Reply reply) {
  const size_t n = segments.size();
  const bool index = n == 3 && segments[2] == "index";
  const bool change =
      n == 5 && segments[2] == "models" && (segments[4] == "load" || segments[4] == "unload");
  if (!index && !change) {
    std::move(reply)(NotFound());
    return;
  }
  if (request->method != "POST") {
    std::move(reply)(MethodNotAllowed(*request, "POST"));
    return;
  }
  if (index) {
    kserve_.RepositoryIndex(std::move(request), std::move(reply));
    return;
  }
  const std::optional<std::string> model = PercentDecode(segments[3]);
  if (!model.has_value() || model->empty()) {
    std::move(reply)(ErrorResponse(
        400, absl::StrCat("model name '", segments[3], "' is empty or has a malformed %-escape")));
    return;
  }
  kserve_.RepositoryLoad(std::move(request), *model, segments[4] == "load", std::move(reply));
}

void Router::RouteTfServing(std::shared_ptr<const Request> request, Reply reply) {
  absl::string_view rest = request->Path();
  if (!absl::ConsumePrefix(&rest, kTfModelsPrefix)) {
    std::move(reply)(Malformed(*request));
    return;
  }
  const absl::string_view name = TakeSegment(rest);
  absl::string_view version;
  absl::string_view label;
  if (absl::ConsumePrefix(&rest, "/versions/")) {
    version = TakeSegment(rest);
    if (version.empty() || !std::all_of(version.begin(), version.end(), absl::ascii_isdigit)) {
      std::move(reply)(Malformed(*request));
      return;
    }
  } else if (absl::ConsumePrefix(&rest, "/labels/")) {
    label = TakeSegment(rest);
    if (label.empty()) {
      std::move(reply)(Malformed(*request));
      return;
    }
  }
  const std::optional<std::string> model = PercentDecode(name);
  const bool get = IsGet(*request);
  const bool post = request->method == "POST";
  enum { kStatus, kMetadata, kPredict, kExample, kBad } what = kBad;
  if (get && rest.empty()) what = kStatus;
  if (get && rest == "/metadata") what = kMetadata;
  if (post && rest == ":predict") what = kPredict;
  if (post && (rest == ":classify" || rest == ":regress")) what = kExample;
  if (what == kBad || name.empty()) {
    std::move(reply)(Malformed(*request));
    return;
  }
  if (!model.has_value()) {
    std::move(reply)(
        ErrorResponse(400, absl::StrCat("model name '", name, "' has a malformed %-escape")));
    return;
  }
  if (!label.empty()) {
    std::move(reply)(
        ErrorResponse(400, absl::StrCat("Unrecognized servable version label: '", label,
                                        "' (modeld has no version labels; use /versions/{v})")));
    return;
  }
  switch (what) {
    case kStatus:
      tfserving_.Status(*model, version, std::move(reply));
      return;
    case kMetadata:
      tfserving_.Metadata(*model, version, std::move(reply));
      return;
    case kPredict:
      tfserving_.Predict(std::move(request), *model, version, std::move(reply));
      return;
    case kExample:
      std::move(reply)(ErrorResponse(
          501, absl::StrCat(rest.substr(1),
                            " (tf.Example input) is not offered by modeld; use :predict")));
      return;
    case kBad:
      return;
  }
}

}  // namespace modeld::transport::http
