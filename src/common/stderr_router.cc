#include "common/stderr_router.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iterator>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"

// GCC says __SANITIZE_ADDRESS__; clang says __has_feature(address_sanitizer).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MODELD_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MODELD_SANITIZED 1
#endif
#endif

namespace modeld::common {
namespace {

bool AllDigits(absl::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), absl::ascii_isdigit);
}

// "file.cc:401] message" -> where and message; false when `rest` is not of that form.
bool SplitWhere(absl::string_view rest, ForeignLogLine& line) {
  const size_t end = rest.find("] ");
  const size_t bare_end = rest.size() >= 1 && rest.back() == ']' ? rest.size() - 1 : rest.npos;
  const size_t close = end != rest.npos ? end : bare_end;
  if (close == rest.npos) return false;
  const absl::string_view where = rest.substr(0, close);
  const size_t colon = where.rfind(':');
  if (colon == where.npos || colon == 0 || !AllDigits(where.substr(colon + 1)) ||
      absl::StrContains(where, ' ')) {
    return false;
  }
  line.where = std::string(where);
  line.message = close + 2 <= rest.size() ? std::string(rest.substr(close + 2)) : "";
  return true;
}

std::optional<spdlog::level::level_enum> Level(char letter) {
  switch (letter) {
    case 'I':
      return spdlog::level::debug;  // frameworks' INFO is modeld's debug
    case 'W':
      return spdlog::level::warn;
    case 'E':
      return spdlog::level::err;
    case 'F':
      return spdlog::level::critical;
    default:
      return std::nullopt;
  }
}

// Abseil: "I1207 09:49:56.963283   28845 file.cc:401] message" (before Abseil is set up the
// date and time read "0000 00:00:<seconds since the epoch>").
std::optional<ForeignLogLine> ParseAbseil(absl::string_view text) {
  if (text.size() < 7 || !AllDigits(text.substr(1, 4)) || text[5] != ' ') return std::nullopt;
  std::optional<spdlog::level::level_enum> level = Level(text[0]);
  if (!level.has_value()) return std::nullopt;
  absl::string_view rest = text.substr(6);
  const size_t time_end = rest.find(' ');
  if (time_end == rest.npos || !absl::StrContains(rest.substr(0, time_end), ':')) {
    return std::nullopt;
  }
  rest = absl::StripLeadingAsciiWhitespace(rest.substr(time_end));
  const size_t thread_end = rest.find(' ');
  if (thread_end == rest.npos || !AllDigits(rest.substr(0, thread_end))) return std::nullopt;
  ForeignLogLine line{*level, "", ""};
  if (!SplitWhere(rest.substr(thread_end + 1), line)) return std::nullopt;
  return line;
}

// tsl: "2026-12-07 09:49:56.963283: W tensorflow/core/framework/op_kernel.cc:1840] message".
std::optional<ForeignLogLine> ParseTsl(absl::string_view text) {
  if (text.size() < 12 || !AllDigits(text.substr(0, 4)) || text[4] != '-') return std::nullopt;
  const size_t stamp_end = text.find(": ");
  if (stamp_end == text.npos || stamp_end + 4 > text.size() || text[stamp_end + 3] != ' ') {
    return std::nullopt;
  }
  std::optional<spdlog::level::level_enum> level = Level(text[stamp_end + 2]);
  if (!level.has_value()) return std::nullopt;
  ForeignLogLine line{*level, "", ""};
  if (!SplitWhere(text.substr(stamp_end + 4), line)) return std::nullopt;
  return line;
}

// Whether a partial line (no newline yet) may still become a framework line, and is worth
// holding back until its newline comes.
bool MayBecomeForeignLine(absl::string_view partial) {
  if (partial.empty()) return false;
  if (Level(partial[0]).has_value()) return true;
  return absl::ascii_isdigit(static_cast<unsigned char>(partial[0])) ||
         absl::StartsWith(partial, "WARNING:");
}

constexpr size_t kMaxHeldBack = 64 * 1024;
constexpr int kFatalSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

// Set once by RouteStderrThroughLog, then read-only (also from signal handlers).
std::atomic<bool> routing{false};
// The reader holds bytes it took from the pipe and has not written yet.
std::atomic<bool> reader_busy{false};
// A fatal signal arrived: the reader writes out what it holds back at once.
std::atomic<bool> crashing{false};
int original_stderr = -1;
int pipe_read = -1;
struct sigaction previous_actions[std::size(kFatalSignals)];

void WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t written = ::write(fd, data, size);
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return;
    data += written;
    size -= static_cast<size_t>(written);
  }
}

// Copies whatever the pipe holds to the original stderr, unparsed. Async-signal-safe.
void DrainToOriginal() {
  char buffer[4096];
  while (true) {
    const ssize_t n = ::read(pipe_read, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // EAGAIN: empty
    WriteAll(original_stderr, buffer, static_cast<size_t>(n));
  }
}

void OnFatalSignal(int signal_number) {
  crashing = true;
  DrainToOriginal();
  // Let the reader write out what it already took, for at most 200 ms (it may be the thread
  // that crashed, or be waiting for a lock the crashed thread holds).
  for (int waited_ms = 0; reader_busy.load() && waited_ms < 200; ++waited_ms) {
    const timespec millisecond{0, 1'000'000};
    nanosleep(&millisecond, nullptr);
  }
  DrainToOriginal();
  ::dup2(original_stderr, STDERR_FILENO);  // whatever the crash prints next goes straight out
  for (size_t i = 0; i < std::size(kFatalSignals); ++i) {
    if (kFatalSignals[i] == signal_number) sigaction(signal_number, &previous_actions[i], nullptr);
  }
  raise(signal_number);  // delivered, with the previous action, once this handler returns
}

void HandleLine(absl::string_view line) {
  if (IsAbseilStartupNotice(line)) return;
  if (std::optional<ForeignLogLine> parsed = ParseForeignLogLine(line)) {
    spdlog::log(parsed->level, "{}: {}", parsed->where, parsed->message);
    return;
  }
  const std::string raw = absl::StrCat(line, "\n");
  WriteAll(original_stderr, raw.data(), raw.size());
}

void ReadLoop() {
  pthread_setname_np(pthread_self(), "modeld-stderr");
  std::string pending;
  char buffer[4096];
  while (true) {
    pollfd readable{pipe_read, POLLIN, 0};
    // While a partial line is held back, wake now and then to see whether a crash began.
    if (::poll(&readable, 1, pending.empty() ? -1 : 50) < 0 && errno != EINTR) return;
    reader_busy = true;  // before the read: a crash handler that drains next then waits
    const ssize_t n = ::read(pipe_read, buffer, sizeof(buffer));
    if (n == 0) return;  // every writer closed fd 2
    if (n < 0 && errno != EAGAIN && errno != EINTR) return;
    if (n > 0) pending.append(buffer, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t newline = pending.find('\n'); newline != std::string::npos;
         newline = pending.find('\n', start)) {
      HandleLine(absl::string_view(pending).substr(start, newline - start));
      start = newline + 1;
    }
    pending.erase(0, start);
    // Text that cannot become a framework line (a prompt, progress dots) goes out at once.
    if (!pending.empty() &&
        (!MayBecomeForeignLine(pending) || pending.size() > kMaxHeldBack || crashing.load())) {
      WriteAll(original_stderr, pending.data(), pending.size());
      pending.clear();
    }
    reader_busy = !pending.empty();
  }
}

}  // namespace

std::optional<ForeignLogLine> ParseForeignLogLine(absl::string_view line) {
  line = absl::StripTrailingAsciiWhitespace(line);
  if (std::optional<ForeignLogLine> parsed = ParseAbseil(line)) return parsed;
  return ParseTsl(line);
}

bool IsAbseilStartupNotice(absl::string_view line) {
  return absl::StartsWith(line, "WARNING: All log messages before absl::InitializeLog()");
}

bool StderrRoutingAvailable() {
#if defined(MODELD_SANITIZED)
  return false;
#else
  return true;
#endif
}

absl::Status RouteStderrThroughLog() {
  if (!StderrRoutingAvailable()) return absl::OkStatus();
  if (routing.exchange(true)) return absl::OkStatus();
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) {
    routing = false;
    return absl::InternalError(absl::StrCat("no pipe for stderr: ", std::strerror(errno)));
  }
  original_stderr = ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
  if (original_stderr < 0) {
    const int error = errno;
    ::close(ends[0]);
    ::close(ends[1]);
    routing = false;
    return absl::InternalError(absl::StrCat("stderr cannot be copied: ", std::strerror(error)));
  }
  pipe_read = ends[0];
  ::fcntl(pipe_read, F_SETFL, ::fcntl(pipe_read, F_GETFL) | O_NONBLOCK);
  SetLogFileDescriptor(original_stderr);
  std::thread(ReadLoop).detach();
  for (size_t i = 0; i < std::size(kFatalSignals); ++i) {
    struct sigaction action {};
    action.sa_handler = OnFatalSignal;
    sigemptyset(&action.sa_mask);
    sigaction(kFatalSignals[i], &action, &previous_actions[i]);
  }
  std::atexit(DrainToOriginal);
  ::dup2(ends[1], STDERR_FILENO);
  ::close(ends[1]);
  return absl::OkStatus();
}

}  // namespace modeld::common
