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
  ~ImplicitActor() { delete actor; }
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
  delete a;
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
  if (depth() != 0) {
    std::fprintf(stderr, "faultline: actor %llu \"%s\" ends holding %d lock(s):\n",
                 static_cast<unsigned long long>(id_), name_.c_str(), depth());
    for (int i = depth() - 1; i >= 0; --i)
      std::fprintf(stderr, "  %s\n", detail::describe_held(held_[i]).c_str());
  }
  Registry& r = registry();
  std::lock_guard<std::mutex> g(r.mu);
  (reg_prev_ != nullptr ? reg_prev_->reg_next_ : r.head) = reg_next_;
  (reg_next_ != nullptr ? reg_next_->reg_prev_ : r.tail) = reg_prev_;
}

int Actor::find(const LockBase* lock) const noexcept {
  for (int i = depth() - 1; i >= 0; --i)
    if (held_[i].lock.load(std::memory_order_relaxed) == lock) return i;
  return -1;
}

HeldLock* Actor::push(const LockBase* lock, LockMode mode, const char* file, std::uint32_t line) {
  const int d = depth();
  if (d == kMaxHeldLocks) {
    std::fprintf(stderr, "faultline: actor \"%s\" holds more than %d locks (at %s)\n", name_.c_str(),
                 kMaxHeldLocks, format_site(file, line).c_str());
    std::abort();
  }
  HeldLock& h = held_[d];
  h.lock.store(lock, std::memory_order_relaxed);
  h.file.store(file, std::memory_order_relaxed);
  h.line.store(line, std::memory_order_relaxed);
  h.mode.store(mode, std::memory_order_relaxed);
  depth_.store(d + 1, std::memory_order_release);
  return &h;
}

void Actor::remove(int index) noexcept {
  const int d = depth();
  for (int i = index; i + 1 < d; ++i) {
    HeldLock& to = held_[i];
    HeldLock& from = held_[i + 1];
    to.lock.store(from.lock.load(std::memory_order_relaxed), std::memory_order_relaxed);
    to.file.store(from.file.load(std::memory_order_relaxed), std::memory_order_relaxed);
    to.line.store(from.line.load(std::memory_order_relaxed), std::memory_order_relaxed);
    to.mode.store(from.mode.load(std::memory_order_relaxed), std::memory_order_relaxed);
    to.trylock = from.trylock;
    to.key = from.key;
    to.prof_site = from.prof_site;
    to.since_ns = from.since_ns;
  }
  held_[d - 1].lock.store(nullptr, std::memory_order_relaxed);
  depth_.store(d - 1, std::memory_order_release);
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

ActorScope::ActorScope(std::string name) : actor_(std::move(name)) {
  if (detail::g_fiber_actors.load(std::memory_order_relaxed)) {
    previous_ = fiber_actor().get();
    fiber_actor().reset(&actor_);
    g_fiber_epoch.fetch_add(1, std::memory_order_release);
  } else {
    previous_ = detail::tl_actor;
    detail::tl_actor = &actor_;
  }
}

ActorScope::~ActorScope() {
  if (detail::g_fiber_actors.load(std::memory_order_relaxed)) {
    fiber_actor().reset(previous_);
    g_fiber_epoch.fetch_add(1, std::memory_order_release);
  } else {
    detail::tl_actor = previous_;
  }
}

std::string dump_all_locks(bool all) {
  std::string out;
  for_each_actor([&](const Actor& a) {
    const void* chan = a.sleep_channel();
    const int d = a.depth();
    if (!all && chan == nullptr && d == 0) return;
    out += "actor " + std::to_string(a.id()) + " \"" + a.name() + "\": ";
    if (chan != nullptr) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%p", chan);
      const char* w = a.wait_message();
      out += std::string("sleeping on ") + buf + " \"" + (w != nullptr ? w : "?") + "\" @ " +
             format_site(a.sleep_file(), a.sleep_line());
    } else {
      out += "running";
    }
    out += "\n";
    for (int i = d - 1; i >= 0; --i) out += "  " + detail::describe_held(a.held(i)) + "\n";
  });
  return out;
}

}  // namespace faultline::locking
