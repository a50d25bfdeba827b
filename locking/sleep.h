// Sleep and wakeup on channels (FreeBSD msleep(9) / wakeup(9)).
//
// A channel is any address: by convention the object whose state the sleeper
// waits to change (a page, an object's paging-in-progress count, the free
// page count).  The pattern, with the state guarded by the interlock:
//
//   MutexLock l(obj.mtx);
//   while (page.busy())                    // state read under the interlock
//     msleep(&page, obj.mtx, "pgrbwt");    // drops obj.mtx while asleep
//
//   // waker, holding obj.mtx (or not: see below)
//   page.clear_busy();
//   wakeup(&page);
//
// No lost wakeups, by construction: the sleeper joins the channel's sleep
// queue before it releases the interlock, and a waker changes the state under
// the interlock before calling wakeup, so either the sleeper sees the new
// state or it is already queued when wakeup looks.
//
// Sleepers on one channel are woken in the order they went to sleep
// (wakeup_one takes the longest sleeper), so a deterministic schedule gives
// a deterministic wakeup order.  While asleep an actor publishes its channel,
// wait message and site for dump_all_locks().
//
// Sleeping while holding a non-sleepable lock (a Mutex) other than the
// interlock is reported (kSleepWithLock) when the checker is on.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "locking/checking.h"
#include "locking/mutex.h"
#include "locking/thread_annotations.h"

namespace faultline::locking {

enum class SleepResult : std::uint8_t { kWoken, kTimedOut };

// Self-tests only (the mutant msleep-early-release): msleep drops its
// interlock before the sleeper is on the channel, a lost-wakeup window.
void set_msleep_early_release(bool on) noexcept;

// A zero timeout means "no timeout".
using Timeout = std::chrono::nanoseconds;

// Sleeps on `chan`, releasing `interlock` atomically with joining the queue,
// and holds it again on return.
inline SleepResult msleep(const void* chan, Mutex& interlock, const char* wmesg,
                          Timeout timeout = Timeout::zero(), const Site& site = Site::current())
    FL_REQUIRES(interlock) {
  return detail::sleep_impl(chan, &interlock, wmesg, timeout.count(), false, site) == 0
             ? SleepResult::kWoken
             : SleepResult::kTimedOut;
}

// As msleep, but returns without the interlock (PDROP).
inline SleepResult msleep_drop(const void* chan, Mutex& interlock, const char* wmesg,
                               Timeout timeout = Timeout::zero(), const Site& site = Site::current())
    FL_RELEASE(interlock) FL_NO_THREAD_SAFETY_ANALYSIS {
  return detail::sleep_impl(chan, &interlock, wmesg, timeout.count(), true, site) == 0
             ? SleepResult::kWoken
             : SleepResult::kTimedOut;
}

// Sleeps with no interlock (tsleep): the caller must make lost wakeups
// impossible some other way; prefer msleep.
inline SleepResult tsleep(const void* chan, const char* wmesg, Timeout timeout = Timeout::zero(),
                          const Site& site = Site::current()) {
  return detail::sleep_impl(chan, nullptr, wmesg, timeout.count(), false, site) == 0
             ? SleepResult::kWoken
             : SleepResult::kTimedOut;
}

// pause(9): sleeps `us` microseconds, holding no mutex (a sleepable lock
// may be held).  A schedule point (Point::kPause) lets the harness's
// executor spend the time (virtual time under the deterministic
// scheduler); with no hook installed the thread really sleeps.  `what`
// identifies the pauser in traces, `wmesg` names the wait as pause's does.
void pause(const void* what, const char* wmesg, std::uint32_t us, const Site& site = Site::current());

// A wait for I/O to complete (7.0's pagers sleep on the buffer or the page:
// "swread", "vnread"), `us` microseconds, holding no mutex: a mutex held is
// reported as for any sleep.  A schedule point (Point::kIo) lets the
// harness's executor spend the time; with no hook installed the thread
// really sleeps.
void io_sleep(const void* what, const char* wmesg, std::uint32_t us, const Site& site = Site::current());

// Wakes every sleeper on `chan`; returns how many.
// `site` (the caller's) is what a deterministic schedule's report names.
std::size_t wakeup(const void* chan, const Site& site = Site::current());
// Wakes the longest sleeper on `chan`; returns whether there was one.
bool wakeup_one(const void* chan, const Site& site = Site::current());
// How many actors sleep on `chan` now (a snapshot, for tests and dumps).
std::size_t sleepers(const void* chan);

}  // namespace faultline::locking
