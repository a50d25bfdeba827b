// Mutex: a plain, non-sleepable, non-recursive mutual-exclusion lock (FreeBSD
// mtx(9) MTX_DEF), with ownership tracking, order checking, profiling and
// schedule points.
//
//   inline LockClass vm_object_class{"vm object", LockKind::kMutex,
//                                    SameClass::kOrdered};
//   struct Object {
//     Mutex mtx{vm_object_class};
//     int ref_count FL_GUARDED_BY(mtx);
//   };
//   void ref(Object& o) {
//     MutexLock l(o.mtx);      // scoped
//     ++o.ref_count;           // checked by -Wthread-safety
//   }
//   void ref_locked(Object& o) FL_REQUIRES(o.mtx) {
//     o.mtx.assert_owned();    // the run-time twin of FL_REQUIRES
//     ++o.ref_count;
//   }
//
// Every method takes the caller's source location (defaulted), which is what
// order reports, misuse reports, profiles and dumps print.
//
// Non-sleepable: an actor must not sleep (msleep, an sx lock's wait) while
// holding one, except as the sleep's interlock; the checker reports it.
#pragma once

#include <atomic>
#include <cstdint>

#include "locking/actor.h"
#include "locking/checking.h"
#include "locking/detail/check.h"
#include "locking/detail/primitives.h"
#include "locking/hooks.h"
#include "locking/kassert.h"
#include "locking/lock_base.h"
#include "locking/thread_annotations.h"

namespace faultline::locking {

class Mutex;
namespace detail {
int sleep_impl(const void* chan, Mutex* interlock, const char* wmesg, std::int64_t timeout_ns,
               bool drop, const Site& site);
}  // namespace detail

class FL_CAPABILITY("mutex") Mutex : public LockBase {
 public:
  // `cls` must be a LockKind::kMutex class (else reported: kWrongKind).
  // `name` (a string with static lifetime, or nullptr for the class name)
  // identifies the instance.
  explicit Mutex(LockClass& cls, const char* name = nullptr) : Mutex(cls, name, 0) {}
  // A mutex of a SameClass::kOrdered class whose place in the order is a
  // property of the instance: every acquisition (lock, try_lock, the
  // reacquisition after a sleep) carries `order_key`, so no caller can
  // present a lower lock of the order with a higher key.  (The VM's objects
  // key on their age: a backing object is always older than its shadows.)
  Mutex(LockClass& cls, const char* name, std::uint32_t order_key);
  // Destroying a held mutex is reported (kDestroyHeld) and takes it off its
  // holder's held stack.
  ~Mutex();

  void lock(const Site& site = Site::current()) FL_ACQUIRE() {
    if (detail::fast_path()) [[likely]] {
      Actor& me = current_actor();
      if (owner_.load(std::memory_order_relaxed) != &me) [[likely]] {
        raw_.lock();
        owner_.store(&me, std::memory_order_relaxed);
        me.mutex_acquired();
        return;
      }
    }
    lock_impl(order_key_, site, nullptr);
  }

  // Acquires a second (third, ...) lock of a SameClass::kOrdered class: `key`
  // must exceed the key of every held lock of the class (e.g. chain depth).
  // It replaces the mutex's own order key for this acquisition.
  void lock_nested(std::uint32_t key, const Site& site = Site::current()) FL_ACQUIRE() {
    lock_impl(key, site, nullptr);
  }

  // Acquires one of many locks of a class while holding `nest`, a lock that
  // serialises every acquisition of them (lockdep's mutex_lock_nest_lock):
  // the locks of the class then nest in any order, with no key.  Reported
  // (kSameClass) if this actor does not hold `nest`.
  void lock_nest_lock(const LockBase& nest, const Site& site = Site::current()) FL_ACQUIRE() {
    lock_impl(order_key_, site, &nest);
  }

  // Never blocks; never checked for order (a try-lock cannot deadlock).
  bool try_lock(const Site& site = Site::current()) FL_TRY_ACQUIRE(true);

  void unlock(const Site& site = Site::current()) FL_RELEASE() {
    if (detail::fast_path()) [[likely]] {
      Actor& me = current_actor();
      if (owner_.load(std::memory_order_relaxed) == &me) [[likely]] {
        // Taken while the checker tracked (and since switched off)?
        if (me.depth() != 0) [[unlikely]]
          if (!me.pop_if_top(this)) detail::note_released(me, *this);
        me.mutex_released();
        owner_.store(nullptr, std::memory_order_relaxed);
        raw_.unlock();
        return;
      }
    }
    unlock_slow(site);
  }

  std::uint32_t order_key() const noexcept { return order_key_; }

  // True if the calling actor holds it.
  bool owned() const noexcept { return owner_.load(std::memory_order_relaxed) == &current_actor(); }
  // The actor holding it, or nullptr (a snapshot, for reports).
  const Actor* owner() const noexcept { return owner_.load(std::memory_order_relaxed); }

  void assert_owned(const Site& site = Site::current()) const FL_ASSERT_CAPABILITY(this) {
    if (kInvariants && !owned()) [[unlikely]]
      detail::report_assertion(*this, "owned", site);
  }
  void assert_not_owned(const Site& site = Site::current()) const {
    if (kInvariants && owned()) [[unlikely]]
      detail::report_assertion(*this, "not owned", site);
  }

 private:
  friend int detail::sleep_impl(const void*, Mutex*, const char*, std::int64_t, bool, const Site&);
  void lock_impl(std::uint32_t key, const Site& site, const LockBase* nest) FL_NO_THREAD_SAFETY_ANALYSIS;
  void unlock_slow(const Site& site) FL_NO_THREAD_SAFETY_ANALYSIS;
  // Release / reacquire around a sleep: no schedule point of their own.
  void release_for_sleep(Actor& me);
  void reacquire_after_sleep(Actor& me, const Site& site);

  detail::RawMutex raw_;
  std::atomic<Actor*> owner_{nullptr};
  const std::uint32_t order_key_;
};

// Scoped exclusive hold of a Mutex.
class FL_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& m, const Site& site = Site::current()) FL_ACQUIRE(m) : m_(m), site_(site) {
    m_.lock(site_);
  }
  ~MutexLock() FL_RELEASE() { m_.unlock(site_); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& m_;
  Site site_;
};

}  // namespace faultline::locking
