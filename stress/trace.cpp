#include "stress/trace.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "locking/actor.h"
#include "locking/lock_base.h"

namespace faultline::stress {

namespace {

enum class Kind : std::uint8_t { kFault, kLock, kSleep, kIo };

struct Event {
  std::uint64_t actor;
  std::uint64_t start_ns;
  std::uint64_t end_ns;
  const std::string* name;  // interned
  Kind kind;
  bool write = false;
  std::uint64_t va = 0;
  const char* result = nullptr;  // kern_name: static strings
};

struct PendingLock {
  const void* lock;
  const std::string* name;
  std::uint64_t since_ns;
};

struct ActorState {
  std::string name;
  std::vector<PendingLock> locks;  // acquiring or held, innermost last
  bool sleeping = false;
  std::uint64_t sleep_since_ns = 0;
  const void* sleep_chan = nullptr;
  bool woken = false;  // a wakeup of sleep_chan came since the sleep began
  std::uint64_t woken_by = 0;
  std::uint64_t woken_ns = 0;
};

// A flow arrow: from the waker at its wakeup to the woken at its sleep's end.
struct Flow {
  std::uint64_t from;
  std::uint64_t from_ns;
  std::uint64_t to;
  std::uint64_t to_ns;
};

std::atomic<ChromeTrace*> g_trace{nullptr};
std::atomic<locking::PointHook> g_inner_hook{nullptr};
std::atomic<void*> g_inner_context{nullptr};

void chained_hook(const locking::PointInfo& info, void* /*context*/);

}  // namespace

struct ChromeTrace::Impl {
  std::string path;
  std::FILE* file = nullptr;
  std::uint64_t max_events = 0;
  std::uint64_t t0_ns = 0;
  std::mutex mtx;
  std::vector<Event> events;
  std::unordered_map<std::uint64_t, ActorState> actors;
  std::unordered_set<std::string> names;
  std::uint64_t dropped = 0;
  std::unordered_map<const void*, std::vector<std::uint64_t>> sleepers;  // by channel: actors that slept on it
  std::vector<Flow> flows;                          // at most max_events
  const std::string* fault_name = nullptr;
  const std::string* sleep_name = nullptr;
  const std::string* io_name = nullptr;

  const std::string* intern(const char* s) { return &*names.emplace(s != nullptr ? s : "?").first; }

  // Under mtx.
  ActorState& state(const locking::Actor& a) {
    ActorState& s = actors[a.id()];
    if (s.name.empty()) s.name = a.name().empty() ? fmt::format("actor {}", a.id()) : a.name();
    return s;
  }
  void add(const Event& e) {
    if (events.size() >= max_events) {
      ++dropped;
      return;
    }
    events.push_back(e);
  }
  // The actor's first event after a sleep ends the sleep.  The sleep's
  // waker is the first actor that woke its channel after it went to sleep
  // (none: it timed out); an arrow goes from that wakeup to here.
  void end_sleep(std::uint64_t actor, ActorState& s, std::uint64_t now) {
    if (!s.sleeping) return;
    s.sleeping = false;
    const std::size_t before = events.size();
    add(Event{actor, s.sleep_since_ns, now, sleep_name, Kind::kSleep});
    // No arrow to a sleep the bound left out (it would land on nothing).
    if (!s.woken || s.woken_by == actor || events.size() == before) return;
    if (flows.size() >= max_events) {
      ++dropped;
      return;
    }
    flows.push_back(Flow{s.woken_by, s.woken_ns, actor, now});
  }
  // A wakeup of `chan` by `waker`: the first for each actor asleep on it.
  void wake(const void* chan, std::uint64_t waker, std::uint64_t now) {
    auto it = sleepers.find(chan);
    if (it == sleepers.end()) return;
    for (std::uint64_t id : it->second) {
      ActorState& t = actors[id];
      if (t.sleeping && t.sleep_chan == chan && !t.woken) {
        t.woken = true;
        t.woken_by = waker;
        t.woken_ns = now;
      }
    }
    sleepers.erase(it);
  }
};

ChromeTrace::ChromeTrace(Impl* impl) : impl_(impl) {}

ChromeTrace* ChromeTrace::open(const std::string& path, std::uint64_t max_events, std::string* error) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    *error = fmt::format("--trace '{}': cannot write it: {}", path, std::strerror(errno));
    return nullptr;
  }
  auto* impl = new Impl;
  impl->path = path;
  impl->file = f;
  impl->max_events = max_events;
  impl->t0_ns = now_ns();
  impl->events.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(max_events, 1u << 20)));
  impl->fault_name = impl->intern("fault");
  impl->sleep_name = impl->intern("sleep");
  impl->io_name = impl->intern("io");
  auto* t = new ChromeTrace(impl);
  g_trace.store(t);
  return t;
}

ChromeTrace::~ChromeTrace() {
  ChromeTrace* self = this;
  g_trace.compare_exchange_strong(self, nullptr);
  if (impl_->file != nullptr) std::fclose(impl_->file);
  delete impl_;
}

ChromeTrace* ChromeTrace::current() noexcept { return g_trace.load(std::memory_order_acquire); }

std::uint64_t ChromeTrace::now_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

void ChromeTrace::fault(std::uint64_t start_ns, std::uint64_t end_ns, std::uint64_t va, bool write,
                        const char* result) {
  const locking::Actor& a = locking::current_actor();
  std::lock_guard<std::mutex> l(impl_->mtx);
  ActorState& s = impl_->state(a);
  impl_->end_sleep(a.id(), s, start_ns);
  Event e{a.id(), start_ns, end_ns, impl_->fault_name, Kind::kFault};
  e.write = write;
  e.va = va;
  e.result = result;
  impl_->add(e);
}

std::uint64_t ChromeTrace::events() const {
  std::lock_guard<std::mutex> l(impl_->mtx);
  return impl_->events.size();
}

std::uint64_t ChromeTrace::dropped() const {
  std::lock_guard<std::mutex> l(impl_->mtx);
  return impl_->dropped;
}

void trace_point(const locking::PointInfo& info) {
  ChromeTrace* t = g_trace.load(std::memory_order_acquire);
  if (t == nullptr) return;
  ChromeTrace::Impl& im = *t->impl_;
  const locking::Actor& a = locking::current_actor();
  std::lock_guard<std::mutex> l(im.mtx);
  // Read under the mutex, so that times follow the order events are
  // recorded in (a wakeup recorded before a sleep's end is earlier).
  const std::uint64_t now = ChromeTrace::now_ns();
  ActorState& s = im.state(a);
  im.end_sleep(a.id(), s, now);
  auto drop_pending = [&](const void* lock) {
    auto it = std::find_if(s.locks.rbegin(), s.locks.rend(), [&](const PendingLock& p) { return p.lock == lock; });
    if (it == s.locks.rend()) return false;
    s.locks.erase(std::next(it).base());
    return true;
  };
  switch (info.point) {
    case locking::Point::kLock:
    case locking::Point::kTryLock: {
      // The object of a lock point is the lock (locking/hooks.h); slices are
      // named by its class.  A pending entry for the same lock is a trylock
      // that failed: replace it.
      drop_pending(info.object);
      const auto* lock = static_cast<const locking::LockBase*>(info.object);
      s.locks.push_back(PendingLock{info.object, im.intern(lock->lock_class().name()), now});
      break;
    }
    case locking::Point::kUnlock: {
      auto it = std::find_if(s.locks.rbegin(), s.locks.rend(),
                             [&](const PendingLock& p) { return p.lock == info.object; });
      if (it == s.locks.rend()) break;  // taken before the trace began
      im.add(Event{a.id(), it->since_ns, now, it->name, Kind::kLock});
      s.locks.erase(std::next(it).base());
      break;
    }
    case locking::Point::kSleep:
      s.sleeping = true;
      s.sleep_since_ns = now;
      s.sleep_chan = info.object;
      s.woken = false;
      im.sleepers[info.object].push_back(a.id());
      break;
    case locking::Point::kWakeup:
      im.wake(info.object, a.id(), now);
      break;
    case locking::Point::kIo:
      im.add(Event{a.id(), now, now + std::uint64_t{info.arg} * 1000, im.io_name, Kind::kIo});
      break;
    default:
      break;
  }
}

bool ChromeTrace::write(std::string* error) {
  std::lock_guard<std::mutex> l(impl_->mtx);
  std::FILE* f = impl_->file;
  const std::uint64_t t0 = impl_->t0_ns;
  auto us = [&](std::uint64_t ns) { return fmt::format("{:.3f}", static_cast<double>(ns - std::min(ns, t0)) / 1000.0); };
  auto str = [](const std::string& s) { return nlohmann::json(s).dump(); };
  std::string out;
  out.reserve(1 << 20);
  auto flush = [&] {
    if (!out.empty() && std::fwrite(out.data(), 1, out.size(), f) != out.size()) return false;
    out.clear();
    return true;
  };
  bool ok = true;
  out += "{\"displayTimeUnit\":\"ns\",\"otherData\":";
  out += nlohmann::json({{"producer", "faultline"},
                         {"events", impl_->events.size()},
                         {"wakeup_arrows", impl_->flows.size()},
                         {"dropped_at_bound", impl_->dropped}})
             .dump();
  out += ",\"traceEvents\":[\n";
  out += R"({"ph":"M","pid":1,"tid":0,"name":"process_name","args":{"name":"faultline"}})";
  std::vector<std::uint64_t> ids;
  for (const auto& [id, s] : impl_->actors) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (std::uint64_t id : ids) {
    out += fmt::format(",\n{{\"ph\":\"M\",\"pid\":1,\"tid\":{},\"name\":\"thread_name\",\"args\":{{\"name\":{}}}}}", id,
                       str(impl_->actors[id].name));
    out += fmt::format(",\n{{\"ph\":\"M\",\"pid\":1,\"tid\":{},\"name\":\"thread_sort_index\",\"args\":{{\"sort_index\":{}}}}}",
                       id, id);
  }
  static constexpr const char* kCat[] = {"fault", "lock", "sleep", "io"};
  for (const Event& e : impl_->events) {
    out += fmt::format(",\n{{\"ph\":\"X\",\"pid\":1,\"tid\":{},\"ts\":{},\"dur\":{},\"name\":{},\"cat\":\"{}\"", e.actor,
                       us(e.start_ns), fmt::format("{:.3f}", static_cast<double>(e.end_ns - std::min(e.end_ns, e.start_ns)) / 1000.0),
                       str(*e.name), kCat[static_cast<int>(e.kind)]);
    if (e.kind == Kind::kFault)
      out += fmt::format(",\"args\":{{\"va\":\"{:#x}\",\"write\":{},\"result\":\"{}\"}}", e.va, e.write, e.result);
    out += '}';
    if (out.size() > (1 << 20) && !flush()) {
      ok = false;
      break;
    }
  }
  // Flow arrows, waker to woken: the start binds to the waker's slice
  // enclosing its wakeup (a lock hold, a fault), the end to the woken's sleep
  // slice (a nanosecond before it ends, so that it encloses it).
  for (std::size_t i = 0; ok && i < impl_->flows.size(); ++i) {
    const Flow& fl = impl_->flows[i];
    out += fmt::format(
        ",\n{{\"ph\":\"s\",\"id\":{},\"pid\":1,\"tid\":{},\"ts\":{},\"name\":\"wakeup\",\"cat\":\"wakeup\"}}"
        ",\n{{\"ph\":\"f\",\"bp\":\"e\",\"id\":{},\"pid\":1,\"tid\":{},\"ts\":{},\"name\":\"wakeup\",\"cat\":\"wakeup\"}}",
        i + 1, fl.from, us(fl.from_ns), i + 1, fl.to, us(fl.to_ns - (fl.to_ns > fl.from_ns ? 1 : 0)));
    if (out.size() > (1 << 20) && !flush()) ok = false;
  }
  out += "\n]}\n";
  ok = ok && flush() && std::fflush(f) == 0;
  if (!ok) *error = fmt::format("--trace '{}': writing failed: {}", impl_->path, std::strerror(errno));
  return ok;
}

namespace {

void chained_hook(const locking::PointInfo& info, void* /*context*/) {
  trace_point(info);
  if (locking::PointHook h = g_inner_hook.load(std::memory_order_acquire))
    h(info, g_inner_context.load(std::memory_order_relaxed));
}

}  // namespace

void install_point_hook(locking::PointHook hook, void* context) {
  if (ChromeTrace::current() == nullptr) {
    locking::set_point_hook(hook, context);
    return;
  }
  g_inner_context.store(context, std::memory_order_relaxed);
  g_inner_hook.store(hook, std::memory_order_release);
  locking::set_point_hook(&chained_hook, nullptr);
}

void remove_point_hook() {
  locking::set_point_hook(nullptr, nullptr);
  g_inner_hook.store(nullptr, std::memory_order_release);
  g_inner_context.store(nullptr, std::memory_order_relaxed);
}

}  // namespace faultline::stress
