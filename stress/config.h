// A run's configuration: what the command line sets, with its validation.
// Every field has a default; scenarios set their own defaults first, then
// the command line overrides.  validate() names the first bad value.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/vm.h"

namespace faultline::stress {

enum class ExecutorKind : std::uint8_t { kThreads, kFibers, kFibersMt };
const char* executor_name(ExecutorKind e) noexcept;
std::optional<ExecutorKind> parse_executor(std::string_view s) noexcept;

enum class SchedKind : std::uint8_t { kRandom, kPct, kPos, kScript };
const char* sched_name(SchedKind s) noexcept;
std::optional<SchedKind> parse_sched(std::string_view s) noexcept;

// What a simulated thread does, one operation at a time.
enum class Op : std::uint8_t {
  kRead,      // load a word of the process's anonymous memory (any slot)
  kWrite,     // store to its own slot of a page of anonymous memory
  kFileRead,  // load a word of the shared file mapping
  kFork,      // fork the process: the child runs its own threads, then exits
  kProtect,   // mprotect the scratch region, or a run of it, read-only, then back
  kChurn,     // munmap the churn region, or a run of it, and map fresh memory there
  kWire,      // mlock a run of one to four pages, touch them, munlock
  kAdvise,    // madvise the anonymous region, or a run of it (random / sequential / normal)
  kSend,      // zero-copy send: write a page, lend it (COW loan) for a while, check it did not change
  kDevRead,   // load a word of a device mapping whose driver sometimes moves its memory
  kFileWrite, // store to the shared file mapping the word the file holds there (zero past the lowest cut)
  kWireNone,  // mmap a page PROT_NONE, mlock it (7.x COWs it and takes write out of its maximum protection), munmap
  kFilePrivate,  // load or store a word of a private (copy-on-write) mapping of the file
  kWireFile,     // mlock a run of one to four pages of the shared file mapping, store and load in each, munlock
  kSendFile,     // zero-copy send of a page of the shared file mapping: lend it a while, check it did not change
  kProtectFile,  // mprotect the shared file mapping, or a run of it, read-only, then back
  kAdviseFile,   // madvise the shared file mapping, or a run of it (random / sequential / normal)
  kUnmapFile,    // munmap a run of the shared file mapping, then map the file there again
  kWirePrivate,  // mlock a run of one to four pages of the private file mapping (copies them), munlock
  kProtectPrivate,  // mprotect the private file mapping, or a run of it, read-only, then back
  kUnmapPrivate,    // munmap a run of the private file mapping (its copies go), then map the file privately there again
  kCount
};
inline constexpr std::size_t kOps = static_cast<std::size_t>(Op::kCount);
const char* op_name(Op op) noexcept;
std::optional<Op> parse_op(std::string_view s) noexcept;

using Mix = std::array<std::uint32_t, kOps>;  // relative weights
// "read=40,write=40,fork=1": unnamed ops keep their weight.  On error,
// returns a message naming the bad part.
std::optional<std::string> parse_mix(std::string_view text, Mix& mix);
std::string format_mix(const Mix& mix);

struct Config {
  std::string scenario = "mixed";
  ExecutorKind executor = ExecutorKind::kFibers;
  SchedKind sched = SchedKind::kRandom;
  int pct_depth = 3;
  // --pct-steps: PCT's k, the steps its change points are drawn from; 0:
  // 20 per operation of the initial threads, plus 1,000 (pct_steps_used()).
  // Given, a run with fewer --ops is the same run cut short (what shrink
  // bisects).
  std::uint64_t pct_steps = 0;
  std::uint64_t pct_steps_used() const {
    return pct_steps != 0 ? pct_steps : 20 * ops * static_cast<std::uint64_t>(started_workers()) + 1000;
  }
  int os_threads = 2;               // fibers-mt: OS threads carrying the fibers
  std::uint64_t seed = 1;
  // --sched-seed: the schedule's own seed (the deterministic policy's
  // choices, or the threads' perturbation), so that one workload (--seed:
  // every operation and its arguments) can be run under many schedules;
  // unset, the schedule derives from --seed.
  std::optional<std::uint64_t> sched_seed;
  std::uint64_t schedule_seed() const { return sched_seed ? *sched_seed : seed; }
  int processes = 2;                // initial processes
  int workers = 4;                  // threads per initial process
  // --only-workers pP.tJ,...: only these threads of the initial processes
  // are started (the others' operations are not run; each started thread
  // draws the operations it would draw with all of them).  Empty: all.
  std::string only_workers;
  // Whether thread j of initial process `pid` (1..processes) is started.
  bool worker_started(std::uint32_t pid, int j) const;
  // Threads of the initial processes that are started.
  int started_workers() const;
  int child_workers = 2;            // threads per forked child
  int child_ops = 100;              // operations per child thread
  int max_live_processes = 8;       // forks wait (are skipped) above this
  int max_forks = 200;              // forks in the whole run (children fork too); beyond: skipped
  std::uint64_t ops = 2000;         // operations per thread of an initial process
  double duration_s = 0;            // > 0: stop starting operations after this (threads, fibers-mt)
  std::uint32_t pages = 192;        // physical pages of the VM
  std::uint32_t anon_pages = 64;    // per process
  std::uint32_t scratch_pages = 8;  // per process, mprotected by kProtect
  std::uint32_t churn_pages = 4;    // per process, unmapped and remapped by kChurn
  std::uint32_t file_pages = 32;    // the shared file
  std::uint32_t device_pages = 4;   // the device every process maps
  bool pagedaemon = true;
  bool truncator = true;
  std::uint32_t io_latency_us = 20; // simulated pager I/O time
  std::uint32_t io_error_ppm = 0;   // pager I/O failures
  std::uint32_t perturb_ppm = 20000;  // threads, fibers-mt: chance of a seeded yield (threads: or delay) per schedule point
  std::uint64_t max_steps = 0;      // fibers: schedule point budget (0: none)
  std::uint64_t stall_steps = 50000000;  // fibers: no operation completed in this many schedule points fails (0: off)
  std::uint64_t check_every = 10000; // a quiescent check (World::quiescent_check) every this many operations; 0: at the end only
  double watchdog_s = 20;           // threads, fibers-mt: no progress for this long fails
  std::string trace_path;           // --trace: Chrome trace JSON of the run (stress/trace.h)
  std::uint64_t trace_events = 1000000;  // --trace-events: record at most this many slices (~90 MB)
  std::string json_path;            // --json: the run's summary as JSON (cli.cpp)
  std::string expect_digest;        // fibers: fail unless the schedule digest matches
  std::string script;               // --script, sched script: "PLACE:W,..." the choices that differ from the default
  std::string record_script_path;   // --record-script: write the run's choices that differ from the default here
  std::string explain_decision;     // --explain-decision PLACE: print both workers at that choice (NAME@POINT[.AFTER])
  bool abort_on_report = false;     // lock checker in abort mode (default: report, the run fails)
  // For measuring what they cost (bench/overhead.py): the lock-order checker
  // off (misuse and ownership assertions are still caught, as in a kernel
  // without WITNESS), lock profiling off (the summary has no lock profile).
  bool no_lock_checker = false;
  bool no_lock_profile = false;
  vm::Mutant mutant = vm::Mutant::kNone;  // a protocol fault injected on purpose (self-test)
  std::uint32_t fixes = vm::kAllFixes;    // --no-fix NAME clears one: 7.x's own race comes back
  bool quiet = false;
  bool require_reach = false;       // --require-reach: fail if a window of the reach catalogue was never entered
  bool print_reach = false;         // --print-reach: a "reach-counts:" line (what a sweep's children print)
  Mix mix{};

  // The names of the fixes turned off, in Fix order.
  std::vector<std::string> fixes_off() const;

  // A message naming the first bad value, or nothing.
  std::optional<std::string> validate() const;
  // The command line that reproduces this run.
  std::string replay_line() const;
  // Every field, by its option's name without dashes ("anon-pages"), for
  // --json; the mix as an object of weights.
  nlohmann::ordered_json to_json() const;
};

}  // namespace faultline::stress
