// Sleep queues: a fixed table of buckets hashed by channel, each a FIFO list
// of sleepers under the bucket's lock (the shape of FreeBSD's sleepqueue
// chains).  A sleeper waits on its own condition variable with the bucket lock
// as the condition's mutex, so the waker's "mark woken, notify" and the
// sleeper's "check woken" are ordered by that lock.
#include "locking/sleep.h"

#include <cerrno>
#include <chrono>
#include <memory>
#include <thread>

#include "locking/actor.h"
#include "locking/detail/check.h"
#include "locking/detail/primitives.h"
#include "locking/hooks.h"

namespace faultline::locking {
namespace {

constexpr std::size_t kBuckets = 512;

struct Sleeper {
  explicit Sleeper(detail::WaitKind k) : cond(k) {}
  const void* chan = nullptr;
  detail::WaitCond cond;
  bool woken = false;
  Sleeper* next = nullptr;
  Sleeper* prev = nullptr;
};

struct Bucket {
  explicit Bucket(detail::WaitKind k) : lock(k) {}
  detail::WaitLock lock;
  Sleeper* head = nullptr;  // FIFO: append at tail, wake from head
  Sleeper* tail = nullptr;

  void append(Sleeper* s) {
    s->prev = tail;
    s->next = nullptr;
    (tail != nullptr ? tail->next : head) = s;
    tail = s;
  }
  void unlink(Sleeper* s) {
    (s->prev != nullptr ? s->prev->next : head) = s->next;
    (s->next != nullptr ? s->next->prev : tail) = s->prev;
    s->next = s->prev = nullptr;
  }
};

// One table per wait family, made on first use and kept for the process.
struct Table {
  explicit Table(detail::WaitKind k) {
    buckets.reserve(kBuckets);
    for (std::size_t i = 0; i < kBuckets; ++i) buckets.push_back(std::make_unique<Bucket>(k));
  }
  std::vector<std::unique_ptr<Bucket>> buckets;
};

Table& table(detail::WaitKind k) {
  static Table* std_table = new Table(detail::WaitKind::kStd);
  static Table* futex_table = new Table(detail::WaitKind::kFutex);
  static Table* fiber_table = new Table(detail::WaitKind::kFiber);
  switch (k) {
    case detail::WaitKind::kFutex: return *futex_table;
    case detail::WaitKind::kFiber: return *fiber_table;
    default: return *std_table;
  }
}

Bucket& bucket_for(detail::WaitKind k, const void* chan) {
  auto h = reinterpret_cast<std::uintptr_t>(chan);
  h ^= h >> 17;
  h *= 0x9E3779B97F4A7C15ull;
  return *table(k).buckets[(h >> 32) % kBuckets];
}

void check_sleep_locks(Actor& me, const Mutex* interlock, const void* chan, const char* wmesg,
                       const Site& site) {
  for (int i = me.depth() - 1; i >= 0; --i) {
    const HeldLock& h = me.held(i);
    const LockBase* l = h.lock.load(std::memory_order_relaxed);
    if (l == nullptr || l == interlock || h.cls.load(std::memory_order_relaxed)->sleepable()) continue;
    char buf[32];
    std::snprintf(buf, sizeof buf, "%p", chan);
    detail::deliver(Report{ReportKind::kSleepWithLock,
                           std::string("sleeping on ") + buf + " \"" + wmesg + "\" @ " +
                               format_site(site) + " with non-sleepable lock held by " +
                               detail::describe_actor(&me) + ":\n  " + detail::describe_held(h),
                           h.cls.load(std::memory_order_relaxed)->name(), "",
                           format_site(h.file.load(std::memory_order_relaxed),
                                       h.line.load(std::memory_order_relaxed)),
                           format_site(site)},
                    detail::Severity::kOrder);
  }
}

}  // namespace

namespace {
std::atomic<bool> g_early_release{false};
}  // namespace

void set_msleep_early_release(bool on) noexcept { g_early_release.store(on, std::memory_order_relaxed); }

namespace detail {

int sleep_impl(const void* chan, Mutex* interlock, const char* wmesg, std::int64_t timeout_ns,
               bool drop, const Site& site) {
  schedule_point(Point::kSleep, chan, 0, site);
  Actor& me = current_actor();
  if (interlock != nullptr && !interlock->owned()) [[unlikely]] {
    report_not_owned(*interlock, interlock->owner(), "sleeping with interlock", site);
    return 0;  // kReport mode: the sleep is skipped
  }
  if (detail::order_on()) check_sleep_locks(me, interlock, chan, wmesg, site);

  const WaitKind kind = wait_kind_for(current_backend());
  Bucket& b = bucket_for(kind, chan);
  Sleeper self(kind);
  self.chan = chan;
  const Deadline deadline = timeout_ns > 0 ? std::chrono::steady_clock::now() +
                                                 std::chrono::nanoseconds(timeout_ns)
                                           : Deadline::max();
  // The mutant msleep-early-release drops the interlock first, with a
  // switch point before the sleeper is queued: a wakeup there is lost.
  const bool early = interlock != nullptr && g_early_release.load(std::memory_order_relaxed);
  if (early) {
    interlock->release_for_sleep(me);
    schedule_point(Point::kUser, chan, 0, site);
  }
  b.lock.lock();
  b.append(&self);
  me.set_sleeping(chan, wmesg, site.file_name(), site.line());
  // Queued: from here a wakeup cannot be missed, so drop the interlock.
  if (interlock != nullptr && !early) interlock->release_for_sleep(me);
  bool timed_out = false;
  while (!self.woken) {
    if (deadline == Deadline::max()) {
      self.cond.wait(b.lock);
    } else if (!self.cond.wait_until(b.lock, deadline) && !self.woken) {
      b.unlink(&self);
      timed_out = true;
      break;
    }
  }
  b.lock.unlock();
  me.clear_sleeping();
  if (interlock != nullptr && !drop) interlock->reacquire_after_sleep(me, site);
  return timed_out ? EWOULDBLOCK : 0;
}

}  // namespace detail

void pause(const void* what, const char* wmesg, std::uint32_t us, const Site& site) {
  Actor& me = current_actor();
  if (detail::order_on()) check_sleep_locks(me, nullptr, what, wmesg, site);
  if (detail::g_point_hook.load(std::memory_order_acquire) != nullptr) {
    schedule_point(Point::kPause, what, us, site);  // the executor spends the time
    return;
  }
  me.set_sleeping(what, wmesg, site.file_name(), site.line());
  std::this_thread::sleep_for(std::chrono::microseconds(us));
  me.clear_sleeping();
}

void io_sleep(const void* what, const char* wmesg, std::uint32_t us, const Site& site) {
  Actor& me = current_actor();
  if (detail::order_on()) check_sleep_locks(me, nullptr, what, wmesg, site);
  if (detail::g_point_hook.load(std::memory_order_acquire) != nullptr) {
    schedule_point(Point::kIo, what, us, site);  // the executor spends the time
    return;
  }
  if (us == 0) return;
  me.set_sleeping(what, wmesg, site.file_name(), site.line());
  std::this_thread::sleep_for(std::chrono::microseconds(us));
  me.clear_sleeping();
}

std::size_t wakeup(const void* chan, const Site& site) {
  schedule_point(Point::kWakeup, chan, 0, site);
  Bucket& b = bucket_for(detail::wait_kind_for(current_backend()), chan);
  std::size_t n = 0;
  b.lock.lock();
  for (Sleeper* s = b.head; s != nullptr;) {
    Sleeper* next = s->next;
    if (s->chan == chan) {
      b.unlink(s);
      s->woken = true;
      s->cond.notify_one();
      ++n;
    }
    s = next;
  }
  b.lock.unlock();
  return n;
}

bool wakeup_one(const void* chan, const Site& site) {
  schedule_point(Point::kWakeup, chan, 0, site);
  Bucket& b = bucket_for(detail::wait_kind_for(current_backend()), chan);
  bool found = false;
  b.lock.lock();
  for (Sleeper* s = b.head; s != nullptr; s = s->next) {
    if (s->chan == chan) {
      b.unlink(s);
      s->woken = true;
      s->cond.notify_one();
      found = true;
      break;
    }
  }
  b.lock.unlock();
  return found;
}

std::size_t sleepers(const void* chan) {
  Bucket& b = bucket_for(detail::wait_kind_for(current_backend()), chan);
  std::size_t n = 0;
  b.lock.lock();
  for (Sleeper* s = b.head; s != nullptr; s = s->next) n += s->chan == chan;
  b.lock.unlock();
  return n;
}

}  // namespace faultline::locking
