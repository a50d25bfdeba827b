// One run of the harness: builds the world, runs it on the chosen executor
// under the oracles, and reports.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/reach.h"
#include "stress/config.h"
#include "stress/world.h"

namespace faultline::stress {

struct RunResult {
  int exit_code = 0;  // 0 pass, 1 protocol failure, 2 could not run as configured
  std::vector<Failure> failures;
  std::string summary;   // counters, coverage, profile, throughput
  std::string verdict;   // one line
  std::uint64_t digest = 0;  // deterministic fibers: the schedule's
  std::uint64_t steps = 0;
  std::uint64_t ops = 0;
  std::uint64_t quiescent_checks = 0, quiescent_checks_skipped = 0;  // during the run (cfg.check_every)
  double seconds = 0;
  std::vector<std::uint64_t> retries;  // per vm::Retry
  std::vector<vm::ReachRow> reach;     // the reach catalogue's windows: count, first stamp
  // Everything the summary says, for --json: "seconds", "operations", "faults", "schedule",
  // "processes", "oracle", "quiescent_checks", "counters" (vmstat names),
  // "retries" (per retry path), "lock_profile" (per class), "failures".
  // The caller (cli.cpp) adds the version, the verdict, the exit code and
  // the replay line.
  nlohmann::ordered_json report;
};

struct RunOptions {
  bool progress = false;  // a progress line on stderr every 2 s
  bool handle_sigint = false;
  // A crash (an assertion, SIGSEGV, SIGBUS, ...) still prints a failure
  // report with the replay line before the process dies of the signal.
  bool handle_crash = false;
  // A run that cannot end cleanly (deadlock, watchdog) calls this with its
  // verdict and findings before the process exits.
  std::function<void(const std::string& verdict, const std::vector<Failure>& failures)> on_fatal;
};

// The reach table (its rows, the header of the "first" column), the names
// of the windows never entered, the message --require-reach fails with, and
// the JSON object {"window": {"count": n, "first_after_ops": k}, ...}.
// `firsts`, if given, is the "first" column's text per row.
std::string format_reach(const std::vector<vm::ReachRow>& rows, const char* first_label,
                         const std::vector<std::string>& firsts = {});
std::vector<std::string> unreached(const std::vector<vm::ReachRow>& rows);
std::string never_reached_message(const std::vector<std::string>& names);
nlohmann::ordered_json reach_json(const std::vector<vm::ReachRow>& rows);

// [{"oracle": ..., "what": ...}, ...]
nlohmann::ordered_json failures_json(const std::vector<Failure>& fs);

// Runs `cfg` (already validated).  A run that cannot end cleanly (deadlock,
// watchdog) prints its report to stdout and exits the process with 1: its
// threads or fibers are stuck and cannot be unwound.
RunResult run_once(const Config& cfg, const RunOptions& opts = {});

}  // namespace faultline::stress
