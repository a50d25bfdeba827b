// Actors: the OS threads and fibers that hold locks and sleep.
//
// Each actor keeps the stack of locks it holds (with the sites that took
// them) and, while asleep, the channel and wait message it sleeps on.  That is
// what the order checker compares against, what ownership assertions look at,
// and what dump_all_locks() prints for a deadlock report.
//
// An OS thread gets an actor the first time it touches a lock; a fiber (under
// the fiber backend) gets its own, independent of the OS thread it runs on.
// Give workers readable names with ActorScope.
//
// An actor that ends (its thread or fiber exits, its ActorScope closes)
// holding locks is reported (ReportKind::kExitHeld) and is then kept, marked
// exited, for the rest of the process: its locks stay held (as a kernel
// thread's would), dump_all_locks() shows them under the dead actor's name,
// and reports about them name it; no later actor can ever share its address
// and be taken for their owner.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace faultline::locking {

class LockBase;
class LockClass;
class Actor;
namespace detail {
Actor* registry_next(Actor* a);
// Ends an actor: deletes it, or (holding locks) reports it and keeps it.
void retire_actor(Actor* a);
}  // namespace detail

enum class LockMode : std::uint8_t { kExclusive, kShared };

// Locks one actor may have on its held stack (lockdep's MAX_LOCK_DEPTH).  One
// more is reported once (ReportKind::kLimit) and turns the order checker off.
inline constexpr int kMaxHeldLocks = 48;

// One held lock.  Fields another actor may read (for dumps) are atomics.
// Everything a report or an order check needs is copied here at acquisition,
// so nothing ever reads a lock through a held entry: a lock destroyed while
// held (a reported misuse) cannot be read after it is freed.
struct HeldLock {
  std::atomic<const LockBase*> lock{nullptr};  // identity only; nullptr: an empty slot
  // The class outlives its locks (destroying a class with live locks is a
  // reported misuse that retires its id), so the entry may name it.
  std::atomic<const LockClass*> cls{nullptr};
  std::atomic<const char*> lock_name{nullptr};
  std::atomic<bool> is_sx{false};  // an SxLock (else a Mutex)
  std::atomic<const char*> file{nullptr};
  std::atomic<std::uint32_t> line{0};
  std::atomic<LockMode> mode{LockMode::kExclusive};
  // Read by the owning actor only.
  bool trylock = false;
  std::uint32_t key = 0;          // lock_nested key
  std::int32_t prof_site = -1;    // profile site slot, -1 if none
  std::uint64_t since_ns = 0;     // acquisition time when profiling
};

class Actor {
 public:
  explicit Actor(std::string name);
  ~Actor();
  Actor(const Actor&) = delete;
  Actor& operator=(const Actor&) = delete;

  const std::string& name() const noexcept { return name_; }
  // Creation order, from 1; stable within a run for actors created in a
  // deterministic order.
  std::uint64_t id() const noexcept { return id_; }

  // The held stack: slots [0, depth()), outermost first.  A slot whose lock
  // is nullptr is empty (a lock destroyed while held is taken off its
  // holder's stack by the destroyer, which may only empty a slot); walkers
  // skip empty slots.
  int depth() const noexcept { return depth_.load(std::memory_order_acquire); }
  HeldLock& held(int i) noexcept { return held_[i]; }
  const HeldLock& held(int i) const noexcept { return held_[i]; }
  // Index of `lock` in the held stack (innermost first), or -1.
  int find(const LockBase* lock) const noexcept {
    for (int i = depth_.load(std::memory_order_relaxed) - 1; i >= 0; --i)
      if (held_[i].lock.load(std::memory_order_relaxed) == lock) return i;
    return -1;
  }
  // Non-empty slots.
  int held_count() const noexcept;

  // Held-stack maintenance, called by the lock types (owner only).  push
  // returns nullptr when the stack is full.
  inline HeldLock* push(const LockBase& lock, LockMode mode, const char* file, std::uint32_t line);
  // Removes the innermost entry if it is `lock` (the common, LIFO case).
  inline bool pop_if_top(const LockBase* lock) noexcept;
  void remove(int index) noexcept;
  // Another actor (destroying `lock`) empties its slot; false if not found.
  bool revoke(const LockBase* lock) noexcept;

  // Mutex holds, counted in every mode (the held stack has them only while
  // the checker tracks): owner-only writes.
  void mutex_acquired() noexcept { mutex_holds_.store(mutex_holds_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  void mutex_released() noexcept { mutex_holds_.store(mutex_holds_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed); }
  // A mutex this actor held was destroyed by another actor.
  void mutex_revoked() noexcept { mutex_revoked_.fetch_add(1, std::memory_order_relaxed); }
  // Locks held now: mutexes by count, sx holds on the stack or past its end.
  int locks_held() const noexcept;
  // Mutex holds not on the held stack (taken with the checker off).
  int untracked_mutexes() const noexcept;
  // An sx hold that did not fit on the held stack (past kMaxHeldLocks).
  int sx_overflow = 0;

  // True once the actor ended holding locks (it is kept, see above).
  bool exited() const noexcept { return exited_.load(std::memory_order_relaxed); }

  // Sleep state, published for dumps.
  void set_sleeping(const void* chan, const char* wmesg, const char* file, std::uint32_t line) noexcept;
  void clear_sleeping() noexcept;
  const void* sleep_channel() const noexcept { return sleep_chan_.load(std::memory_order_acquire); }
  const char* wait_message() const noexcept { return wmesg_.load(std::memory_order_relaxed); }
  const char* sleep_file() const noexcept { return sleep_file_.load(std::memory_order_relaxed); }
  std::uint32_t sleep_line() const noexcept { return sleep_line_.load(std::memory_order_relaxed); }

 private:
  friend Actor* detail::registry_next(Actor* a);
  friend void detail::retire_actor(Actor* a);
  HeldLock* push_full(const LockBase& lock, LockMode mode, const char* file, std::uint32_t line);
  void trim(int n) noexcept;
  void lock_stack() const noexcept;
  void move_slot(int to, int from) noexcept;
  void unlock_stack() const noexcept;
  std::string name_;
  std::uint64_t id_;
  std::atomic<int> depth_{0};
  std::atomic<int> mutex_holds_{0};
  std::atomic<int> mutex_revoked_{0};
  std::atomic<bool> exited_{false};
  mutable std::atomic_flag stack_mu_ = ATOMIC_FLAG_INIT;  // shifts of the stack vs. revoke()
  HeldLock held_[kMaxHeldLocks];
  std::atomic<const void*> sleep_chan_{nullptr};
  std::atomic<const char*> wmesg_{nullptr};
  std::atomic<const char*> sleep_file_{nullptr};
  std::atomic<std::uint32_t> sleep_line_{0};
  Actor* reg_prev_ = nullptr;  // registry links, under the registry mutex
  Actor* reg_next_ = nullptr;
};

}  // namespace faultline::locking

#include "locking/lock_base.h"

namespace faultline::locking {

inline HeldLock* Actor::push(const LockBase& lock, LockMode mode, const char* file, std::uint32_t line) {
  const int d = depth_.load(std::memory_order_relaxed);
  if (d == kMaxHeldLocks) [[unlikely]]
    return push_full(lock, mode, file, line);
  HeldLock& h = held_[d];
  h.cls.store(&lock.lock_class(), std::memory_order_relaxed);
  h.lock_name.store(lock.name(), std::memory_order_relaxed);
  h.is_sx.store(lock.is_sx(), std::memory_order_relaxed);
  h.file.store(file, std::memory_order_relaxed);
  h.line.store(line, std::memory_order_relaxed);
  h.mode.store(mode, std::memory_order_relaxed);
  h.trylock = false;
  h.key = 0;
  h.prof_site = -1;
  h.since_ns = 0;
  h.lock.store(&lock, std::memory_order_release);
  depth_.store(d + 1, std::memory_order_release);
  return &h;
}

inline bool Actor::pop_if_top(const LockBase* lock) noexcept {
  const int d = depth_.load(std::memory_order_relaxed);
  if (d == 0 || held_[d - 1].lock.load(std::memory_order_relaxed) != lock) return false;
  held_[d - 1].lock.store(nullptr, std::memory_order_relaxed);
  if (d > 1 && held_[d - 2].lock.load(std::memory_order_relaxed) == nullptr) [[unlikely]]
    trim(d - 1);
  else
    depth_.store(d - 1, std::memory_order_release);
  return true;
}

namespace detail {
extern thread_local Actor* tl_actor;
extern std::atomic<bool> g_fiber_actors;  // true while the fiber backend is current
Actor* current_actor_slow();
}  // namespace detail

// The actor running now: the current fiber's under the fiber backend, the
// current OS thread's otherwise.  A thread's actor is one thread-local load;
// a fiber's is found through a per-thread cache keyed by the running fiber
// (see actor.cpp).
inline Actor& current_actor() {
  if (!detail::g_fiber_actors.load(std::memory_order_relaxed)) [[likely]] {
    if (Actor* a = detail::tl_actor) [[likely]]
      return *a;
  }
  return *detail::current_actor_slow();
}

// Makes a named actor current for this OS thread or fiber for the scope's
// lifetime (create it first thing in a worker).  Nests: the previous actor
// comes back at the end of the scope.
class ActorScope {
 public:
  explicit ActorScope(std::string name);
  ~ActorScope();
  ActorScope(const ActorScope&) = delete;
  ActorScope& operator=(const ActorScope&) = delete;
  Actor& actor() noexcept { return *actor_; }

 private:
  Actor* actor_;  // retired (deleted, or kept if it holds locks) at scope end
  Actor* previous_;
  bool fiber_;    // bound as a fiber's actor (else the OS thread's)
};

// Calls f(actor) for every live actor (and every exited one kept for the
// locks it still holds), in creation order, under the registry
// lock (f must not create or destroy actors).
template <class F>
void for_each_actor(F&& f);

namespace detail {
void lock_registry();
void unlock_registry();
Actor* registry_first();
Actor* registry_next(Actor* a);
}  // namespace detail

template <class F>
void for_each_actor(F&& f) {
  detail::lock_registry();
  try {
    for (Actor* a = detail::registry_first(); a != nullptr; a = detail::registry_next(a)) f(*a);
  } catch (...) {
    detail::unlock_registry();
    throw;
  }
  detail::unlock_registry();
}

}  // namespace faultline::locking
