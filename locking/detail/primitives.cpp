#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FL_PRIMITIVES_TSAN 1
#include <sanitizer/tsan_interface.h>
#endif
#endif
#ifndef FL_PRIMITIVES_TSAN
#define FL_PRIMITIVES_TSAN 0
#endif
#include "locking/detail/primitives.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <new>

namespace faultline::locking::detail {
namespace {

long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t val, const timespec* ts) {
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op | FUTEX_PRIVATE_FLAG, val,
                 ts, nullptr, 0);
}

}  // namespace

void FutexMutex::lock() noexcept {
  std::uint32_t c = 0;
  if (word_.compare_exchange_strong(c, 1, std::memory_order_acquire, std::memory_order_relaxed))
    return;
  // Contended: mark "waiters possible" and sleep until we take it as 2.
  if (c != 2) c = word_.exchange(2, std::memory_order_acquire);
  while (c != 0) {
    futex(&word_, FUTEX_WAIT, 2, nullptr);
    c = word_.exchange(2, std::memory_order_acquire);
  }
}

void FutexMutex::unlock() noexcept {
  if (word_.exchange(0, std::memory_order_release) == 2) futex(&word_, FUTEX_WAKE, 1, nullptr);
}

bool FutexCond::wait_until(FutexMutex& m, Deadline deadline) noexcept {
  const std::uint32_t seq = seq_.load(std::memory_order_relaxed);
  m.unlock();
  bool in_time = true;
  if (deadline == Deadline::max()) {
    futex(&seq_, FUTEX_WAIT, seq, nullptr);
  } else {
    auto left = deadline - std::chrono::steady_clock::now();
    if (left <= left.zero()) {
      in_time = false;
    } else {
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
      if (futex(&seq_, FUTEX_WAIT, seq, &ts) == -1 && errno == ETIMEDOUT) in_time = false;
    }
  }
  m.lock();
  return in_time;
}

void FutexCond::notify_one() noexcept {
  seq_.fetch_add(1, std::memory_order_relaxed);
  futex(&seq_, FUTEX_WAKE, 1, nullptr);
}

void FutexCond::notify_all() noexcept {
  seq_.fetch_add(1, std::memory_order_relaxed);
  futex(&seq_, FUTEX_WAKE, INT_MAX, nullptr);
}

WaitKind wait_kind_for(Backend b) noexcept {
  switch (b) {
    case Backend::kFutex: return WaitKind::kFutex;
    case Backend::kFiber: return WaitKind::kFiber;
    default: return WaitKind::kStd;
  }
}

WaitLock::WaitLock(WaitKind kind) : kind_(kind) {
  switch (kind_) {
    case WaitKind::kStd: new (&u_.std_) std::mutex(); break;
    case WaitKind::kFutex: new (&u_.futex_) FutexMutex(); break;
    case WaitKind::kFiber: new (&u_.fiber_) boost::fibers::mutex(); break;
  }
}

WaitLock::~WaitLock() {
  switch (kind_) {
    case WaitKind::kStd: u_.std_.~mutex(); break;
    case WaitKind::kFutex: u_.futex_.~FutexMutex(); break;
    case WaitKind::kFiber: u_.fiber_.~mutex(); break;
  }
}

WaitCond::WaitCond(WaitKind kind) : kind_(kind) {
  switch (kind_) {
    case WaitKind::kStd: new (&u_.std_) std::condition_variable(); break;
    case WaitKind::kFutex: new (&u_.futex_) FutexCond(); break;
    case WaitKind::kFiber: new (&u_.fiber_) boost::fibers::condition_variable(); break;
  }
}

WaitCond::~WaitCond() {
  switch (kind_) {
    case WaitKind::kStd: u_.std_.~condition_variable(); break;
    case WaitKind::kFutex: u_.futex_.~FutexCond(); break;
    case WaitKind::kFiber: u_.fiber_.~condition_variable(); break;
  }
}

void WaitCond::wait(WaitLock& m) {
  switch (kind_) {
    case WaitKind::kStd: {
      std::unique_lock<std::mutex> lk(m.u_.std_, std::adopt_lock);
      u_.std_.wait(lk);
      lk.release();
      return;
    }
    case WaitKind::kFutex: u_.futex_.wait(m.u_.futex_); return;
    case WaitKind::kFiber: {
      std::unique_lock<boost::fibers::mutex> lk(m.u_.fiber_, std::adopt_lock);
      u_.fiber_.wait(lk);
      lk.release();
      return;
    }
  }
}

bool WaitCond::wait_until(WaitLock& m, Deadline deadline) {
  switch (kind_) {
    case WaitKind::kStd: {
      std::unique_lock<std::mutex> lk(m.u_.std_, std::adopt_lock);
      bool ok = u_.std_.wait_until(lk, deadline) == std::cv_status::no_timeout;
      lk.release();
      return ok;
    }
    case WaitKind::kFutex: return u_.futex_.wait_until(m.u_.futex_, deadline);
    case WaitKind::kFiber: {
      std::unique_lock<boost::fibers::mutex> lk(m.u_.fiber_, std::adopt_lock);
      bool ok = u_.fiber_.wait_until(lk, deadline) == boost::fibers::cv_status::no_timeout;
      lk.release();
      return ok;
    }
  }
  return false;
}

void WaitCond::notify_one() {
  switch (kind_) {
    case WaitKind::kStd: u_.std_.notify_one(); return;
    case WaitKind::kFutex: u_.futex_.notify_one(); return;
    case WaitKind::kFiber: u_.fiber_.notify_one(); return;
  }
}

void WaitCond::notify_all() {
  switch (kind_) {
    case WaitKind::kStd: u_.std_.notify_all(); return;
    case WaitKind::kFutex: u_.futex_.notify_all(); return;
    case WaitKind::kFiber: u_.fiber_.notify_all(); return;
  }
}

void FiberMutex::lock_slow() {
  m_.lock();
  // Mark "waiters possible"; sleep until the word was free when we marked it.
  // The unlocker takes m_ before notifying, so it cannot notify between our
  // exchange and our wait.
  while (state_.exchange(2, std::memory_order_acquire) != 0) cv_.wait(m_);
  m_.unlock();
}

void FiberMutex::wake_one() {
  m_.lock();
  cv_.notify_one();
  m_.unlock();
}

RawMutex::RawMutex(Backend b) : kind_(b) {
  switch (kind_) {
    case Backend::kStd: new (&u_.std_) std::mutex(); break;
    case Backend::kFutex: new (&u_.futex_) FutexMutex(); break;
    case Backend::kTbbSpin: new (&u_.spin_) tbb::spin_mutex(); break;
    case Backend::kTbbQueuing: new (&u_.queuing_) tbb::queuing_mutex(); break;
    case Backend::kFiber: new (&u_.fiber_) FiberMutex(); break;
  }
}

RawMutex::~RawMutex() {
  switch (kind_) {
    case Backend::kStd:
#if FL_PRIMITIVES_TSAN
      // libstdc++'s ~mutex does not call pthread_mutex_destroy, so TSan never
      // learns the mutex died: a new mutex at the same address would inherit
      // its lock-order history, and TSan's deadlock detector would report
      // cycles between unrelated mutexes.  Tell it.
      if (!abandoned_) __tsan_mutex_destroy(&u_.std_, 0);
#endif
      u_.std_.~mutex();
      break;
    case Backend::kFutex: u_.futex_.~FutexMutex(); break;
    case Backend::kTbbSpin: u_.spin_.~spin_mutex(); break;
    case Backend::kTbbQueuing: u_.queuing_.~queuing_mutex(); break;
    case Backend::kFiber: u_.fiber_.~FiberMutex(); break;
  }
}

namespace {

// Queue nodes of the tbb::queuing_mutex acquisitions this OS thread holds.
// A node is linked into the mutex's queue, so it must not move while held.
struct QueuingNodes {
  static constexpr int kSlots = 64;
  std::uint64_t used = 0;  // bit i: slot i holds a node
  const void* owner[kSlots] = {};
  alignas(tbb::queuing_mutex::scoped_lock) unsigned char node[kSlots]
                                                            [sizeof(tbb::queuing_mutex::scoped_lock)];

  tbb::queuing_mutex::scoped_lock* at(int i) {
    return std::launder(reinterpret_cast<tbb::queuing_mutex::scoped_lock*>(node[i]));
  }
  int claim(const void* m) {
    // A slot still naming m belongs to a mutex that was destroyed while this
    // thread held it (a reported misuse): its node is linked to the dead
    // mutex, so drop it without releasing it.
    for (std::uint64_t bits = used; bits != 0; bits &= bits - 1) {
      const int s = __builtin_ctzll(bits);
      if (owner[s] == m) {
        owner[s] = nullptr;
        used &= ~(std::uint64_t{1} << s);
      }
    }
    if (used == ~std::uint64_t{0}) {
      std::fprintf(stderr, "faultline: more than %d tbb::queuing_mutex locks held by one thread\n",
                   kSlots);
      std::abort();
    }
    const int i = __builtin_ctzll(~used);
    used |= std::uint64_t{1} << i;
    owner[i] = m;
    new (node[i]) tbb::queuing_mutex::scoped_lock();
    return i;
  }
  void free_slot(int i) {
    at(i)->~scoped_lock();
    owner[i] = nullptr;
    used &= ~(std::uint64_t{1} << i);
  }
  int find(const void* m) const {
    for (std::uint64_t bits = used; bits != 0; bits &= bits - 1) {
      const int i = __builtin_ctzll(bits);
      if (owner[i] == m) return i;
    }
    return -1;
  }
};
thread_local QueuingNodes tl_queuing_nodes;

}  // namespace

void RawMutex::queuing_lock() {
  tl_queuing_nodes.at(tl_queuing_nodes.claim(this))->acquire(u_.queuing_);
}

bool RawMutex::queuing_try_lock() {
  const int i = tl_queuing_nodes.claim(this);
  if (tl_queuing_nodes.at(i)->try_acquire(u_.queuing_)) return true;
  tl_queuing_nodes.free_slot(i);
  return false;
}

void RawMutex::queuing_unlock() {
  const int i = tl_queuing_nodes.find(this);
  if (i < 0) {
    std::fprintf(stderr, "faultline: tbb::queuing_mutex released by a thread that holds no node\n");
    std::abort();
  }
  tl_queuing_nodes.at(i)->release();
  tl_queuing_nodes.free_slot(i);
}

}  // namespace faultline::locking::detail
