// SxLock: a sleepable shared/exclusive lock (FreeBSD sx(9)), the lock a VM map
// is built on.
//
//   inline LockClass vm_map_class{"vm map", LockKind::kSx};
//   SxLock lock{vm_map_class};
//   { SxSharedLock s(lock);  ... read the map ... }
//   { SxExclusiveLock x(lock); ... change the map ... }
//
// Waiters sleep (they may be held across other sleeps, unlike a Mutex).
// Writers are preferred: once an exclusive waiter queues, new shared lockers
// wait behind it, so shared holders never starve a writer.  Neither mode
// recurses.
//
// try_upgrade (shared -> exclusive, succeeds only for the sole sharer) and
// downgrade (exclusive -> shared) are what vm_map_lock_upgrade and
// vm_map_lock_downgrade are built on.  Clang's analysis cannot follow a change
// of mode, so after either call re-establish the static fact with
// assert_xlocked() / assert_slocked(), and release with unlock(), which
// releases whichever mode is held.
#pragma once

#include <atomic>
#include <cstdint>

#include "locking/actor.h"
#include "locking/checking.h"
#include "locking/detail/check.h"
#include "locking/detail/primitives.h"
#include "locking/hooks.h"
#include "locking/lock_base.h"
#include "locking/thread_annotations.h"

namespace faultline::locking {

class FL_CAPABILITY("sx") SxLock : public LockBase {
 public:
  // `cls` must be a LockKind::kSx class (else reported: kWrongKind).
  explicit SxLock(LockClass& cls, const char* name = nullptr);
  ~SxLock();

  void xlock(const Site& site = Site::current()) FL_ACQUIRE();
  void slock(const Site& site = Site::current()) FL_ACQUIRE_SHARED();
  bool try_xlock(const Site& site = Site::current()) FL_TRY_ACQUIRE(true);
  bool try_slock(const Site& site = Site::current()) FL_TRY_ACQUIRE_SHARED(true);
  void xunlock(const Site& site = Site::current()) FL_RELEASE();
  void sunlock(const Site& site = Site::current()) FL_RELEASE_SHARED();
  // Releases the mode held (exclusive if this actor owns it exclusively).
  void unlock(const Site& site = Site::current()) FL_RELEASE_GENERIC();

  // Shared -> exclusive if this actor is the only sharer; otherwise false and
  // the shared hold is kept.  Never blocks.
  bool try_upgrade(const Site& site = Site::current()) FL_NO_THREAD_SAFETY_ANALYSIS;
  // Exclusive -> shared, waking shared waiters.
  void downgrade(const Site& site = Site::current()) FL_NO_THREAD_SAFETY_ANALYSIS;

  bool xlocked() const noexcept {
    return xowner_.load(std::memory_order_relaxed) == &current_actor();
  }
  // Number of shared holders (a snapshot).
  std::uint32_t sharers() const noexcept { return state_.load(std::memory_order_relaxed) & kCountMask; }
  // Actors waiting for each mode (snapshots).
  std::uint32_t exclusive_waiters() const noexcept { return xwaiters_.load(std::memory_order_relaxed); }
  std::uint32_t shared_waiters() const noexcept { return swaiters_.load(std::memory_order_relaxed); }

  void assert_xlocked(const Site& site = Site::current()) const FL_ASSERT_CAPABILITY(this);
  // Shared holds are recorded per actor in every mode (on the held stack).
  void assert_slocked(const Site& site = Site::current()) const FL_ASSERT_SHARED_CAPABILITY(this);
  // Held in either mode (by this actor for exclusive).
  void assert_locked(const Site& site = Site::current()) const FL_ASSERT_SHARED_CAPABILITY(this);
  void assert_unlocked(const Site& site = Site::current()) const;

 private:
  bool held_shared_by_me() const noexcept;
  bool held_shared_by(Actor& me) const noexcept;
  void remember(Actor& me, LockMode mode, bool trylock, bool contended, std::uint64_t wait_ns,
                const Site& site);
  void forget(Actor& me);
  void forget_slow(Actor& me);

  // The lock word: sharer count, an exclusive bit, and a "waiters" bit that
  // sends releases to the slow path (m_, to wake them).  Uncontended holds
  // and releases are one compare-and-swap each; waiting happens under m_
  // after setting kWaiters, so a release either precedes the waiter's check
  // or sees kWaiters and wakes it.
  static constexpr std::uint32_t kCountMask = (1u << 30) - 1;
  static constexpr std::uint32_t kExclusive = 1u << 30;
  static constexpr std::uint32_t kWaiters = 1u << 31;
  bool fast_slock() noexcept;
  bool fast_sunlock() noexcept;
  void slow_slock();
  void slow_sunlock();
  void slow_xlock();
  void slow_xunlock();
  void settle_waiters_bit();  // under m_

  std::atomic<std::uint32_t> state_{0};
  detail::WaitLock m_;
  detail::WaitCond readers_;
  detail::WaitCond writers_;
  std::atomic<Actor*> xowner_{nullptr};    // set by the exclusive holder
  std::atomic<std::uint32_t> xwaiters_{0};  // written under m_, read anywhere
  std::atomic<std::uint32_t> swaiters_{0};  // written under m_, read anywhere
};

class FL_SCOPED_CAPABILITY SxExclusiveLock {
 public:
  explicit SxExclusiveLock(SxLock& l, const Site& site = Site::current()) FL_ACQUIRE(l)
      : l_(l), site_(site) {
    l_.xlock(site_);
  }
  ~SxExclusiveLock() FL_RELEASE() { l_.xunlock(site_); }
  SxExclusiveLock(const SxExclusiveLock&) = delete;
  SxExclusiveLock& operator=(const SxExclusiveLock&) = delete;

 private:
  SxLock& l_;
  Site site_;
};

class FL_SCOPED_CAPABILITY SxSharedLock {
 public:
  explicit SxSharedLock(SxLock& l, const Site& site = Site::current()) FL_ACQUIRE_SHARED(l)
      : l_(l), site_(site) {
    l_.slock(site_);
  }
  ~SxSharedLock() FL_RELEASE() { l_.sunlock(site_); }
  SxSharedLock(const SxSharedLock&) = delete;
  SxSharedLock& operator=(const SxSharedLock&) = delete;

 private:
  SxLock& l_;
  Site site_;
};

}  // namespace faultline::locking
