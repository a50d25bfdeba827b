// The checker's entry points, called by the lock types (internal).
#pragma once

#include <atomic>
#include <cstdint>

#include "locking/actor.h"
#include "locking/checking.h"
#include "locking/lock_base.h"

namespace faultline::locking::detail {

// Bit 0: order checking on (mode != kOff); bit 1: profiling on; bit 2: a
// schedule-point hook is installed.  All zero: the lock types take their
// fast paths, decided by this one load.
inline constexpr std::uint8_t kTrackOrder = 1, kTrackProfile = 2, kTrackHook = 4;
extern std::atomic<std::uint8_t> g_track;
inline bool fast_path() noexcept { return g_track.load(std::memory_order_relaxed) == 0; }
inline bool tracking() noexcept {
  return (g_track.load(std::memory_order_relaxed) & (kTrackOrder | kTrackProfile)) != 0;
}
inline bool order_on() noexcept {
  return (g_track.load(std::memory_order_relaxed) & kTrackOrder) != 0;
}
inline bool profiling_on() noexcept {
  return (g_track.load(std::memory_order_relaxed) & kTrackProfile) != 0;
}

std::uint64_t now_ns() noexcept;

// Before a blocking acquisition: order and same-class checks against every
// lock the actor holds, and recursion detection.  Returns false if the
// acquisition must be skipped (a reported recursion in kReport mode).  `nest`:
// a held lock that serialises every acquisition of this lock's class
// (lockdep's nest_lock), or nullptr.
bool check_acquire(Actor& me, const LockBase& lock, LockMode mode, std::uint32_t key,
                   const Site& site, const LockBase* nest = nullptr);
// After the acquisition: push it on the actor's held stack and profile it.
// A full stack is a limit: reported once, the order checker goes off.
void note_acquired(Actor& me, const LockBase& lock, LockMode mode, std::uint32_t key, bool trylock,
                   bool contended, std::uint64_t wait_ns, const Site& site);
// Before the release: pop it and profile its hold time.  Returns false if the
// actor's stack does not have it.
bool note_released(Actor& me, const LockBase& lock);
// The held-stack entry for `lock` changes mode (sx upgrade / downgrade).
void note_mode(Actor& me, const LockBase& lock, LockMode mode);

// Misuse and assertion reports.
void report_recursion(const LockBase& lock, const Site& site);
void report_not_owned(const LockBase& lock, const Actor* owner, const char* what, const Site& site);
// A lock is being destroyed while `xowner` (or some sharer) holds it:
// reports it, naming every holder and the destroying call stack, and takes the
// lock off every holder's held stack (and hold count), so nothing reads it
// after it is freed.
void destroy_held_lock(const LockBase& lock, Actor* xowner);
void report_wrong_kind(const LockBase& lock, const char* type, const char* wanted, const Site& site);
// A limit was reached: report once (a warning) and turn order checking off.
void checker_limit(const std::string& what);
// witness::reset(): order checking may come back on.
void clear_limit() noexcept;
std::string describe_actor(const Actor* a);
// Another actor, described under the registry lock if it is still
// registered ("an actor that has since ended" if not); `site` gets where it
// took `lock`, if its held stack says.
std::string describe_owner(const Actor* owner, const LockBase& lock, std::string* site);
// A lock class died: the order graph forgets its id (witness.cpp).
void forget_class(int id);
std::string describe_lock(const LockBase& l);
void report_assertion(const LockBase& lock, const char* expected, const Site& site);

// "exclusive \"vm object\" (obj 7) @ core/fault.cpp:120", for messages.
std::string describe_held(const HeldLock& h);

}  // namespace faultline::locking::detail
