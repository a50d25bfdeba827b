// `faultline shrink [options] <replay line>`: from a failing run to the smallest run
// that fails the same way, and the one scheduling decision that makes it
// fail.
//
//  1. The configuration.  Processes, workers, operations, children, pages,
//     the daemons, single threads (--only-workers) and the operation mix
//     are cut one at a time (the smallest value first, then halves), each
//     candidate kept if some seed (the current one first, then a few more
//     schedule seeds, half of them with the same workload) still fails the
//     same way: the same oracle, and the same first failure line once
//     numbers and addresses are blanked.  Repeated until a pass changes
//     nothing.  A failure under OS
//     threads is first looked for under deterministic fibers (same
//     configuration, a few seeds); without one, only this step is done, each
//     candidate tried a few times.
//  2. The schedule (deterministic fibers).  The run's choices are recorded
//     as a script (sched/policy.h: the choices that differ from the default
//     "run on; else the lowest id"), and delta debugging (Zeller and
//     Hildebrandt's ddmin, TSE 2002) removes entries while the run still
//     fails the same way, down to a 1-minimal script: every entry left is a
//     preemption (or hand-off) the failure needs.  Entries name their place
//     by worker name and schedule point (p2.t1@17), so they keep their
//     meaning when others go, and threads can then be left out with the
//     schedule held, one deterministic run each.
//  3. The decisive decision (after Kairux, SOSP 2019: the latest point where
//     a passing run could still branch off): the latest entry of the
//     minimal script whose flip (the default choice there) makes the run
//     pass.  It is explained from a run stopped at it (--explain-decision):
//     both workers' code sites and the locks each held.
//
// Every run is a child process (a failing run may panic, deadlock or hang),
// bounded in time.  Prints the replay lines before and after, and the
// decision report.
#pragma once

#include <string>
#include <vector>

namespace faultline::stress {

struct ShrinkOptions {
  std::vector<std::string> line;  // the replay line's words ("faultline" first or not)
  double budget_s = 300;          // for the whole shrink; the best so far is printed when it runs out
  int seeds = 8;                  // seeds tried per candidate configuration (the current one first)
  int jobs = 0;                   // runs at a time (0: the machine's cores)
  std::string json_path;          // --json: before, after, the decision
  bool schedule_only = false;     // --schedule-only: steps 2 and 3 on the line's configuration
  std::string self_exe = "/proc/self/exe";
};

// Exit 0 when a shrunk line (and, under fibers, a decisive decision) was
// found; 1 if the line fails but could not be shrunk to a deterministic
// replay; 2 if the line is not a run's options, or does not fail.
int shrink_command(const ShrinkOptions& o);

}  // namespace faultline::stress
