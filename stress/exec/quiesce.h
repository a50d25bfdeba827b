// A quiescence gate: participants pass it around each unit of work; a
// checker closes it to stop them all between units, looks at the state they
// share, and opens it again.  The harness uses two (World): one for the
// simulated threads, one for the pageout daemon and the truncator, so that
// a checker can stop the threads first while the daemon still frees the
// memory they may be waiting for, then the actors.
//
// It is a read-mostly lock with sleepable readers (FreeBSD's rmlock(9) with
// RM_SLEEPABLE, Linux's percpu_rw_semaphore) cut down to what a quiescent
// check needs: enter/leave cost one atomic read-modify-write each and no
// lock while the gate is open; close() waits for the participants inside and
// parks newcomers.  The slow paths go through the lock library (a Mutex and
// msleep/wakeup), so deterministic fibers see every wait as a schedule point
// and the watchdog and dumps show a parked participant's wait message
// ("quiesce") and a draining checker's ("drain").
//
// Ordering: enter() adds itself to `active` and then reads `closed`; close()
// sets `closed` and then reads `active`, all sequentially consistent, so at
// least one of them sees the other (Dekker): a participant is either seen as
// active by the closer or sees the gate closed and backs out.
//
// Requires: callers of enter(), leave(), close() and open() hold no locks
// (the gate's mutex is taken alone).  One closer at a time.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

#include "locking/locking.h"

namespace faultline::stress {

inline locking::LockClass quiesce_lock_class{"quiesce gate", locking::LockKind::kMutex};

class QuiesceGate {
 public:
  explicit QuiesceGate(const char* name) : mtx_(quiesce_lock_class, name) {}
  QuiesceGate(const QuiesceGate&) = delete;
  QuiesceGate& operator=(const QuiesceGate&) = delete;

  // Before a unit of work: returns at once while the gate is open; parks
  // (asleep on parking_channel()) while it is closed.
  void enter();
  // After the unit of work.
  void leave();
  // Parks newcomers, runs `nudge` (to wake participants asleep inside a unit
  // of work on something only the closer can make happen), then waits until
  // no participant is inside.
  void close(const std::function<void()>& nudge = {});
  // Lets the parked participants go on.
  void open();

  // Where parked participants sleep: an invariant check at quiescence
  // expects them there.
  const void* parking_channel() const noexcept { return &closed_; }
  // Participants inside a unit of work now (a snapshot, for tests).
  std::uint64_t active() const noexcept { return active_.load(); }

 private:
  std::atomic<std::uint64_t> active_{0};
  std::atomic<bool> closed_{false};
  locking::Mutex mtx_;
};

// Runs leave() at the end of a scope that called enter().
class QuiesceScope {
 public:
  explicit QuiesceScope(QuiesceGate& g) : g_(g) { g_.enter(); }
  ~QuiesceScope() { g_.leave(); }
  QuiesceScope(const QuiesceScope&) = delete;
  QuiesceScope& operator=(const QuiesceScope&) = delete;

 private:
  QuiesceGate& g_;
};

}  // namespace faultline::stress
