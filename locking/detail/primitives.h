// Raw primitives under every lock of locking/ (internal).
//
// RawMutex is the plain mutex of one backend.  WaitLock + WaitCond are the
// blocking pair used inside sx locks, fiber mutexes and sleep queues; their
// kind is the backend's "wait family" (std, futex or fiber).  Nothing here
// checks order or ownership: that is the job of the public lock types.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include <boost/fiber/condition_variable.hpp>
#include <boost/fiber/mutex.hpp>
#include <oneapi/tbb/queuing_mutex.h>
#include <oneapi/tbb/spin_mutex.h>

#include "locking/backend.h"

namespace faultline::locking::detail {

using Deadline = std::chrono::steady_clock::time_point;

// Drepper's three-state futex mutex ("Futexes are tricky", mutex 2):
// 0 unlocked, 1 locked, 2 locked with possible waiters.
class FutexMutex {
 public:
  void lock() noexcept;
  bool try_lock() noexcept {
    std::uint32_t expected = 0;
    return word_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                         std::memory_order_relaxed);
  }
  void unlock() noexcept;

 private:
  std::atomic<std::uint32_t> word_{0};
};

// Condition variable on a futex sequence word.  notify bumps the sequence, so
// a waiter that read the old value before dropping the mutex cannot miss it.
class FutexCond {
 public:
  void wait(FutexMutex& m) noexcept { wait_until(m, Deadline::max()); }
  // False if the deadline passed (the mutex is held again either way).
  bool wait_until(FutexMutex& m, Deadline deadline) noexcept;
  void notify_one() noexcept;
  void notify_all() noexcept;

 private:
  std::atomic<std::uint32_t> seq_{0};
};

enum class WaitKind : std::uint8_t { kStd, kFutex, kFiber };
WaitKind wait_kind_for(Backend b) noexcept;

class WaitCond;

// Internal mutex of the wait family; pairs with WaitCond.
class WaitLock {
 public:
  explicit WaitLock(WaitKind kind);
  ~WaitLock();
  WaitLock(const WaitLock&) = delete;
  WaitLock& operator=(const WaitLock&) = delete;

  void lock() {
    switch (kind_) {
      case WaitKind::kStd: u_.std_.lock(); return;
      case WaitKind::kFutex: u_.futex_.lock(); return;
      case WaitKind::kFiber: u_.fiber_.lock(); return;
    }
  }
  void unlock() {
    switch (kind_) {
      case WaitKind::kStd: u_.std_.unlock(); return;
      case WaitKind::kFutex: u_.futex_.unlock(); return;
      case WaitKind::kFiber: u_.fiber_.unlock(); return;
    }
  }
  WaitKind kind() const noexcept { return kind_; }

 private:
  friend class WaitCond;
  WaitKind kind_;
  union U {
    U() {}
    ~U() {}
    std::mutex std_;
    FutexMutex futex_;
    boost::fibers::mutex fiber_;
  } u_;
};

class WaitCond {
 public:
  explicit WaitCond(WaitKind kind);
  ~WaitCond();
  WaitCond(const WaitCond&) = delete;
  WaitCond& operator=(const WaitCond&) = delete;

  // `m` is held on entry and on return.
  void wait(WaitLock& m);
  // False if the deadline passed first.
  bool wait_until(WaitLock& m, Deadline deadline);
  void notify_one();
  void notify_all();

 private:
  WaitKind kind_;
  union U {
    U() {}
    ~U() {}
    std::condition_variable std_;
    FutexCond futex_;
    boost::fibers::condition_variable fiber_;
  } u_;
};

// A fiber mutex whose try_lock never yields (boost::fibers::mutex::try_lock
// always yields to let the owner run, which would make a try-lock a schedule
// point and a blocking lock's contention test change the schedule).
// Drepper's three-state protocol on an atomic word, with a Boost.Fiber
// condition variable in the futex's place: uncontended lock and unlock are
// one atomic operation each; only contention touches the fiber primitives.
class FiberMutex {
 public:
  FiberMutex() : m_(WaitKind::kFiber), cv_(WaitKind::kFiber) {}
  void lock() {
    std::uint32_t c = 0;
    if (!state_.compare_exchange_strong(c, 1, std::memory_order_acquire, std::memory_order_relaxed))
      lock_slow();
  }
  bool try_lock() {
    std::uint32_t c = 0;
    return state_.compare_exchange_strong(c, 1, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }
  void unlock() {
    if (state_.exchange(0, std::memory_order_release) == 2) wake_one();
  }

 private:
  void lock_slow();
  void wake_one();

  std::atomic<std::uint32_t> state_{0};  // 0 free, 1 locked, 2 locked with waiters
  WaitLock m_;
  WaitCond cv_;
};

// The plain mutex of a backend.
class RawMutex {
 public:
  explicit RawMutex(Backend b);
  ~RawMutex();
  RawMutex(const RawMutex&) = delete;
  RawMutex& operator=(const RawMutex&) = delete;

  void lock() {
    switch (kind_) {
      case Backend::kStd: u_.std_.lock(); return;
      case Backend::kFutex: u_.futex_.lock(); return;
      case Backend::kTbbSpin: u_.spin_.lock(); return;
      case Backend::kTbbQueuing: queuing_lock(); return;
      case Backend::kFiber: u_.fiber_.lock(); return;
    }
  }
  bool try_lock() {
    switch (kind_) {
      case Backend::kStd: return u_.std_.try_lock();
      case Backend::kFutex: return u_.futex_.try_lock();
      case Backend::kTbbSpin: return u_.spin_.try_lock();
      case Backend::kTbbQueuing: return queuing_try_lock();
      case Backend::kFiber: return u_.fiber_.try_lock();
    }
    return false;
  }
  void unlock() {
    switch (kind_) {
      case Backend::kStd: u_.std_.unlock(); return;
      case Backend::kFutex: u_.futex_.unlock(); return;
      case Backend::kTbbSpin: u_.spin_.unlock(); return;
      case Backend::kTbbQueuing: queuing_unlock(); return;
      case Backend::kFiber: u_.fiber_.unlock(); return;
    }
  }
  Backend kind() const noexcept { return kind_; }
  // The mutex is being destroyed while another thread holds it (a misuse the
  // checker reported): do not tell TSan it was destroyed, which TSan would
  // rightly report as the destruction of a locked mutex.
  void abandon() noexcept { abandoned_ = true; }

 private:
  // tbb::queuing_mutex takes a queue node per acquisition that must live until
  // release; nodes come from a per-OS-thread table of 64 slots with a bitmask
  // of the used ones (this backend is for OS threads only).
  void queuing_lock();
  bool queuing_try_lock();
  void queuing_unlock();

  Backend kind_;
  bool abandoned_ = false;
  union U {
    U() {}
    ~U() {}
    std::mutex std_;
    FutexMutex futex_;
    tbb::spin_mutex spin_;
    tbb::queuing_mutex queuing_;
    FiberMutex fiber_;
  } u_;
};

}  // namespace faultline::locking::detail
