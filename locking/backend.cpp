// Backend selection, lock classes, the lock base and the schedule-point hook.
#include "locking/backend.h"

#include <cstdio>
#include <cstring>
#include <vector>
#include <mutex>
#include <stdexcept>
#include <string>

#include "locking/actor.h"
#include "locking/detail/check.h"
#include "locking/hooks.h"
#include "locking/lock_base.h"
#include "locking/lock_class.h"

namespace faultline::locking {
namespace {

std::atomic<Backend> g_backend{Backend::kStd};
std::atomic<long> g_live_locks[5]{};

constinit std::atomic<LockClass*> g_classes[kMaxLockClasses]{};
// Live locks per class id, outside the class (a lock may outlive its class).
constinit std::atomic<long> g_live_by_id[kMaxLockClasses]{};
std::atomic<int> g_class_count{0};  // high-water mark of ids handed out

// Ids of dead classes, for reuse; and the number of live classes.  A raw
// std::mutex: the checker does not check itself.
struct ClassIds {
  std::mutex mu;
  std::vector<int> free;
  int live = 0;
};
ClassIds& class_ids() {
  static ClassIds* c = new ClassIds;  // never destroyed: classes die during exit
  return *c;
}

}  // namespace

namespace detail {
std::atomic<PointHook> g_point_hook{nullptr};
std::atomic<void*> g_point_context{nullptr};
}  // namespace detail

const char* backend_name(Backend b) noexcept {
  switch (b) {
    case Backend::kStd: return "std";
    case Backend::kFutex: return "futex";
    case Backend::kTbbSpin: return "tbb-spin";
    case Backend::kTbbQueuing: return "tbb-queuing";
    case Backend::kFiber: return "fiber";
  }
  return "?";
}

std::optional<Backend> parse_backend(std::string_view name) noexcept {
  for (Backend b : kAllBackends)
    if (name == backend_name(b)) return b;
  return std::nullopt;
}

void set_backend(Backend b) {
  Backend cur = g_backend.load();
  if (cur == b) return;
  for (Backend other : kAllBackends) {
    long n = g_live_locks[static_cast<int>(other)].load();
    if (other != b && n != 0)
      throw std::logic_error(std::string("locking::set_backend(") + backend_name(b) + "): " +
                             std::to_string(n) + " lock(s) built on backend " +
                             backend_name(other) + " are still alive");
  }
  g_backend.store(b);
  detail::g_fiber_actors.store(is_fiber(b));
}

Backend current_backend() noexcept { return g_backend.load(std::memory_order_relaxed); }

LockBase::LockBase(LockClass& cls, const char* name, bool sx)
    : cls_(&cls), name_(name), backend_(current_backend()), sx_(sx), class_id_(cls.id()) {
  g_live_locks[static_cast<int>(backend_)].fetch_add(1, std::memory_order_relaxed);
  if (class_id_ >= 0) g_live_by_id[class_id_].fetch_add(1, std::memory_order_relaxed);
}

LockBase::~LockBase() {
  g_live_locks[static_cast<int>(backend_)].fetch_sub(1, std::memory_order_relaxed);
  if (class_id_ >= 0) g_live_by_id[class_id_].fetch_sub(1, std::memory_order_relaxed);
}

long LockClass::live_locks() const noexcept {
  return id_ >= 0 ? g_live_by_id[id_].load(std::memory_order_relaxed) : 0;
}

LockClass::LockClass(const char* name, LockKind kind, SameClass same_class)
    : name_(name), kind_(kind), same_class_(same_class), id_(kNoClassId) {
  std::string twin;
  {
    ClassIds& c = class_ids();
    std::lock_guard<std::mutex> g(c.mu);
    if (!c.free.empty()) {
      id_ = c.free.back();
      c.free.pop_back();
    } else if (g_class_count.load(std::memory_order_relaxed) < kMaxLockClasses) {
      id_ = g_class_count.load(std::memory_order_relaxed);
      g_class_count.store(id_ + 1, std::memory_order_release);
    }
    if (id_ != kNoClassId) {
      ++c.live;
      const int n = g_class_count.load(std::memory_order_relaxed);
      for (int i = 0; i < n && twin.empty(); ++i) {
        LockClass* o = g_classes[i].load(std::memory_order_relaxed);
        if (o != nullptr && std::strcmp(o->name(), name) == 0) twin = o->name();
      }
      g_classes[id_].store(this, std::memory_order_release);
    }
  }
  if (id_ == kNoClassId) {
    detail::checker_limit("more than " + std::to_string(kMaxLockClasses) + " live lock classes, at \"" +
                          name + "\"");
    return;
  }
  if (!twin.empty())
    detail::deliver(Report{ReportKind::kDuplicateName,
                           std::string("two live lock classes are named \"") + name +
                               "\": reports cannot tell them apart (give each class its own name)",
                           name, name, "", ""},
                    detail::Severity::kWarning);
}

LockClass::~LockClass() {
  if (id_ == kNoClassId) return;
  const long live = live_locks();
  ClassIds& c = class_ids();
  {
    std::lock_guard<std::mutex> g(c.mu);
    g_classes[id_].store(nullptr, std::memory_order_release);
    --c.live;
  }
  if (live != 0) [[unlikely]] {
    // Its locks still name it: keep the id out of use for good.
    detail::deliver(Report{ReportKind::kClassInUse,
                           std::string("destroying lock class \"") + name_ + "\" while " +
                               std::to_string(live) + " lock(s) of it are alive (its id is retired)",
                           name_, "", "", ""},
                    detail::Severity::kWarning);
    return;
  }
  detail::forget_class(id_);
  std::lock_guard<std::mutex> g(c.mu);
  c.free.push_back(id_);
}

LockClass* LockClass::by_id(int id) noexcept {
  if (id < 0 || id >= kMaxLockClasses) return nullptr;
  return g_classes[id].load(std::memory_order_acquire);
}

int LockClass::count() noexcept { return g_class_count.load(std::memory_order_acquire); }

int LockClass::live() noexcept {
  ClassIds& c = class_ids();
  std::lock_guard<std::mutex> g(c.mu);
  return c.live;
}

const char* point_name(Point p) noexcept {
  switch (p) {
    case Point::kLock: return "lock";
    case Point::kTryLock: return "trylock";
    case Point::kUnlock: return "unlock";
    case Point::kSleep: return "sleep";
    case Point::kWakeup: return "wakeup";
    case Point::kIo: return "io";
    case Point::kUser: return "user";
    case Point::kPause: return "pause";
  }
  return "?";
}

void set_point_hook(PointHook hook, void* context) noexcept {
  detail::g_point_context.store(context, std::memory_order_relaxed);
  detail::g_point_hook.store(hook, std::memory_order_release);
  if (hook != nullptr)
    detail::g_track.fetch_or(detail::kTrackHook, std::memory_order_release);
  else
    detail::g_track.fetch_and(static_cast<std::uint8_t>(~detail::kTrackHook), std::memory_order_release);
}

}  // namespace faultline::locking
