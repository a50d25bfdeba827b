#include "locking/actor.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include <boost/fiber/fss.hpp>

#include "locking/checking.h"
#include "locking/detail/check.h"
#include "locking/dump.h"
#include "locking/lock_base.h"

namespace faultline::locking {
namespace detail {

thread_local Actor* tl_actor = nullptr;
std::atomic<bool> g_fiber_actors{false};

}  // namespace detail

namespace {

std::atomic<std::uint64_t> g_next_actor_id{1};

struct Registry {
  std::mutex mu;
  Actor* head = nullptr;
  Actor* tail = nullptr;
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: actors may outlive statics
  return *r;
}

// Actors made on demand for threads and fibers that never opened an
// ActorScope; owned by their thread or fiber and deleted when it ends.
struct ImplicitActor {
  Actor* actor = nullptr;
  ~ImplicitActor() {
    Actor* a = actor;
    if (a == nullptr) return;
    // Forget it first: a lock operation later in this thread's exit gets a
    // new actor rather than the retired (maybe deleted) one.
    actor = nullptr;
    if (detail::tl_actor == a) detail::tl_actor = nullptr;
    detail::retire_actor(a);
  }
};
thread_local ImplicitActor tl_implicit;

// The fiber's current actor.  This fiber-specific pointer never owns what it
// points to (an ActorScope's actor, or the fiber's implicit actor below).
void fiber_cleanup(Actor*) {}
boost::fibers::fiber_specific_ptr<Actor>& fiber_actor() {
  static boost::fibers::fiber_specific_ptr<Actor>* p =
      new boost::fibers::fiber_specific_ptr<Actor>(fiber_cleanup);
  return *p;
}
// Bumped whenever a fiber's actor binding ends or changes, so that no cache
// entry (on any thread) can outlive the binding it recorded, even if a new
// fiber's context reuses the old one's address.
std::atomic<std::uint64_t> g_fiber_epoch{1};

// Implicit actors of fibers, owned by a second fiber-specific pointer that
// deletes them when the fiber ends.
void delete_implicit(Actor* a) {
  g_fiber_epoch.fetch_add(1, std::memory_order_release);
  detail::retire_actor(a);
}
boost::fibers::fiber_specific_ptr<Actor>& fiber_implicit() {
  static boost::fibers::fiber_specific_ptr<Actor>* p =
      new boost::fibers::fiber_specific_ptr<Actor>(delete_implicit);
  return *p;
}

// The last (fiber, actor) this OS thread looked up: a fiber-specific pointer
// is a map lookup, and lock calls ask for the actor several times per
// acquisition.
struct FiberCache {
  const void* context = nullptr;
  Actor* actor = nullptr;
  std::uint64_t epoch = 0;
};
thread_local FiberCache tl_fiber_cache;

}  // namespace

Actor::Actor(std::string name) : name_(std::move(name)), id_(g_next_actor_id.fetch_add(1)) {
  Registry& r = registry();
  std::lock_guard<std::mutex> g(r.mu);
  reg_prev_ = r.tail;
  if (r.tail != nullptr)
    r.tail->reg_next_ = this;
  else
    r.head = this;
  r.tail = this;
}

Actor::~Actor() {
  Registry& r = registry();
  std::lock_guard<std::mutex> g(r.mu);
  (reg_prev_ != nullptr ? reg_prev_->reg_next_ : r.head) = reg_next_;
  (reg_next_ != nullptr ? reg_next_->reg_prev_ : r.tail) = reg_prev_;
}

void Actor::lock_stack() const noexcept {
  while (stack_mu_.test_and_set(std::memory_order_acquire)) stack_mu_.wait(true, std::memory_order_relaxed);
}

void Actor::unlock_stack() const noexcept {
  stack_mu_.clear(std::memory_order_release);
  stack_mu_.notify_one();
}

int Actor::held_count() const noexcept {
  int n = 0;
  for (int i = depth() - 1; i >= 0; --i) n += held_[i].lock.load(std::memory_order_relaxed) != nullptr;
  return n;
}

int Actor::untracked_mutexes() const noexcept {
  int on_stack = 0;
  for (int i = depth() - 1; i >= 0; --i)
    on_stack += held_[i].lock.load(std::memory_order_relaxed) != nullptr &&
                !held_[i].is_sx.load(std::memory_order_relaxed);
  return mutex_holds_.load(std::memory_order_relaxed) - mutex_revoked_.load(std::memory_order_relaxed) -
         on_stack;
}

int Actor::locks_held() const noexcept {
  int sx = 0;
  for (int i = depth() - 1; i >= 0; --i)
    sx += held_[i].lock.load(std::memory_order_relaxed) != nullptr && !!held_[i].is_sx.load(std::memory_order_relaxed);
  return mutex_holds_.load(std::memory_order_relaxed) - mutex_revoked_.load(std::memory_order_relaxed) +
         sx + sx_overflow;
}

HeldLock* Actor::push_full(const LockBase& lock, LockMode mode, const char* file, std::uint32_t line) {
  // Full: squeeze out slots emptied by destroyers, else refuse.
  const int d = depth();
  lock_stack();
  int to = 0;
  for (int i = 0; i < d; ++i) {
    if (held_[i].lock.load(std::memory_order_relaxed) == nullptr) continue;
    if (i != to) move_slot(to, i);
    ++to;
  }
  for (int i = to; i < d; ++i) held_[i].lock.store(nullptr, std::memory_order_relaxed);
  depth_.store(to, std::memory_order_release);
  unlock_stack();
  if (to == kMaxHeldLocks) return nullptr;
  return push(lock, mode, file, line);
}

void Actor::trim(int n) noexcept {
  while (n > 0 && held_[n - 1].lock.load(std::memory_order_relaxed) == nullptr) --n;
  depth_.store(n, std::memory_order_release);
}

void Actor::move_slot(int to, int from) noexcept {
  HeldLock& t = held_[to];
  HeldLock& f = held_[from];
  t.lock_name.store(f.lock_name.load(std::memory_order_relaxed), std::memory_order_relaxed);
  t.cls.store(f.cls.load(std::memory_order_relaxed), std::memory_order_relaxed);
  t.is_sx.store(f.is_sx.load(std::memory_order_relaxed), std::memory_order_relaxed);
  t.file.store(f.file.load(std::memory_order_relaxed), std::memory_order_relaxed);
  t.line.store(f.line.load(std::memory_order_relaxed), std::memory_order_relaxed);
  t.mode.store(f.mode.load(std::memory_order_relaxed), std::memory_order_relaxed);
  t.trylock = f.trylock;
  t.key = f.key;
  t.prof_site = f.prof_site;
  t.since_ns = f.since_ns;
  t.lock.store(f.lock.load(std::memory_order_relaxed), std::memory_order_release);
}

void Actor::remove(int index) noexcept {
  const int d = depth();
  if (index == d - 1) {
    // The innermost: no entry moves, so no other actor's revoke() can be
    // confused; trim the empty slots below it.
    held_[index].lock.store(nullptr, std::memory_order_relaxed);
    trim(index);
    return;
  }
  lock_stack();
  int to = index;
  for (int i = index + 1; i < d; ++i) {
    if (held_[i].lock.load(std::memory_order_relaxed) == nullptr) continue;
    move_slot(to++, i);
  }
  for (int i = to; i < d; ++i) held_[i].lock.store(nullptr, std::memory_order_relaxed);
  while (to > 0 && held_[to - 1].lock.load(std::memory_order_relaxed) == nullptr) --to;
  depth_.store(to, std::memory_order_release);
  unlock_stack();
}

bool Actor::revoke(const LockBase* lock) noexcept {
  lock_stack();
  bool found = false;
  for (int i = depth() - 1; i >= 0 && !found; --i) {
    const LockBase* expected = lock;
    found = held_[i].lock.compare_exchange_strong(expected, nullptr, std::memory_order_acq_rel);
  }
  unlock_stack();
  return found;
}

void Actor::set_sleeping(const void* chan, const char* wmesg, const char* file,
                         std::uint32_t line) noexcept {
  wmesg_.store(wmesg, std::memory_order_relaxed);
  sleep_file_.store(file, std::memory_order_relaxed);
  sleep_line_.store(line, std::memory_order_relaxed);
  sleep_chan_.store(chan, std::memory_order_release);
}

void Actor::clear_sleeping() noexcept { sleep_chan_.store(nullptr, std::memory_order_release); }

namespace detail {

Actor* current_actor_slow() {
  if (g_fiber_actors.load(std::memory_order_relaxed)) {
    const void* ctx = boost::fibers::context::active();
    const std::uint64_t epoch = g_fiber_epoch.load(std::memory_order_acquire);
    FiberCache& c = tl_fiber_cache;
    if (c.context == ctx && c.epoch == epoch && ctx != nullptr) return c.actor;
    Actor* a = fiber_actor().get();
    if (a == nullptr) {
      a = new Actor("fiber");
      fiber_implicit().reset(a);
      fiber_actor().reset(a);
    }
    c = FiberCache{ctx, a, epoch};
    return a;
  }
  if (tl_implicit.actor == nullptr) tl_implicit.actor = new Actor("thread");
  tl_actor = tl_implicit.actor;
  return tl_actor;
}

void lock_registry() { registry().mu.lock(); }
void unlock_registry() { registry().mu.unlock(); }
Actor* registry_first() { return registry().head; }
Actor* registry_next(Actor* a) { return a->reg_next_; }

}  // namespace detail

ActorScope::ActorScope(std::string name)
    : actor_(new Actor(std::move(name))), fiber_(detail::g_fiber_actors.load(std::memory_order_relaxed)) {
  if (fiber_) {
    previous_ = fiber_actor().get();
    fiber_actor().reset(actor_);
    g_fiber_epoch.fetch_add(1, std::memory_order_release);
  } else {
    previous_ = detail::tl_actor;
    detail::tl_actor = actor_;
  }
}

ActorScope::~ActorScope() {
  // Undo the binding made at construction, even if the backend changed since.
  if (fiber_) {
    fiber_actor().reset(previous_);
    g_fiber_epoch.fetch_add(1, std::memory_order_release);
  } else {
    detail::tl_actor = previous_;
  }
  detail::retire_actor(actor_);
}

namespace detail {

void retire_actor(Actor* a) {
  Report rep{ReportKind::kExitHeld, "", "", "", "", ""};
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> g(r.mu);
    const int n = a->locks_held();
    if (n > 0) {
      // Kept for good: its locks stay held, and nobody may take its address.
      a->exited_.store(true, std::memory_order_relaxed);
      rep.actor = "actor " + std::to_string(a->id()) + " \"" + a->name() + "\"";
      rep.message = rep.actor + " ended holding " + std::to_string(n) + " lock(s):";
      for (int i = a->depth() - 1; i >= 0; --i) {
        const HeldLock& h = a->held(i);
        if (h.lock.load(std::memory_order_acquire) == nullptr) continue;
        rep.message += "\n  " + describe_held(h);
        if (rep.first_class.empty()) {
          rep.first_class = h.cls.load(std::memory_order_relaxed)->name();
          rep.first_site = format_site(h.file.load(std::memory_order_relaxed), h.line.load(std::memory_order_relaxed));
        }
      }
      if (int u = a->untracked_mutexes(); u > 0)
        rep.message += "\n  and " + std::to_string(u) + " mutex(es) taken with the order checker off (not named)";
      if (a->sx_overflow > 0)
        rep.message += "\n  and " + std::to_string(a->sx_overflow) + " sx hold(s) past the held-stack limit";
    }
  }
  if (rep.message.empty()) {
    delete a;
    return;
  }
  deliver(std::move(rep), Severity::kMisuse);
}

std::string describe_owner(const Actor* owner, const LockBase& lock, std::string* site) {
  Registry& r = registry();
  std::lock_guard<std::mutex> g(r.mu);
  for (Actor* x = r.head; x != nullptr; x = registry_next(x)) {
    if (x != owner) continue;
    const int i = x->find(&lock);
    if (i >= 0 && site != nullptr)
      *site = format_site(x->held(i).file.load(std::memory_order_relaxed), x->held(i).line.load(std::memory_order_relaxed));
    return describe_actor(x);
  }
  return "an actor that has since ended";
}

void destroy_held_lock(const LockBase& lock, Actor* xowner) {
  Actor& me = current_actor();  // before the registry lock: it may create the actor
  const bool sx = lock.is_sx();
  std::string holders, first_site;
  bool owner_seen = false;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> g(r.mu);
    bool owner_registered = false;
    for (Actor* x = r.head; x != nullptr; x = registry_next(x)) {
      owner_registered |= x == xowner;
      const int i = x->find(&lock);
      if (i < 0) continue;
      const HeldLock& h = x->held(i);
      const std::string site =
          format_site(h.file.load(std::memory_order_relaxed), h.line.load(std::memory_order_relaxed));
      if (first_site.empty()) first_site = site;
      holders += std::string("\n  held ") +
                 (h.mode.load(std::memory_order_relaxed) == LockMode::kShared ? "shared" : "exclusively") +
                 " by " + describe_actor(x) + ", acquired @ " + site;
      if (x == &me)
        me.remove(i);
      else
        x->revoke(&lock);
      if (!sx && x == xowner) {
        owner_seen = true;
        if (x == &me)
          me.mutex_released();
        else
          x->mutex_revoked();
      }
    }
    // A mutex taken with the checker off is not on any held stack.
    if (!sx && xowner != nullptr && !owner_seen && owner_registered) {
      holders += "\n  held exclusively by " + describe_actor(xowner) + " (taken with the order checker off)";
      if (xowner == &me)
        me.mutex_released();
      else
        xowner->mutex_revoked();
    }
  }
  if (holders.empty()) holders = "\n  held (by whom is not known: taken past the held-stack limit)";
  std::string msg = "destroying lock " + describe_lock(lock) + " while it is held" + holders +
                    "\n  destroyed by " + describe_actor(&me) + " @\n" + call_stack(2);
  if (msg.back() == '\n') msg.pop_back();
  deliver(Report{ReportKind::kDestroyHeld, std::move(msg), lock.lock_class().name(), "", first_site, ""},
          Severity::kMisuse);
}

}  // namespace detail

std::string dump_actor_locks(const Actor& a, bool all) {
  std::string out;
  const void* chan = a.sleep_channel();
  const int d = a.depth();
  if (!all && chan == nullptr && a.held_count() == 0 && !a.exited()) return out;
  out += "actor " + std::to_string(a.id()) + " \"" + a.name() + "\": ";
  if (a.exited()) {
    out += "exited holding " + std::to_string(a.locks_held()) + " lock(s)";
    if (int u = a.untracked_mutexes(); u > 0)
      out += " (" + std::to_string(u) + " mutex(es) taken with the order checker off, not named)";
  } else if (chan != nullptr) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%p", chan);
    const char* w = a.wait_message();
    out += std::string("sleeping on ") + buf + " \"" + (w != nullptr ? w : "?") + "\" @ " +
           format_site(a.sleep_file(), a.sleep_line());
  } else {
    out += "running";
  }
  if (!a.exited())
    if (int u = a.untracked_mutexes(); u > 0)
      out += " (and " + std::to_string(u) + " mutex(es) taken with the order checker off, not named)";
  out += "\n";
  for (int i = d - 1; i >= 0; --i)
    if (a.held(i).lock.load(std::memory_order_relaxed) != nullptr)
      out += "  " + detail::describe_held(a.held(i)) + "\n";
  return out;
}

std::string dump_all_locks(bool all) {
  std::string out;
  for_each_actor([&](const Actor& a) { out += dump_actor_locks(a, all); });
  return out;
}

}  // namespace faultline::locking
