// --trace FILE: a Chrome trace-event JSON of a run (opens in Perfetto or
// chrome://tracing).  One track per worker (actor); slices:
//   fault      each vm_fault a user access took (args: address, write, result)
//   <lock>     named by the lock's class, from "about to acquire" to
//              "released": waiting plus holding (a failed trylock: no slice)
//   sleep      from going to sleep on a channel to the actor's next event
//   io         a pager's simulated I/O, its latency long
// and flow arrows ("wakeup"): from a wakeup(9) of a channel (a busy page,
// VM_WAIT's free count, a map in transition, ...) on the waker's track to
// the end of each sleep on that channel it ended, on the woken's track.
// The waker of a sleep is the first actor that woke its channel after the
// sleep began (wakeup_one's passed-over sleepers are counted woken too; a
// sleep that timed out with no wakeup has no arrow).
// Times are wall-clock microseconds since the run began, in every executor
// (deterministic fibers too: their virtual time is not what the trace shows).
// Recording stops after a bound of events (--trace-events), noted in the
// file, so that a long run does not fill memory.
#pragma once

#include <cstdint>
#include <string>

#include "locking/hooks.h"

namespace faultline::stress {

class ChromeTrace {
 public:
  // Checks that `path` can be written (truncates it) and makes this the
  // trace that records, until destroyed.  *error says why not.
  static ChromeTrace* open(const std::string& path, std::uint64_t max_events, std::string* error);
  ~ChromeTrace();
  ChromeTrace(const ChromeTrace&) = delete;
  ChromeTrace& operator=(const ChromeTrace&) = delete;

  // The trace recording now, or nullptr.
  static ChromeTrace* current() noexcept;

  // A user access's fault, timed by the caller (steady-clock ns).
  void fault(std::uint64_t start_ns, std::uint64_t end_ns, std::uint64_t va, bool write, const char* result);
  // Writes the file; false with *error if that failed.
  bool write(std::string* error);
  std::uint64_t events() const;
  std::uint64_t dropped() const;

  static std::uint64_t now_ns() noexcept;

 private:
  struct Impl;
  explicit ChromeTrace(Impl* impl);
  friend void trace_point(const locking::PointInfo& info);
  Impl* impl_;
};

// Executors install their schedule-point hooks through these: while a trace
// records, it sees each point first, then the executor's hook runs.
void install_point_hook(locking::PointHook hook, void* context);
void remove_point_hook();

}  // namespace faultline::stress
