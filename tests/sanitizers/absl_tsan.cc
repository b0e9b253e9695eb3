// ThreadSanitizer's view of Abseil's synchronisation, for make test-tsan only.
//
// modeld links Debian's Abseil, which is not built with TSan, so TSan cannot see that
// absl::Mutex, absl::CondVar and absl::Notification order memory: every field guarded by an
// absl::Mutex would be reported as a race. This library (built and linked only with
// MODELD_SANITIZE=thread, ahead of libabsl_synchronization) interposes those functions: each
// calls Abseil's own (found with dlsym(RTLD_NEXT)) and tells TSan what it did, as an
// instrumented Abseil would. Unlock and every wait first release the lock's address; Lock,
// TryLock and every wait's return acquire it. So a happens-before edge runs from each unlock
// to the next lock; deadlock detection is not modelled. gRPC's own mutexes are absl::Mutex
// too, so its locking is seen as well. absl::Status's shared reference count, dropped inside
// libabsl_status, is described the same way (Status::UnrefNonInlined below).
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/base/options.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);

namespace {

#define MODELD_STRINGIFY_(x) #x
#define MODELD_STRINGIFY(x) MODELD_STRINGIFY_(x)

// Abseil's definition of a function, by its mangled name after "absl::<inline namespace>::".
template <typename F>
F Next(const char* rest) {
  const std::string ns = MODELD_STRINGIFY(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const bool is_const = rest[0] == 'K';  // const member functions mangle as _ZNK...
  const std::string name = std::string(is_const ? "_ZNK" : "_ZN") + "4absl" +
                           std::to_string(ns.size()) + ns + (is_const ? rest + 1 : rest);
  void* next = dlsym(RTLD_NEXT, name.c_str());
  if (next == nullptr) {
    std::fprintf(stderr, "absl_tsan: %s not found: %s\n", name.c_str(), dlerror());
    std::abort();
  }
  return reinterpret_cast<F>(next);
}

void Acquire(const void* addr) { __tsan_acquire(const_cast<void*>(addr)); }
void Release(const void* addr) { __tsan_release(const_cast<void*>(addr)); }

// Abseil evaluates a wait's Condition inside the wait, holding the lock (on the waiting thread
// or on one that unlocks), and may let the lock go inside after it: the evaluation acquires and
// releases the lock for TSan around the caller's condition.
struct Acquiring {
  const absl::Condition* condition;
  const absl::Mutex* mu;
};

bool EvalAcquiring(void* arg) {
  const auto* acquiring = static_cast<const Acquiring*>(arg);
  Acquire(acquiring->mu);
  const bool met = acquiring->condition->Eval();
  // A false condition sends the waiter back to sleep, and Abseil lets the lock go inside.
  Release(acquiring->mu);
  return met;
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  static const auto next = Next<void (*)(Mutex*)>("5Mutex4LockEv");
  next(this);
  Acquire(this);
}

void Mutex::ReaderLock() {
  static const auto next = Next<void (*)(Mutex*)>("5Mutex10ReaderLockEv");
  next(this);
  Acquire(this);
}

bool Mutex::TryLock() {
  static const auto next = Next<bool (*)(Mutex*)>("5Mutex7TryLockEv");
  const bool locked = next(this);
  if (locked) Acquire(this);
  return locked;
}

bool Mutex::ReaderTryLock() {
  static const auto next = Next<bool (*)(Mutex*)>("5Mutex13ReaderTryLockEv");
  const bool locked = next(this);
  if (locked) Acquire(this);
  return locked;
}

void Mutex::Unlock() {
  static const auto next = Next<void (*)(Mutex*)>("5Mutex6UnlockEv");
  Release(this);
  next(this);
}

void Mutex::ReaderUnlock() {
  static const auto next = Next<void (*)(Mutex*)>("5Mutex12ReaderUnlockEv");
  Release(this);
  next(this);
}

void Mutex::LockWhen(const Condition& cond) {
  static const auto next =
      Next<void (*)(Mutex*, const Condition&)>("5Mutex8LockWhenERKNS0_9ConditionE");
  Acquiring acquiring{&cond, this};
  next(this, Condition(&EvalAcquiring, &acquiring));
  Acquire(this);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  static const auto next =
      Next<void (*)(Mutex*, const Condition&)>("5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  Acquiring acquiring{&cond, this};
  next(this, Condition(&EvalAcquiring, &acquiring));
  Acquire(this);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  static const auto next = Next<bool (*)(Mutex*, const Condition&, absl::Duration)>(
      "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Acquiring acquiring{&cond, this};
  const bool met = next(this, Condition(&EvalAcquiring, &acquiring), timeout);
  Acquire(this);
  return met;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  static const auto next = Next<bool (*)(Mutex*, const Condition&, absl::Time)>(
      "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Acquiring acquiring{&cond, this};
  const bool met = next(this, Condition(&EvalAcquiring, &acquiring), deadline);
  Acquire(this);
  return met;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  static const auto next = Next<bool (*)(Mutex*, const Condition&, absl::Duration)>(
      "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Acquiring acquiring{&cond, this};
  const bool met = next(this, Condition(&EvalAcquiring, &acquiring), timeout);
  Acquire(this);
  return met;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  static const auto next = Next<bool (*)(Mutex*, const Condition&, absl::Time)>(
      "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Acquiring acquiring{&cond, this};
  const bool met = next(this, Condition(&EvalAcquiring, &acquiring), deadline);
  Acquire(this);
  return met;
}

// The waits release the lock while they wait and hold it again when they return.
void Mutex::Await(const Condition& cond) {
  static const auto next =
      Next<void (*)(Mutex*, const Condition&)>("5Mutex5AwaitERKNS0_9ConditionE");
  Release(this);
  Acquiring acquiring{&cond, this};
  next(this, Condition(&EvalAcquiring, &acquiring));
  Acquire(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  static const auto next = Next<bool (*)(Mutex*, const Condition&, absl::Duration)>(
      "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Release(this);
  Acquiring acquiring{&cond, this};
  const bool met = next(this, Condition(&EvalAcquiring, &acquiring), timeout);
  Acquire(this);
  return met;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  static const auto next = Next<bool (*)(Mutex*, const Condition&, absl::Time)>(
      "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Release(this);
  Acquiring acquiring{&cond, this};
  const bool met = next(this, Condition(&EvalAcquiring, &acquiring), deadline);
  Acquire(this);
  return met;
}

void CondVar::Wait(Mutex* mu) {
  static const auto next = Next<void (*)(CondVar*, Mutex*)>("7CondVar4WaitEPNS0_5MutexE");
  Release(mu);
  next(this, mu);
  Acquire(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  static const auto next = Next<bool (*)(CondVar*, Mutex*, absl::Duration)>(
      "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  Release(mu);
  const bool timed_out = next(this, mu, timeout);
  Acquire(mu);
  return timed_out;
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  static const auto next = Next<bool (*)(CondVar*, Mutex*, absl::Time)>(
      "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  Release(mu);
  const bool timed_out = next(this, mu, deadline);
  Acquire(mu);
  return timed_out;
}

// A notification orders what came before Notify() before what follows a wait that saw it.
void Notification::Notify() {
  static const auto next = Next<void (*)(Notification*)>("12Notification6NotifyEv");
  Release(this);
  next(this);
}

void Notification::WaitForNotification() const {
  static const auto next =
      Next<void (*)(const Notification*)>("K12Notification19WaitForNotificationEv");
  next(this);
  Acquire(this);
}

bool Notification::WaitForNotificationWithTimeout(absl::Duration timeout) const {
  static const auto next = Next<bool (*)(const Notification*, absl::Duration)>(
      "K12Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  const bool notified = next(this, timeout);
  if (notified) Acquire(this);
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(absl::Time deadline) const {
  static const auto next = Next<bool (*)(const Notification*, absl::Time)>(
      "K12Notification31WaitForNotificationWithDeadlineENS0_4TimeE");
  const bool notified = next(this, deadline);
  if (notified) Acquire(this);
  return notified;
}

// A Status with a message shares it between copies with a reference count, which
// libabsl_status drops (an acq_rel decrement TSan cannot see) and the last copy frees. Each
// drop releases, and acquires what the earlier drops released, so the thread that frees the
// message comes after every thread that dropped a copy, as with an instrumented Abseil.
// (Found by make test-tsan: a warm-up's failure read on the loading thread, freed on the
// model's worker.)
void Status::UnrefNonInlined(uintptr_t rep) {
  static const auto next = Next<void (*)(uintptr_t)>("6Status15UnrefNonInlinedEm");
  Release(reinterpret_cast<const void*>(rep));
  Acquire(reinterpret_cast<const void*>(rep));
  next(rep);
}

ABSL_NAMESPACE_END
}  // namespace absl
