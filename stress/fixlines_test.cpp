// Named fixes: the faultline binary runs each one's replay line both ways
// (core/README.md lists the lines).  In an executable of its own, labelled
// `replay`: these runs test replay lines, not the memory model, so the tsan
// test preset leaves them out (under TSan they took about 230 s of CI).
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include <fmt/format.h>

namespace faultline::stress {
namespace {

// Named fixes: each one's replay line finds its 7.x race with the fix off
// and passes with it on (core/README.md lists them).  The faultline binary
// runs them, a sweep finding the first failing seed of a range (a race may end
// in a panic, which a sweep's child process survives), so a change of
// schedule does not break the test, while a line that no longer reaches the
// race does.
struct FixLine {
  const char* fix;
  const char* line;   // options, without --seed
  const char* seeds;  // the range swept with the fix off
  const char* finding;
};

// Runs the faultline binary with `args`; its exit code, its output in *out.
int run_faultline(const std::string& args, std::string* out) {
  out->clear();
  std::FILE* p = ::popen((std::string(FAULTLINE_EXE) + " " + args + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out->append(buf, n);
  const int status = ::pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The line of issue 13's crash: sends under memory pressure.
constexpr const char* kFaultStormWithSends =
    "--scenario fault-storm --executor fibers --processes 2 --workers 8 --ops 2000 --pages 96 --anon-pages 64 --file-pages 32"
    " --device-pages 4 --child-workers 2 --child-ops 100 --max-processes 8 --max-forks 200 --io-latency-us 20"
    " --io-error-ppm 0 --mix read=60,write=40,send=20 --sched random --no-truncator";

class FixLines : public ::testing::TestWithParam<FixLine> {};

TEST_P(FixLines, FailWithTheFixOffAndPassWithItOn) {
  const FixLine& f = GetParam();
  std::string out;
  ASSERT_EQ(run_faultline(fmt::format("{} --no-fix {} --quiet sweep --seeds {} -j2", f.line, f.fix, f.seeds), &out), 1)
      << f.fix << ": seeds " << f.seeds << " pass with the fix off\n" << out;
  // Seeds finish in any order: the lowest failing one.
  std::uint64_t seed = 0;
  std::string first;
  for (std::size_t at = out.find("\nseed "); at != std::string::npos; at = out.find("\nseed ", at + 1)) {
    const std::uint64_t s = std::stoull(out.substr(at + 6));
    if (seed == 0 || s < seed) {
      seed = s;
      first = out.substr(at + 1, out.find('\n', at + 1) - at - 1);
    }
  }
  ASSERT_NE(seed, 0u) << out;
  EXPECT_NE(first.find(f.finding), std::string::npos) << first;
  EXPECT_EQ(run_faultline(fmt::format("{} --seed {} --quiet", f.line, seed), &out), 0) << out;
  EXPECT_NE(out.find("pass: PASS"), std::string::npos) << out;
}

// faultline selftest: a mutant hunted with seeds of its line is killed by
// the oracle that should see it, the printed replay line fails the same way
// in a fresh process, and the control (the same lines, no mutant) stays
// clean; the matrix says so and the exit code is 0.
TEST(Selftest, KillsTheMutantsConfirmsTheirReplaysAndKeepsTheControlClean) {
  std::string out;
  EXPECT_EQ(run_faultline("selftest --mutants busy-wakeup-lost,no-eof-check --budget 4 --jobs 2", &out), 0) << out;
  EXPECT_NE(out.find("busy-wakeup-lost: killed by liveness at seed 1"), std::string::npos) << out;
  EXPECT_NE(out.find("no-eof-check: killed by file at seed 1"), std::string::npos) << out;
  EXPECT_NE(out.find("2 of 2 mutants killed, 0 replays not confirmed, control clean"), std::string::npos) << out;
  EXPECT_NE(out.find("control (no mutant)          --scenario private-file"), std::string::npos) << out;
}

// Bad input gets exit code 2 and a message naming the value.
TEST(Selftest, RefusesABadBudgetAnUnknownMutantAndRunOptions) {
  std::string out;
  EXPECT_EQ(run_faultline("selftest --budget 0", &out), 2) << out;
  EXPECT_NE(out.find("--budget 0 is out of range"), std::string::npos) << out;
  EXPECT_EQ(run_faultline("selftest --mutants busy-wakeup-lost,no-such-mutant", &out), 2) << out;
  EXPECT_NE(out.find("'no-such-mutant' is not a known mutant"), std::string::npos) << out;
  EXPECT_EQ(run_faultline("--ops 5 selftest", &out), 2) << out;
  EXPECT_NE(out.find("selftest: --ops is a run option"), std::string::npos) << out;
  EXPECT_EQ(run_faultline("selftest --compare-schedulers --sched pct", &out), 2) << out;
  EXPECT_NE(out.find("--compare-schedulers runs every scheduler"), std::string::npos) << out;
}

// faultline shrink: a mutant's failing line of 24,000 operations comes down
// to at most 4 workers and 50 operations that fail the same way, and the
// shrunk line (printed after "after: ") fails so in a fresh process.
// queue-without-lock's failure needs no preemption: the report says so.
TEST(Shrink, ReducesAMutantsFailureToAFewOperationsThatFailTheSameWay) {
  std::string out;
  ASSERT_EQ(run_faultline("shrink --budget 60 --jobs 2 -- --scenario mixed --ops 3000 --seed 1 --mutant queue-without-lock",
                          &out),
            0)
      << out;
  const auto at = out.find("\nafter: faultline ");
  ASSERT_NE(at, std::string::npos) << out;
  const std::string after = out.substr(at + 8, out.find('\n', at + 1) - at - 8);
  int processes = 0, workers = 0, ops = 0;
  ASSERT_EQ(std::sscanf(after.c_str() + after.find("--processes"), "--processes %d --workers %d --ops %d", &processes,
                        &workers, &ops),
            3)
      << after;
  // Threads left out (--only-workers) are not started: the count is the
  // list's.
  int started = processes * workers;
  if (const auto ow = after.find("--only-workers "); ow != std::string::npos) {
    const std::string list = after.substr(ow + 15, after.find(' ', ow + 15) - ow - 15);
    started = static_cast<int>(std::count(list.begin(), list.end(), ',')) + 1;
  }
  EXPECT_LE(started, 4) << after;
  EXPECT_LE(started * ops, 50) << after;
  EXPECT_NE(after.find("--mutant queue-without-lock"), std::string::npos) << after;
  EXPECT_NE(out.find("none: the run fails under the default schedule, no preemption needed"), std::string::npos) << out;
  std::string again;
  EXPECT_EQ(run_faultline(after.substr(10) + " --quiet", &again), 1) << again;
  EXPECT_NE(again.find("FAIL [lock checker: lock assertion failed]"), std::string::npos) << again;
  // A line that passes is refused: nothing to shrink.
  EXPECT_EQ(run_faultline("shrink --budget 30 -- --scenario mixed --ops 20 --seed 1", &out), 2) << out;
  EXPECT_NE(out.find("the line does not fail"), std::string::npos) << out;
}

// The campaign's private-wired line on OS threads.  A fork copies the
// parent's entries, and with them a maximum protection an mlock took write
// out of (L249-271); an munmap of the parent's, between that copy and the
// child's record of it, replaces the parent's entry and clears the
// parent's record, so a child that took the record after it did not know
// its entry had lost write, and failed its own mprotect back to read/write
// ("mprotect read/write of the private file mapping failed:
// KERN_PROTECTION_FAILURE", 7 of 30 seeds).  Deterministic runs have not
// found it (seeds 1..500 of this line and 160 more at larger sizes pass);
// threads do, though not every time: with the record taken after the fork
// only, these 8 seeds all passed about one time in eight (2 of 8 failed
// in the run that checked this test).
TEST(ThreadsLines, AChildKnowsTheMaximumProtectionItsForkCopied) {
  std::string out;
  EXPECT_EQ(run_faultline("--scenario private-storm --ops 300 --no-truncator --mix mlock-private=8 --executor threads"
                          " --quiet sweep --seeds 1..8 -j2",
                          &out),
            0)
      << out;
  EXPECT_NE(out.find("8 passed, 0 failed"), std::string::npos) << out;
}

// faultline shrink --schedule-only on a small failing line of
// msleep-early-release (the interlock dropped before the sleeper is on the
// channel): the schedule comes down to a few preemptions, and the decisive
// one is the switch away from the worker standing in page_sleep_if_busy's
// window, to one whose wakeup it then misses.  The shrunk line fails the
// same way; the line with that decision flipped passes.
TEST(Shrink, NamesTheDecisiveDecisionOfALostWakeup) {
  const std::string line =
      "--scenario mixed --executor fibers --seed 13 --processes 1 --workers 3 --ops 2 --pages 48 --anon-pages 16"
      " --scratch-pages 1 --churn-pages 2 --file-pages 1 --device-pages 1 --mix read=30,write=30,file-read=12,"
      "fork=0,mprotect=0,munmap=3,mlock=2,madvise=0,send=2,dev-read=3,file-write=3 --mutant msleep-early-release"
      " --no-pagedaemon --no-truncator";
  std::string out;
  ASSERT_EQ(run_faultline("shrink --schedule-only --budget 120 --jobs 2 -- " + line, &out), 0) << out;
  const auto d = out.find("step 3: the decisive decision\ndecision ");
  ASSERT_NE(d, std::string::npos) << out;
  const std::string report = out.substr(d);
  EXPECT_NE(report.find(", preempting p1.t"), std::string::npos) << report;
  EXPECT_NE(report.find("  instead of: worker "), std::string::npos) << report;
  EXPECT_NE(report.find("@ core/page.cpp:"), std::string::npos) << report;
  EXPECT_NE(report.find("page_sleep_if_busy"), std::string::npos) << report;
  auto line_after = [&out](const std::string& head) {
    const auto at = out.find(head);
    if (at == std::string::npos) return std::string();
    const auto from = out.find("faultline ", at + head.size());
    return out.substr(from + 10, out.find('\n', from) - from - 10);
  };
  const std::string flipped = line_after("the run passes:\n");
  const std::string after = line_after("\nafter: ");
  ASSERT_FALSE(flipped.empty()) << out;
  ASSERT_NE(after.find("--sched script --script "), std::string::npos) << after;
  std::string again;
  EXPECT_EQ(run_faultline(after + " --quiet", &again), 1) << again;
  EXPECT_NE(again.find("FAIL [liveness] every simulated thread is blocked (deadlock)"), std::string::npos) << again;
  // The report says where memory stood (pages, free, cached, wired).
  EXPECT_NE(again.find("\nmemory: "), std::string::npos) << again;
  EXPECT_NE(again.find(" wired\n"), std::string::npos) << again;
  EXPECT_EQ(run_faultline(flipped + " --quiet", &again), 0) << again;
}

// What shrink made of mprotect-keeps-timestamp's failure from selftest's
// line (2 x 4 threads x 3,000 operations, forks, both daemons): 4 threads
// of one operation each, the others not started, and 4 choices written
// down by place (worker name @ its schedule point).  The line fails with
// the panic; without its last entry (p2.t2 preempted at the unlock of its
// mprotect, for p2.t1's fault at map_lock_upgrade), it passes.
TEST(Shrink, AShrunkLineOfNamedChoicesAndStartedThreadsReplays) {
  const std::string line =
      "--scenario mixed --executor fibers --seed 11 --processes 2 --workers 4 --ops 1 --pages 48 --anon-pages 1"
      " --scratch-pages 1 --churn-pages 1 --file-pages 1 --device-pages 1 --mix read=30,write=30,file-read=0,fork=0,"
      "mprotect=3,munmap=3,mlock=0,madvise=0,send=2,dev-read=3,file-write=3 --only-workers p1.t3,p2.t0,p2.t1,p2.t2"
      " --no-pagedaemon --no-truncator --sched script --quiet --script p1.t3@6:p2.t0,p2.t0@10:p2.t1,p1.t3@22:p2.t2";
  const std::string mutant = " --mutant mprotect-keeps-timestamp";
  std::string out;
  EXPECT_NE(run_faultline(line + ",p2.t2@6:p2.t1" + mutant, &out), 0) << out;  // the panic aborts it
  EXPECT_NE(out.find("panic: vm_fault: a translation allowing more than its map entry"), std::string::npos) << out;
  EXPECT_NE(out.find("worker 2 (p2.t1)"), std::string::npos) << out;
  EXPECT_EQ(run_faultline(line + mutant, &out), 0) << out;
  EXPECT_EQ(run_faultline(line + ",p2.t2@6:p2.t1", &out), 0) << out;
}

INSTANTIATE_TEST_SUITE_P(
    Protocol, FixLines,
    ::testing::Values(
        FixLine{"rename-skips-lent",
                "--scenario mixed --ops 2000 --workers 3 --anon-pages 2 --child-ops 2 --io-latency-us 2000 --pages 48"
                " --mix read=10,write=5,file-read=0,fork=30,mlock=30,send=30,munmap=0,mprotect=0,dev-read=0,"
                "file-write=0,madvise=0,mlock-file=0",
                "1..20", "write failed: KERN_PROTECTION_FAILURE"},
        FixLine{"bypass-unmaps",
                "--scenario mixed --ops 2000 --scratch-pages 2 --anon-pages 8 --pages 40 --workers 4 --child-ops 5"
                " --mix read=30,write=30,fork=20,mprotect=20,file-read=0,munmap=0,mlock=0,send=0,dev-read=0,"
                "file-write=0,madvise=0,mlock-file=0",
                "1..20", "panic: terminating an object with a mapped page"},
        FixLine{"collapse-unmaps",
                "--scenario mixed --processes 1 --workers 6 --ops 2000 --pages 40 --anon-pages 2 --scratch-pages 2"
                " --churn-pages 1 --child-workers 1 --child-ops 2 --mix read=30,write=30,file-read=30,fork=4,"
                "mprotect=12,munmap=0,mlock=0,madvise=0,send=0,dev-read=12,file-write=0,mlock-file=0 --no-truncator",
                "1..120", "panic: vm_object_backing_scan: freeing a mapped page"},
        FixLine{"fault-keeps-wired", "--scenario private-file --ops 2000", "1..5", "panic: freeing a wired page"},
        FixLine{"protect-copies-wired", "--scenario private-storm --ops 2000 --no-truncator --mix mlock-private=8",
                "1..5", "panic: unwiring an unwired page"},
        FixLine{"copy-entry-skips-placeholder",
                "--scenario private-storm --ops 300 --no-truncator --mix mlock-private=8", "21..21",
                "panic: vm_fault: vm_fault_copy_entry: page not valid"},
        FixLine{"unwire-under-queues", "--scenario truncate --ops 2000", "1..20", "panic: unwiring an unwired page"},
        FixLine{"cowfault-keeps-validity", "--scenario truncate --ops 2000", "1..20",
                "past a truncation: stale data survived it"},
        FixLine{"cowfault-after-busy", kFaultStormWithSends, "1..20", "FAIL killed by signal"},
        FixLine{"cowfault-leaves-busy", kFaultStormWithSends, "1..20", "panic: page not busy"}),
    [](const auto& info) {
      std::string n = info.param.fix;
      for (char& ch : n)
        if (ch == '-') ch = '_';
      return n;
    });

}  // namespace
}  // namespace faultline::stress
