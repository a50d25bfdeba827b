// `faultline selftest`: proves the harness has teeth.  For each protocol
// mutant of the catalogue (core/vm.h, `faultline list mutants`) it runs
// seeds of the mutant's hunting line, each in its own child process, until
// an oracle fails the run or the mutant's time budget is spent; then it runs
// the failing run's printed replay line in a fresh process, which must fail
// the same way.  A control row runs the same lines with no mutant for the
// same budget, and must stay clean.  It prints the kill matrix (mutant, seed
// lines, killed, oracle, seed, seeds tried, time to kill, replay confirmed)
// and exits 1 if a mutant survives, a replay does not confirm, or the
// control fails.
#pragma once

#include <string>
#include <vector>

#include "core/vm.h"

namespace faultline::stress {

struct SelftestOptions {
  double budget_s = 20;              // per mutant (and per control line): seconds of seeds
  int jobs = 0;                      // mutants hunted at a time (0: the machine's cores)
  std::vector<vm::Mutant> mutants;   // empty: the whole catalogue
  std::string sched;                 // --sched for every run ("" : each line's own)
  std::string json_path;             // --json: the matrix as JSON
  bool control = true;               // the no-mutant row
  bool compare = false;              // --compare-schedulers: the hunt under each scheduler, median time-to-kill
  std::string self_exe = "/proc/self/exe";
};

// The arguments (a scenario and what it needs) that a mutant is hunted
// with: the line where its window is entered often enough.
std::vector<std::string> hunting_line(vm::Mutant m);

// "FAIL [data] ..." -> "data"; "panic: ..." -> "panic"; a signal -> "crash".
std::string oracle_of(const std::string& first_failure, const std::string& why);

// The first failure line with what differs between processes (addresses)
// blanked, for comparing a replay with the run it replays.
std::string failure_signature(const std::string& first_failure);

int selftest_command(const SelftestOptions& o);

// The schedulers compared by `selftest --compare-schedulers`: a name and the
// run options that select it.
struct SchedulerPolicy {
  const char* name;
  std::vector<std::string> args;
  bool deterministic;  // a kill's replay line fails the same way again
};
const std::vector<SchedulerPolicy>& compared_schedulers();

// The median of `v` (seconds to kill; a survivor counts as +infinity);
// +infinity when more than half survived.
double median_time_to_kill(std::vector<double> v);

}  // namespace faultline::stress
