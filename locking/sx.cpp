#include "locking/sx.h"
#include "locking/kassert.h"


namespace faultline::locking {

SxLock::SxLock(LockClass& cls, const char* name)
    : LockBase(cls, name, true),
      m_(detail::wait_kind_for(backend())),
      readers_(detail::wait_kind_for(backend())),
      writers_(detail::wait_kind_for(backend())) {
  if (cls.kind() != LockKind::kSx) [[unlikely]]
    detail::report_wrong_kind(*this, "an SxLock", "a LockKind::kSx class", Site::current());
}

SxLock::~SxLock() {
  Actor* o = xowner_.load(std::memory_order_relaxed);
  if (o != nullptr || sharers() != 0) [[unlikely]]
    detail::destroy_held_lock(*this, o);
}

// Every sx hold is on its actor's held stack, in every mode: a shared hold
// has no owner field, so the stack is the only record of who holds it.
[[gnu::always_inline]] inline void SxLock::remember(Actor& me, LockMode mode, bool trylock, bool contended,
                                                   std::uint64_t wait_ns, const Site& site) {
  // Untracked: just the entry; tracked (or the stack full): the checker's
  // bookkeeping, profile and limit report.
  if (detail::tracking() || me.push(*this, mode, site.file_name(), site.line()) == nullptr) [[unlikely]]
    detail::note_acquired(me, *this, mode, 0, trylock, contended, wait_ns, site);
}

[[gnu::noinline]] void SxLock::forget_slow(Actor& me) {
  if (!detail::note_released(me, *this) && me.sx_overflow > 0) --me.sx_overflow;
}

[[gnu::always_inline]] inline void SxLock::forget(Actor& me) {
  if (!detail::profiling_on() && me.pop_if_top(this)) [[likely]]
    return;
  forget_slow(me);
}

bool SxLock::fast_slock() noexcept {
  std::uint32_t v = state_.load(std::memory_order_relaxed);
  while ((v & (kExclusive | kWaiters)) == 0)
    if (state_.compare_exchange_weak(v, v + 1, std::memory_order_acquire, std::memory_order_relaxed)) return true;
  return false;
}

bool SxLock::fast_sunlock() noexcept {
  std::uint32_t v = state_.load(std::memory_order_relaxed);
  while ((v & kWaiters) == 0)
    if (state_.compare_exchange_weak(v, v - 1, std::memory_order_release, std::memory_order_relaxed)) return true;
  return false;
}

void SxLock::settle_waiters_bit() {
  if (xwaiters_.load(std::memory_order_relaxed) == 0 && swaiters_.load(std::memory_order_relaxed) == 0)
    state_.fetch_and(~kWaiters, std::memory_order_relaxed);
}

void SxLock::slow_slock() {
  m_.lock();
  for (;;) {
    // Writers first: no new sharer while one waits.
    std::uint32_t v = state_.load(std::memory_order_relaxed);
    if ((v & kExclusive) == 0 && xwaiters_.load(std::memory_order_relaxed) == 0) {
      if (state_.compare_exchange_weak(v, v + 1, std::memory_order_acquire, std::memory_order_relaxed)) break;
      continue;
    }
    swaiters_.fetch_add(1, std::memory_order_relaxed);
    state_.fetch_or(kWaiters);
    v = state_.load();
    if ((v & kExclusive) != 0 || xwaiters_.load(std::memory_order_relaxed) != 0) readers_.wait(m_);
    swaiters_.fetch_sub(1, std::memory_order_relaxed);
  }
  settle_waiters_bit();
  m_.unlock();
}

void SxLock::slow_sunlock() {
  m_.lock();
  const std::uint32_t v = state_.fetch_sub(1, std::memory_order_release) - 1;
  if ((v & kCountMask) == 0 && xwaiters_.load(std::memory_order_relaxed) != 0) writers_.notify_one();
  m_.unlock();
}

void SxLock::slow_xlock() {
  m_.lock();
  for (;;) {
    std::uint32_t v = state_.load(std::memory_order_relaxed);
    if ((v & (kExclusive | kCountMask)) == 0) {
      if (state_.compare_exchange_weak(v, v | kExclusive, std::memory_order_acquire, std::memory_order_relaxed))
        break;
      continue;
    }
    xwaiters_.fetch_add(1, std::memory_order_relaxed);
    state_.fetch_or(kWaiters);
    v = state_.load();
    if ((v & (kExclusive | kCountMask)) != 0) writers_.wait(m_);
    xwaiters_.fetch_sub(1, std::memory_order_relaxed);
  }
  settle_waiters_bit();
  m_.unlock();
}

void SxLock::slow_xunlock() {
  m_.lock();
  state_.fetch_and(~kExclusive, std::memory_order_release);
  if (xwaiters_.load(std::memory_order_relaxed) != 0)
    writers_.notify_one();
  else if (swaiters_.load(std::memory_order_relaxed) != 0)
    readers_.notify_all();
  m_.unlock();
}

bool SxLock::held_shared_by_me() const noexcept { return held_shared_by(current_actor()); }

bool SxLock::held_shared_by(Actor& me) const noexcept {
  int i = me.find(this);
  if (i >= 0) return me.held(i).mode.load(std::memory_order_relaxed) == LockMode::kShared;
  // Past the held-stack limit holds are not recorded (reported once, kLimit).
  return me.sx_overflow > 0 && sharers() != 0 && xowner_.load(std::memory_order_relaxed) != &me;
}

void SxLock::xlock(const Site& site) {
  schedule_point(Point::kLock, static_cast<const LockBase*>(this), 0, site);
  Actor& me = current_actor();
  if (xowner_.load(std::memory_order_relaxed) == &me) [[unlikely]] {
    detail::report_recursion(*this, site);
    return;
  }
  const bool track = detail::tracking();
  if (track && !detail::check_acquire(me, *this, LockMode::kExclusive, 0, site)) return;
  bool contended = false;
  std::uint64_t t0 = 0;
  std::uint32_t zero = 0;
  if (!state_.compare_exchange_strong(zero, kExclusive, std::memory_order_acquire, std::memory_order_relaxed)) {
    // Held: by this actor shared?  Waiting would wait for itself.  (Free,
    // it cannot be this actor's; tracked, check_acquire has looked.)
    if (!track && me.find(this) >= 0) [[unlikely]] {
      detail::report_recursion(*this, site);
      return;
    }
    contended = true;
    if (track && detail::profiling_on()) t0 = detail::now_ns();
    slow_xlock();
  }
  xowner_.store(&me, std::memory_order_relaxed);
  remember(me, LockMode::kExclusive, false, contended, t0 != 0 ? detail::now_ns() - t0 : 0, site);
}

void SxLock::slock(const Site& site) {
  schedule_point(Point::kLock, static_cast<const LockBase*>(this), 0, site);
  Actor& me = current_actor();
  // Shared recursion too: with a writer waiting it would wait for itself.
  if (xowner_.load(std::memory_order_relaxed) == &me || me.find(this) >= 0) [[unlikely]] {
    detail::report_recursion(*this, site);
    return;
  }
  const bool track = detail::tracking();
  if (track && !detail::check_acquire(me, *this, LockMode::kShared, 0, site)) return;
  bool contended = false;
  std::uint64_t t0 = 0;
  if (!fast_slock()) {
    contended = true;
    if (track && detail::profiling_on()) t0 = detail::now_ns();
    slow_slock();
  }
  remember(me, LockMode::kShared, false, contended, t0 != 0 ? detail::now_ns() - t0 : 0, site);
}

bool SxLock::try_xlock(const Site& site) {
  schedule_point(Point::kTryLock, static_cast<const LockBase*>(this), 0, site);
  Actor& me = current_actor();
  if (xowner_.load(std::memory_order_relaxed) == &me || me.find(this) >= 0) [[unlikely]] {
    detail::report_recursion(*this, site);
    return false;
  }
  std::uint32_t v = state_.load(std::memory_order_relaxed);
  bool got = false;
  while ((v & (kExclusive | kCountMask)) == 0 && !got)
    got = state_.compare_exchange_weak(v, v | kExclusive, std::memory_order_acquire, std::memory_order_relaxed);
  if (got) xowner_.store(&me, std::memory_order_relaxed);
  if (got) remember(me, LockMode::kExclusive, true, false, 0, site);
  return got;
}

bool SxLock::try_slock(const Site& site) {
  schedule_point(Point::kTryLock, static_cast<const LockBase*>(this), 0, site);
  Actor& me = current_actor();
  if (xowner_.load(std::memory_order_relaxed) == &me || me.find(this) >= 0) [[unlikely]] {
    detail::report_recursion(*this, site);
    return false;
  }
  // Refused while a writer holds it or waits for it (writer preference).
  bool got = fast_slock();
  if (got) remember(me, LockMode::kShared, true, false, 0, site);
  return got;
}

void SxLock::xunlock(const Site& site) {
  Actor& me = current_actor();
  Actor* o = xowner_.load(std::memory_order_relaxed);
  if (o != &me) [[unlikely]] {
    detail::report_not_owned(*this, o, "exclusive-unlocking", site);
    return;
  }
  forget(me);
  xowner_.store(nullptr, std::memory_order_relaxed);
  std::uint32_t x = kExclusive;
  if (!state_.compare_exchange_strong(x, 0, std::memory_order_release, std::memory_order_relaxed)) slow_xunlock();
  schedule_point(Point::kUnlock, static_cast<const LockBase*>(this), 0, site);
}

void SxLock::sunlock(const Site& site) {
  Actor& me = current_actor();
  if (!held_shared_by(me)) [[unlikely]] {
    detail::report_not_owned(*this, xowner_.load(std::memory_order_relaxed), "shared-unlocking",
                             site);
    return;
  }
  forget(me);
  if (!fast_sunlock()) slow_sunlock();
  schedule_point(Point::kUnlock, static_cast<const LockBase*>(this), 0, site);
}

void SxLock::unlock(const Site& site) {
  if (xlocked())
    xunlock(site);
  else
    sunlock(site);
}

bool SxLock::try_upgrade(const Site& site) {
  schedule_point(Point::kTryLock, static_cast<const LockBase*>(this), 0, site);
  Actor& me = current_actor();
  if (!held_shared_by_me()) [[unlikely]] {
    detail::report_not_owned(*this, xowner_.load(std::memory_order_relaxed), "upgrading", site);
    return false;
  }
  // Only the sole sharer may upgrade; waiters keep their bit.
  std::uint32_t v = state_.load(std::memory_order_relaxed);
  bool got = false;
  while ((v & (kExclusive | kCountMask)) == 1 && !got)
    got = state_.compare_exchange_weak(v, (v & kWaiters) | kExclusive, std::memory_order_acquire,
                                       std::memory_order_relaxed);
  if (got) xowner_.store(&me, std::memory_order_relaxed);
  if (got) detail::note_mode(me, *this, LockMode::kExclusive);
  return got;
}

void SxLock::downgrade(const Site& site) {
  Actor& me = current_actor();
  if (xowner_.load(std::memory_order_relaxed) != &me) [[unlikely]] {
    detail::report_not_owned(*this, xowner_.load(std::memory_order_relaxed), "downgrading", site);
    return;
  }
  xowner_.store(nullptr, std::memory_order_relaxed);
  // Exclusive -> one sharer; shared waiters may join unless a writer waits.
  const std::uint32_t v = state_.fetch_xor(kExclusive | 1u, std::memory_order_release);
  if ((v & kWaiters) != 0) {
    m_.lock();
    if (swaiters_.load(std::memory_order_relaxed) != 0 && xwaiters_.load(std::memory_order_relaxed) == 0)
      readers_.notify_all();
    m_.unlock();
  }
  detail::note_mode(me, *this, LockMode::kShared);
}

void SxLock::assert_xlocked(const Site& site) const {
  if constexpr (!kInvariants) return;
  if (!xlocked()) [[unlikely]]
    detail::report_assertion(*this, "exclusively locked", site);
}

void SxLock::assert_slocked(const Site& site) const {
  if constexpr (!kInvariants) return;
  if (!held_shared_by_me()) [[unlikely]]
    detail::report_assertion(*this, "share locked", site);
}

void SxLock::assert_locked(const Site& site) const {
  if constexpr (!kInvariants) return;
  if (!xlocked() && !held_shared_by_me()) [[unlikely]]
    detail::report_assertion(*this, "locked", site);
}

void SxLock::assert_unlocked(const Site& site) const {
  if constexpr (!kInvariants) return;
  const bool mine = xlocked() || current_actor().find(this) >= 0;
  if (mine) [[unlikely]]
    detail::report_assertion(*this, "not locked by this actor", site);
}

}  // namespace faultline::locking
