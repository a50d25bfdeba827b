#include "locking/sx.h"

#include <cassert>

namespace faultline::locking {

SxLock::SxLock(LockClass& cls, const char* name)
    : LockBase(cls, name),
      m_(detail::wait_kind_for(backend())),
      readers_(detail::wait_kind_for(backend())),
      writers_(detail::wait_kind_for(backend())) {
  assert(cls.kind() == LockKind::kSx && "an SxLock needs a LockKind::kSx class");
}

SxLock::~SxLock() {
  Actor* o = xowner_.load(std::memory_order_relaxed);
  if (o != nullptr || sharers_.load(std::memory_order_relaxed) != 0) [[unlikely]]
    detail::report_destroy_held(*this, o);
}

bool SxLock::can_share() const noexcept {
  return xowner_.load(std::memory_order_relaxed) == nullptr && xwaiters_.load(std::memory_order_relaxed) == 0;
}

bool SxLock::held_shared_by_me() const noexcept {
  if (detail::tracking()) {
    Actor& me = current_actor();
    int i = me.find(this);
    return i >= 0 && me.held(i).mode.load(std::memory_order_relaxed) == LockMode::kShared;
  }
  return sharers_.load(std::memory_order_relaxed) != 0;
}

void SxLock::xlock(const Site& site) {
  schedule_point(Point::kLock, this);
  Actor& me = current_actor();
  if (xowner_.load(std::memory_order_relaxed) == &me) [[unlikely]] {
    detail::report_recursion(*this, site);
    return;
  }
  const bool track = detail::tracking();
  if (track && !detail::check_acquire(me, *this, LockMode::kExclusive, 0, site)) return;
  bool contended = false;
  std::uint64_t t0 = 0;
  m_.lock();
  if (xowner_.load(std::memory_order_relaxed) != nullptr ||
      sharers_.load(std::memory_order_relaxed) != 0) {
    contended = true;
    if (track && detail::profiling_on()) t0 = detail::now_ns();
    xwaiters_.fetch_add(1, std::memory_order_relaxed);
    do {
      writers_.wait(m_);
    } while (xowner_.load(std::memory_order_relaxed) != nullptr ||
             sharers_.load(std::memory_order_relaxed) != 0);
    xwaiters_.fetch_sub(1, std::memory_order_relaxed);
  }
  xowner_.store(&me, std::memory_order_relaxed);
  m_.unlock();
  if (track)
    detail::note_acquired(me, *this, LockMode::kExclusive, 0, false, contended,
                          t0 != 0 ? detail::now_ns() - t0 : 0, site);
}

void SxLock::slock(const Site& site) {
  schedule_point(Point::kLock, this);
  Actor& me = current_actor();
  if (xowner_.load(std::memory_order_relaxed) == &me) [[unlikely]] {
    detail::report_recursion(*this, site);
    return;
  }
  const bool track = detail::tracking();
  // Shared recursion is caught here when the checker tracks held locks.
  if (track && !detail::check_acquire(me, *this, LockMode::kShared, 0, site)) return;
  bool contended = false;
  std::uint64_t t0 = 0;
  m_.lock();
  if (!can_share()) {
    contended = true;
    if (track && detail::profiling_on()) t0 = detail::now_ns();
    swaiters_.fetch_add(1, std::memory_order_relaxed);
    do {
      readers_.wait(m_);
    } while (!can_share());
    swaiters_.fetch_sub(1, std::memory_order_relaxed);
  }
  sharers_.store(sharers_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  m_.unlock();
  if (track)
    detail::note_acquired(me, *this, LockMode::kShared, 0, false, contended,
                          t0 != 0 ? detail::now_ns() - t0 : 0, site);
}

bool SxLock::try_xlock(const Site& site) {
  schedule_point(Point::kTryLock, this);
  Actor& me = current_actor();
  if (xowner_.load(std::memory_order_relaxed) == &me) [[unlikely]] {
    detail::report_recursion(*this, site);
    return false;
  }
  m_.lock();
  bool got = xowner_.load(std::memory_order_relaxed) == nullptr &&
             sharers_.load(std::memory_order_relaxed) == 0;
  if (got) xowner_.store(&me, std::memory_order_relaxed);
  m_.unlock();
  if (got && detail::tracking())
    detail::note_acquired(me, *this, LockMode::kExclusive, 0, true, false, 0, site);
  return got;
}

bool SxLock::try_slock(const Site& site) {
  schedule_point(Point::kTryLock, this);
  Actor& me = current_actor();
  if (xowner_.load(std::memory_order_relaxed) == &me ||
      (detail::tracking() && me.find(this) >= 0)) [[unlikely]] {
    detail::report_recursion(*this, site);
    return false;
  }
  m_.lock();
  bool got = can_share();
  if (got) sharers_.store(sharers_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  m_.unlock();
  if (got && detail::tracking())
    detail::note_acquired(me, *this, LockMode::kShared, 0, true, false, 0, site);
  return got;
}

void SxLock::xunlock(const Site& site) {
  Actor& me = current_actor();
  Actor* o = xowner_.load(std::memory_order_relaxed);
  if (o != &me) [[unlikely]] {
    detail::report_not_owned(*this, o, "exclusive-unlocking", site);
    return;
  }
  if (detail::tracking()) detail::note_released(me, *this);
  m_.lock();
  xowner_.store(nullptr, std::memory_order_relaxed);
  if (xwaiters_.load(std::memory_order_relaxed) != 0)
    writers_.notify_one();
  else if (swaiters_.load(std::memory_order_relaxed) != 0)
    readers_.notify_all();
  m_.unlock();
  schedule_point(Point::kUnlock, this);
}

void SxLock::sunlock(const Site& site) {
  Actor& me = current_actor();
  if (!held_shared_by_me()) [[unlikely]] {
    detail::report_not_owned(*this, xowner_.load(std::memory_order_relaxed), "shared-unlocking",
                             site);
    return;
  }
  if (detail::tracking()) detail::note_released(me, *this);
  m_.lock();
  std::uint32_t left = sharers_.load(std::memory_order_relaxed) - 1;
  sharers_.store(left, std::memory_order_relaxed);
  if (left == 0 && xwaiters_.load(std::memory_order_relaxed) != 0) writers_.notify_one();
  m_.unlock();
  schedule_point(Point::kUnlock, this);
}

void SxLock::unlock(const Site& site) {
  if (xlocked())
    xunlock(site);
  else
    sunlock(site);
}

bool SxLock::try_upgrade(const Site& site) {
  schedule_point(Point::kTryLock, this);
  Actor& me = current_actor();
  if (!held_shared_by_me()) [[unlikely]] {
    detail::report_not_owned(*this, xowner_.load(std::memory_order_relaxed), "upgrading", site);
    return false;
  }
  m_.lock();
  bool got = sharers_.load(std::memory_order_relaxed) == 1;
  if (got) {
    sharers_.store(0, std::memory_order_relaxed);
    xowner_.store(&me, std::memory_order_relaxed);
  }
  m_.unlock();
  if (got && detail::tracking()) detail::note_mode(me, *this, LockMode::kExclusive);
  return got;
}

void SxLock::downgrade(const Site& site) {
  Actor& me = current_actor();
  if (xowner_.load(std::memory_order_relaxed) != &me) [[unlikely]] {
    detail::report_not_owned(*this, xowner_.load(std::memory_order_relaxed), "downgrading", site);
    return;
  }
  m_.lock();
  xowner_.store(nullptr, std::memory_order_relaxed);
  sharers_.store(1, std::memory_order_relaxed);
  // Writers keep priority over the new sharers, but this holder now shares.
  if (swaiters_.load(std::memory_order_relaxed) != 0 && xwaiters_.load(std::memory_order_relaxed) == 0) readers_.notify_all();
  m_.unlock();
  if (detail::tracking()) detail::note_mode(me, *this, LockMode::kShared);
}

void SxLock::assert_xlocked(const Site& site) const {
  if (!xlocked()) [[unlikely]]
    detail::report_assertion(*this, "exclusively locked", site);
}

void SxLock::assert_slocked(const Site& site) const {
  if (!held_shared_by_me()) [[unlikely]]
    detail::report_assertion(*this, "share locked", site);
}

void SxLock::assert_locked(const Site& site) const {
  if (!xlocked() && !held_shared_by_me()) [[unlikely]]
    detail::report_assertion(*this, "locked", site);
}

void SxLock::assert_unlocked(const Site& site) const {
  bool mine = xlocked();
  if (!mine && detail::tracking()) mine = current_actor().find(this) >= 0;
  if (mine) [[unlikely]]
    detail::report_assertion(*this, "not locked by this actor", site);
}

}  // namespace faultline::locking
