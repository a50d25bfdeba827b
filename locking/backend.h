// Backends: which raw primitives the locks of a run are built on.
//
// A backend is chosen once per run, before any lock exists, and every lock
// records it at construction.  All backends give the same semantics; they
// differ in cost and in what may block:
//
//   std          std::mutex / std::condition_variable (glibc, futex based)
//   futex        a three-state futex mutex and a sequence futex condition,
//                written here to show the raw cost of a futex lock
//   tbb-spin     oneTBB tbb::spin_mutex for plain mutexes (sleeps and sx
//                locks use the std primitives: TBB has no condition variable)
//   tbb-queuing  oneTBB tbb::queuing_mutex for plain mutexes (FIFO handoff)
//   fiber        Boost.Fiber mutex / condition_variable: blocking suspends the
//                fiber, not the OS thread, so the same code runs in fibers
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace faultline::locking {

enum class Backend : std::uint8_t { kStd, kFutex, kTbbSpin, kTbbQueuing, kFiber };

inline constexpr Backend kAllBackends[] = {Backend::kStd, Backend::kFutex, Backend::kTbbSpin,
                                           Backend::kTbbQueuing, Backend::kFiber};

// "std", "futex", "tbb-spin", "tbb-queuing", "fiber".
const char* backend_name(Backend b) noexcept;
std::optional<Backend> parse_backend(std::string_view name) noexcept;

// The backend new locks are built on.  Changing it while any lock built on
// another backend is alive throws std::logic_error naming both backends: a
// run must not mix fiber locks with thread locks.
void set_backend(Backend b);
Backend current_backend() noexcept;

// True when the backend blocks fibers rather than OS threads.
inline bool is_fiber(Backend b) noexcept { return b == Backend::kFiber; }

}  // namespace faultline::locking
