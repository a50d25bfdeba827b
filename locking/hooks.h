// Schedule points: where the harness takes control of the schedule.
//
// Every acquire (before it blocks), try-lock, release, sleep and wakeup calls
// the installed hook.  A deterministic fiber scheduler switches fibers there;
// an OS-thread run may inject a seeded yield or delay there; the VM core also
// calls schedule_point(kIo, ..., latency) where a pager's I/O takes time.
// With no hook installed a schedule point is one relaxed load and a
// predictable branch.
#pragma once

#include <atomic>
#include <cstdint>
#include <source_location>

namespace faultline::locking {

enum class Point : std::uint8_t {
  kLock,     // about to acquire (may block)
  kTryLock,  // about to try
  kUnlock,   // just released
  kSleep,    // about to sleep on a channel
  kWakeup,   // about to wake a channel's sleepers
  kIo,       // simulated I/O of `arg` microseconds
  kPause,    // pause(9): a timed sleep of `arg` microseconds on no channel
  kUser,     // any other place the caller wants a switch
};
const char* point_name(Point p) noexcept;

struct PointInfo {
  Point point;
  const void* object;  // the lock (a LockBase: kLock, kTryLock, kUnlock), channel or page concerned
  std::uint32_t arg;   // kIo, kPause: microseconds; otherwise 0
  // The code site of the point (for the lock library's points, its
  // caller's), or nullptr.  Valid during the hook only.
  const std::source_location* site = nullptr;
};

using PointHook = void (*)(const PointInfo& info, void* context);

// Installs a hook for the whole process (nullptr removes it).  Install before
// workers start and remove after they finish.
void set_point_hook(PointHook hook, void* context) noexcept;

namespace detail {
extern std::atomic<PointHook> g_point_hook;
extern std::atomic<void*> g_point_context;
}  // namespace detail

// `site`: where the point is in the caller's code (the lock library passes
// its own caller's).
inline void schedule_point(Point p, const void* object, std::uint32_t arg = 0,
                           std::source_location site = std::source_location::current()) {
  PointHook h = detail::g_point_hook.load(std::memory_order_acquire);
  if (h != nullptr) [[unlikely]]
    h(PointInfo{p, object, arg, &site}, detail::g_point_context.load(std::memory_order_relaxed));
}

}  // namespace faultline::locking
