// A scheduling policy of the deterministic scheduler (sched/det_sched.h):
// the runnable set in, an index out, as folly's DeterministicSchedule
// (a function of the number of runnable threads) and Shuttle's Scheduler
// (next_task over the runnable tasks) have it.  Each policy lives in its own
// file of this folder; DetScheduler knows only this interface.
//
// The scheduler asks choose() only when there is a choice (two or more
// runnable workers): a policy that draws randomness draws it there and
// nowhere else, so a run is a function of (binary, workers, seed).
//
//   random.cpp  uniform among the runnable workers
//   pct.cpp     PCT (Burckhardt et al., ASPLOS 2010), with a starvation guard
//   pos.cpp     POS, partial-order sampling (Yuan, Yang, Gu, CAV 2018)
//   script.cpp  a schedule written down: the choices that differ from the
//               default one, each by where it is made (ChoiceKey; what
//               `faultline shrink` minimises); everything else the default
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "locking/hooks.h"

namespace faultline::stress {

// Where a choice is made, named by the worker's own progress so that the
// name keeps its meaning when choices elsewhere in the schedule change (a
// decision number does not: one choice less and every later number means
// another place): `by` is the worker that ran last (-1 before any ran),
// `point` how many schedule points it had reached, and `after` 0 for the
// choice at that point, n >= 1 for the n-th choice made after it without a
// new point (it blocked, slept or ended, and the next one is chosen).
struct ChoiceKey {
  int by = -1;
  std::uint64_t point = 0;
  std::uint32_t after = 0;
  auto operator<=>(const ChoiceKey&) const = default;
};

// A ChoiceKey as written down, with the worker by name (names do not
// change when other workers are left out of a run; ids do).  Text:
// "NAME@POINT" or "NAME@POINT.AFTER"; NAME "-" before any worker ran.
struct Place {
  std::string by = "-";
  std::uint64_t point = 0;
  std::uint32_t after = 0;
  auto operator<=>(const Place&) const = default;
};
std::string format_place(const Place& p);
// A message naming the bad text, or nothing.
std::optional<std::string> parse_place(std::string_view text, Place& out);

// One choice the scheduler asks a policy for.
struct Choice {
  // Ready workers by id, in the scheduler's order (a function of the
  // schedule so far).  When `current` >= 0 it is the last entry: the worker
  // that reached a schedule point and may run on; choosing it is no switch.
  // Otherwise the worker that ran blocked, slept or ended.
  std::span<const int> runnable;
  // slot[id] is worker id's index in `runnable`, for the ids in it (a policy
  // that keeps its own order of the ready workers answers in O(1)).
  std::span<const std::uint32_t> slot;
  int current = -1;
  std::uint64_t decision = 0;  // choices asked so far in this run, this one included (from 1)
  std::uint64_t step = 0;      // schedule points passed so far
  ChoiceKey key;               // where it is made (unique in a run)
};

class SchedPolicy {
 public:
  virtual ~SchedPolicy() = default;
  // Worker `id` was added (ids 0, 1, 2, ... in spawn order), named `name`.
  virtual void spawned(int /*id*/, std::string_view /*name*/) {}
  // Worker `id` reached schedule point number `step` (from 1); `info` is what
  // it is about to do.
  virtual void at_point(int /*id*/, std::uint64_t /*step*/, const locking::PointInfo& /*info*/) {}
  // Worker `id` entered the ready set / left it to run.  The worker at a
  // schedule point is not in the set (it is Choice::current).
  virtual void made_ready(int /*id*/) {}
  virtual void left_ready(int /*id*/) {}
  // Worker `id` starts running: switched in, or on after a virtual sleep.
  virtual void switched_in(int /*id*/) {}
  // An index into c.runnable (which has two entries or more).
  virtual std::size_t choose(const Choice& c) = 0;
};

// The choice a schedule makes where nothing says otherwise: the current
// worker runs on; if it cannot, the runnable worker with the lowest id.  A
// Script keeps only the choices that differ from this.
std::size_t default_choice(const Choice& c) noexcept;

// A schedule written down: at the choice made at `at`, run the worker
// named `worker`.  In the order the run made them (a prefix of a script is
// the schedule up to a point).  Text form "PLACE:NAME,PLACE:NAME,..."
// (format_place's places, each once), "" for the default schedule;
// parse_script also takes "@FILE", the text in FILE.
struct ScriptEntry {
  Place at;
  std::string worker;
  bool operator==(const ScriptEntry&) const = default;
};
using Script = std::vector<ScriptEntry>;
std::string format_script(const Script& s);
// A message naming the bad part, or nothing.
std::optional<std::string> parse_script(const std::string& text, Script& out);

std::unique_ptr<SchedPolicy> make_random_policy(std::uint64_t seed);
std::unique_ptr<SchedPolicy> make_pct_policy(std::uint64_t seed, int depth, std::uint64_t expected_steps);
std::unique_ptr<SchedPolicy> make_pos_policy(std::uint64_t seed);
// A choice the script names whose worker is not runnable then falls back
// to the default (a shrunk script may name one).
std::unique_ptr<SchedPolicy> make_script_policy(Script script);

// Steps a worker may run without being switched out before PCT's starvation
// guard lowers its priority below all others (see pct.cpp).
inline constexpr std::uint64_t kPctStarvationSteps = 1000;

}  // namespace faultline::stress
