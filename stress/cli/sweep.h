// `faultline sweep`: one configuration over a range of seeds, each seed in its
// own child process (a crash or a hang fails that seed, not the sweep), as
// many at once as there are cores (oneTBB).  A shard (--shard i/N, or
// GTEST_SHARD_INDEX / GTEST_TOTAL_SHARDS from the environment) takes every
// N-th seed starting at the i-th, so a CI matrix or a cluster job can split a
// campaign and the union of the shards is the whole range.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "stress/config.h"

namespace faultline::stress {

struct SweepOptions {
  std::uint64_t first_seed = 1;
  std::uint64_t count = 100;
  int jobs = 0;  // 0: the machine's cores
  int shard_index = 0;
  int shard_count = 1;
  double timeout_s = 600;  // per seed
  std::string junit_path;  // --junit: JUnit XML, a test case per seed
  std::string json_path;   // --json: the sweep's results as JSON
  std::string self_exe = "/proc/self/exe";
  bool swarm = false;  // --swarm: each seed draws its configuration (swarm_config)
};

// Swarm testing (Groce et al., ISSTA 2012): seed `seed`'s configuration
// drawn from the seed over `base` (the scenario's defaults and the command
// line): the operation mix with some operations switched off, memory
// pressure, sizes, worker counts, children, I/O latency and error rate.
// Reads and writes stay on (the data oracle needs them); the scenario,
// executor, --ops and the fixes are the base's.  The seed's replay line is
// the drawn configuration, so a failure replays without --swarm.
Config swarm_config(const Config& base, std::uint64_t seed);

// "A..B" (inclusive) or "A" into first/count; a message naming the bad value
// otherwise.
std::optional<std::string> parse_seed_range(const std::string& text, SweepOptions& o);
// "i/N" with 0 <= i < N.
std::optional<std::string> parse_shard(const std::string& text, SweepOptions& o);

// The seeds of this shard, in order.
std::vector<std::uint64_t> shard_seeds(const SweepOptions& o);

// The child's arguments (without the program name) for one seed of `base`.
std::vector<std::string> seed_args(const Config& base, std::uint64_t seed);

// A replay line's words (split at blanks), for a child's arguments.
std::vector<std::string> words(const std::string& line);

// Writes `text` to `path` (replacing it); false on any error (errno says).
bool write_file(const std::string& path, const std::string& text);

// The line of a failed seed's output that says what went wrong first: a
// "FAIL ..." line, a KASSERT "panic: ...", a failed assert() or a
// sanitizer's report, or a usage error ("faultline: ..."); "" if none.
std::string first_failure_line(const std::string& output);

// JUnit XML for a sweep's seeds (what --junit writes).
struct SeedOutcome {
  std::uint64_t seed = 0;
  bool passed = false;
  double seconds = 0;
  std::string failure;  // the one-line reason (signal or timeout, and the first failure line)
  std::string replay;   // the seed's replay line
  std::string output;   // the last 64 KiB of what the seed printed (failing seeds only)
};
std::string junit_xml(const std::string& suite, const std::vector<SeedOutcome>& seeds, double seconds);

// Runs `exe` with `args` in a child process, its output collected, killed
// after `timeout_s`: code is the exit code (1 for a signal or a timeout,
// then `why` says which).
struct ChildRun {
  int code = 0;
  std::string output;
  std::string why;
  double seconds = 0;
};
ChildRun run_faultline_child(const std::string& exe, const std::vector<std::string>& args, double timeout_s);

// Runs the sweep, prints progress and a summary; returns 0 if every seed
// passed, 1 otherwise.
int sweep_command(const Config& base, const SweepOptions& o);

}  // namespace faultline::stress
