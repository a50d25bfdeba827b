// Executors: what runs the simulated threads.
//
//   threads    one OS thread each; seeded perturbation (yields, short delays)
//              at schedule points widens the windows real threads race in
//   fibers     deterministic: one OS thread, DetScheduler picks every switch
//   fibers-mt  Boost.Fiber fibers over K OS threads that steal work from each
//              other (StealPool, steal_pool.h, our own algorithm: Boost's
//              work_stealing is once per process and spins on one thread); a carrier yields
//              its fiber every 64th schedule point (and at seeded ones), as
//              preemption would, and simulated I/O sleeps the fiber
//
// Bodies may spawn more bodies (a fork starts the child's threads).  run()
// returns once every body has returned, or when the schedule cannot go on.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "stress/config.h"

namespace faultline::stress {

enum class RunEnd : std::uint8_t { kDone, kDeadlock, kStepLimit, kStall };

class Executor {
 public:
  virtual ~Executor() = default;
  // Starts `body` as a simulated thread named `name`.  False, with a message
  // in *error, if it could not be created (e.g. the OS refused a thread).
  virtual bool spawn(std::string name, std::function<void()> body, std::string* error) = 0;
  virtual RunEnd run() = 0;
  // Waits `us` microseconds: virtual time for deterministic fibers, real
  // time otherwise.  Callable from a body.
  virtual void pause_us(std::uint32_t us) = 0;
  // Deterministic fibers only.
  // The count of completed operations, for a deterministic executor's
  // liveness check in schedule steps (Config::stall_steps).  Set before run().
  virtual void watch_progress(const std::atomic<std::uint64_t>*) {}
  virtual std::uint64_t steps() const { return 0; }
  virtual std::uint64_t digest() const { return 0; }
  virtual std::vector<std::string> unfinished() const { return {}; }
  virtual std::vector<std::string> last_events(std::size_t) const { return {}; }
};

std::unique_ptr<Executor> make_executor(const Config& cfg);

}  // namespace faultline::stress
