// The deterministic fiber scheduler: every switch between workers is decided
// by a seeded policy, so a run is a function of (binary, workers, seed).
//
// Workers are Boost.Fiber fibers on one OS thread that run() creates.  A
// custom scheduling algorithm is installed on that thread, and a locking/
// point hook (hooks.h) is installed for the run: at every schedule point the
// running worker counts a step and the policy decides who runs next.  Workers
// block on locking/'s fiber backend (Mutex, SxLock, msleep), which suspends
// the fiber; the algorithm then picks the next one by the same policy.
//
//   DetOptions o;
//   o.seed = 42;
//   o.policy = Policy::kPct;
//   locking::set_backend(locking::Backend::kFiber);   // before any lock exists
//   DetScheduler s(o);
//   s.spawn("pager", [&] { ... });
//   s.spawn("faulter", [&] { ... });
//   switch (s.run()) { ... }          // prints s.digest() for a replay
//
// Determinism.  Nothing the scheduler decides reads the wall clock, a thread
// id, or an address: the ready set is ordered only by the order of events (a
// worker becoming ready), choices come from generators seeded from
// DetOptions::seed, and time is virtual.  Same binary, same workers, same
// seed => the same schedule step for step, the same digest().  Worker bodies
// must keep their side of it: draw randomness from seeded generators, and do
// not use real timed waits (msleep with a timeout, this_fiber::sleep_for):
// Boost.Fiber keeps those on its own real-time sleep queue, invisible to the
// policy, and a worker in one counts as blocked (so an otherwise idle run ends
// in kDeadlock).  Wait in virtual time with schedule_point(kIo, obj, us).
//
// Policies (each in its own file behind sched/policy.h: the runnable set
// in, an index out; the scheduler asks only when two or more can run).
//   kRandom  uniformly among the runnable workers (random.cpp).
//   kPct     probabilistic concurrency testing, Burckhardt et al. ASPLOS
//            2010, with a starvation guard (pct.cpp).
//   kPos     partial order sampling, Yuan, Yang, Gu CAV 2018 (pos.cpp).
//   kScript  a written-down schedule: the choices that differ from the
//            default (run on; else the lowest id), each by where it is
//            made (ChoiceKey: the worker that ran last and how many
//            schedule points it had reached; script.cpp); what
//            `faultline shrink` minimises.
//
// Virtual time.  It advances by step_ns at each step.  A worker at
// schedule_point(kIo, obj, us) leaves the ready set until virtual time reaches
// now + us; when no worker is ready, time jumps to the earliest such sleeper.
//
// Outcomes.  kDone: every worker returned.  kDeadlock: no worker is ready, no
// worker sleeps in virtual time, yet some have not returned: every one of them
// is blocked.  kStepLimit: DetOptions::max_steps steps passed.  kStall: no
// progress for DetOptions::stall_steps steps (a livelock).  After
// kDeadlock and kStepLimit the blocked fibers cannot be unwound (Boost.Fiber
// cannot destroy a suspended fiber, and their locks are held by them), so
// run()'s OS thread is left parked forever: detached, blocked on a condition
// that never comes, holding the fibers' stacks and this scheduler's state,
// which ~DetScheduler therefore leaks on purpose.  Their actors stay in
// locking/'s registry, so dump_all_locks() shows who sleeps where and who
// holds what (sx holds always; mutexes by name with the checker on, by
// number with it off).
// Callers report (unfinished_workers(), last_events(), the dump) and exit;
// process exit with a parked run neither crashes nor hangs.  Locks the parked
// workers hold must not be destroyed before exit (destroying a held lock is
// misuse: reported, or fatal with the checker off).
//
// Rules.  run() is called once per scheduler, and throws std::logic_error if
// the locking backend is not kFiber (a thread lock would block the run's only
// thread).  Runs may proceed at once on different threads (a TBB seed sweep):
// each has its own OS thread, and the process-wide point hook finds the run
// by thread.  While any run is active that hook is the scheduler's (a hook
// installed before is replaced, and none is left when the last run ends).
//
// Stacks.  They are carved out of large mappings (one mmap per stack would
// exceed vm.max_map_count near 65,530 fibers), so they have no guard pages:
// when a fiber ends, the lowest page of its stack must never have been
// touched, else the process aborts with a message naming stack_bytes (after
// the fact: an overflow may already have corrupted the neighbouring stack).
// A fiber costs the pages its stack touched, two (8 KiB) for a shallow one.
// Mappings of finished runs are kept (up to 1 GiB of them) for the next run,
// which then does not fault its stacks in again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "locking/hooks.h"
#include "stress/sched/policy.h"

namespace faultline::stress {

namespace detail {
struct DetCore;  // det_sched.cpp
}  // namespace detail

enum class Policy : std::uint8_t { kRandom, kPct, kPos, kScript };

struct DetOptions {
  std::uint64_t seed = 1;
  Policy policy = Policy::kRandom;
  int pct_depth = 3;                          // d: d-1 priority change points
  std::uint64_t pct_expected_steps = 100000;  // k: change points drawn uniformly in [1, k]
  Script script;                              // kScript: the choices that differ from the default
  // Called at every choice with what the policy chose (an index into
  // c.runnable), on the run's thread: a recorder of the schedule, or an
  // explanation of one decision (describe_worker() may be called from it).
  std::function<void(const Choice& c, std::size_t chosen)> on_choice;
  std::size_t stack_bytes = 64 * 1024;        // per fiber, rounded up to pages
  std::uint64_t max_steps = 0;                // 0 = unbounded; else run() ends with kStepLimit
  std::uint32_t step_ns = 1000;               // virtual time that passes per schedule point
  // Liveness counted in steps: if `progress` (a count of completed work,
  // read every 1,024 steps) has not moved for stall_steps steps, run() ends
  // with kStall: workers keep reaching schedule points (spinning, retrying,
  // a daemon scanning) but none gets anything done.  0: not checked.
  std::function<std::uint64_t()> progress;
  std::uint64_t stall_steps = 0;
};

enum class DetOutcome : std::uint8_t { kDone, kDeadlock, kStepLimit, kStall };

// "done", "deadlock", "step-limit", "stall".
const char* det_outcome_name(DetOutcome o) noexcept;

// One schedule point passed: `worker` reached `point` as step `step` (from 1),
// at virtual time `vtime_ns` (after the step's increment).
struct SchedEvent {
  std::uint64_t step;
  int worker;
  locking::Point point;
  std::uint64_t vtime_ns;
};

class DetScheduler {
 public:
  // Steps a worker may run without being switched out before the PCT
  // starvation guard lowers its priority below all others.
  static constexpr std::uint64_t kStarvationSteps = kPctStarvationSteps;
  // How many of the last events last_events() can return.
  static constexpr std::size_t kEventCapacity = 4096;

  // Throws std::invalid_argument for pct_depth < 1, pct_expected_steps == 0
  // with pct_depth > 1, or stack_bytes under 16 KiB.
  explicit DetScheduler(const DetOptions& options);
  // Leaks the run's state if run() left parked fibers (see above).
  ~DetScheduler();
  DetScheduler(const DetScheduler&) = delete;
  DetScheduler& operator=(const DetScheduler&) = delete;

  // Adds a worker; ids are 0, 1, 2, ... in spawn order.  Callable before
  // run(), or during it from inside a running worker (the new fiber starts
  // ready, at the end of the ready set's event order).  The body runs inside a
  // locking::ActorScope named `name`.  A body that throws aborts the process
  // with the worker's name.
  int spawn(std::string name, std::function<void()> body);

  // Runs every worker on a dedicated OS thread it creates (Boost.Fiber's
  // algorithm is per thread, so several runs can happen in one process, one
  // after another or at once), and blocks the caller until the outcome is
  // known.
  DetOutcome run();

  // Read after run() returns, or from inside a worker.
  std::uint64_t steps() const;  // schedule points passed
  // Times a different worker started running (the first start included).
  std::uint64_t switches() const;
  // Hash of the whole schedule: the (worker, point) of every step and the
  // worker switched to at every switch, including switches where a worker
  // blocked without reaching a schedule point.
  std::uint64_t digest() const;
  std::uint64_t virtual_now_ns() const;
  // Names of the workers that did not return, in id order.
  std::vector<std::string> unfinished_workers() const;
  // The last min(n, steps(), kEventCapacity) events, oldest first.
  std::vector<SchedEvent> last_events(std::size_t n) const;
  // Choices the policy was asked for (Choice::decision of the last).
  std::uint64_t decisions() const;
  // Worker `id`: its name, the schedule point it reached last (what it is
  // about to do, or blocked in) with its code site, and the locks it holds
  // (the lock checker's held stack).  From inside the run (on_choice) or
  // after it.
  std::string describe_worker(int id) const;
  // Worker `id`'s name ("" for no such worker).
  std::string worker_name(int id) const;

  // The id of the worker running on this OS thread, -1 outside a worker.
  static int current_worker() noexcept;

 private:
  detail::DetCore* core_;  // owned; deliberately leaked when run() parks its thread
};

}  // namespace faultline::stress
