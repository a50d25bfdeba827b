#include "locking/mutex.h"
#include "locking/kassert.h"


namespace faultline::locking {

Mutex::Mutex(LockClass& cls, const char* name, std::uint32_t order_key)
    : LockBase(cls, name, false), raw_(backend()), order_key_(order_key) {
  if (cls.kind() != LockKind::kMutex) [[unlikely]]
    detail::report_wrong_kind(*this, "a Mutex", "a LockKind::kMutex class", Site::current());
}

Mutex::~Mutex() {
  if (Actor* o = owner_.load(std::memory_order_relaxed)) [[unlikely]] {
    detail::destroy_held_lock(*this, o);
    // kReport mode: leave the raw mutex in a state its destructor accepts
    // (another actor's hold cannot be undone; it was taken off its stack).
    if (o == &current_actor())
      raw_.unlock();
    else
      raw_.abandon();
  }
}

void Mutex::lock_impl(std::uint32_t key, const Site& site, const LockBase* nest) {
  schedule_point(Point::kLock, static_cast<const LockBase*>(this), 0, site);
  Actor& me = current_actor();
  if (owner_.load(std::memory_order_relaxed) == &me) [[unlikely]] {
    detail::report_recursion(*this, site);
    return;  // kReport mode: skipped, the lock stays held once
  }
  if (!detail::tracking()) {
    raw_.lock();
    owner_.store(&me, std::memory_order_relaxed);
    me.mutex_acquired();
    return;
  }
  detail::check_acquire(me, *this, LockMode::kExclusive, key, site, nest);
  bool contended = false;
  std::uint64_t wait_ns = 0;
  if (detail::profiling_on()) {
    if (!raw_.try_lock()) {
      contended = true;
      std::uint64_t t0 = detail::now_ns();
      raw_.lock();
      wait_ns = detail::now_ns() - t0;
    }
  } else {
    raw_.lock();
  }
  owner_.store(&me, std::memory_order_relaxed);
  me.mutex_acquired();
  detail::note_acquired(me, *this, LockMode::kExclusive, key, false, contended, wait_ns, site);
}

bool Mutex::try_lock(const Site& site) {
  schedule_point(Point::kTryLock, static_cast<const LockBase*>(this), 0, site);
  Actor& me = current_actor();
  if (owner_.load(std::memory_order_relaxed) == &me) [[unlikely]] {
    detail::report_recursion(*this, site);
    return false;
  }
  if (!raw_.try_lock()) return false;
  owner_.store(&me, std::memory_order_relaxed);
  me.mutex_acquired();
  if (detail::tracking()) [[unlikely]]
    detail::note_acquired(me, *this, LockMode::kExclusive, order_key_, true, false, 0, site);
  return true;
}

void Mutex::unlock_slow(const Site& site) {
  Actor& me = current_actor();
  Actor* o = owner_.load(std::memory_order_relaxed);
  if (o != &me) [[unlikely]] {
    detail::report_not_owned(*this, o, "unlocking", site);
    return;  // kReport mode: skipped
  }
  // Whatever the mode now: it may have been taken while the checker tracked.
  if (me.depth() != 0) detail::note_released(me, *this);
  me.mutex_released();
  owner_.store(nullptr, std::memory_order_relaxed);
  raw_.unlock();
  schedule_point(Point::kUnlock, static_cast<const LockBase*>(this), 0, site);
}

void Mutex::release_for_sleep(Actor& me) {
  if (me.depth() != 0) detail::note_released(me, *this);
  me.mutex_released();
  owner_.store(nullptr, std::memory_order_relaxed);
  raw_.unlock();
}

void Mutex::reacquire_after_sleep(Actor& me, const Site& site) {
  if (detail::tracking()) detail::check_acquire(me, *this, LockMode::kExclusive, order_key_, site);
  raw_.lock();
  owner_.store(&me, std::memory_order_relaxed);
  me.mutex_acquired();
  if (detail::tracking())
    detail::note_acquired(me, *this, LockMode::kExclusive, order_key_, false, false, 0, site);
}

}  // namespace faultline::locking
