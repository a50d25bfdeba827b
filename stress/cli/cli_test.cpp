// Bad input exits 2 with a message naming the bad value; nothing runs.
#include <algorithm>
#include <cmath>
#include <limits>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/reach.h"
#include "stress/cli/cli.h"
#include "stress/config.h"
#include "stress/scenario.h"
#include "stress/cli/selftest.h"
#include "stress/cli/sweep.h"

namespace faultline::stress {
namespace {

struct Outcome {
  int code;
  std::string err;
};

Outcome run_cli(std::vector<std::string> args) {
  ::testing::internal::CaptureStderr();
  const int code = cli_main(args);
  return {code, ::testing::internal::GetCapturedStderr()};
}

void expect_usage_error(std::vector<std::string> args, const std::string& named) {
  std::string joined;
  for (const auto& a : args) joined += a + " ";
  const Outcome o = run_cli(std::move(args));
  EXPECT_EQ(o.code, 2) << joined;
  EXPECT_NE(o.err.find(named), std::string::npos) << joined << "\nstderr: " << o.err;
}

TEST(Cli, UnknownOptionIsNamed) { expect_usage_error({"--bogus", "3"}, "--bogus"); }
TEST(Cli, UnknownScenarioIsNamed) { expect_usage_error({"--scenario", "teleport"}, "teleport"); }
TEST(Cli, UnknownFixIsNamed) { expect_usage_error({"--no-fix", "teleport"}, "teleport"); }
TEST(Cli, UnknownListIsNamed) { expect_usage_error({"list", "teleports"}, "teleports"); }
// The campaign is one fixed set of runs: any other run option is refused,
// by name, before anything runs.
TEST(Cli, CampaignRefusesRunOptionsByName) {
  expect_usage_error({"campaign", "--seed", "3"}, "--seed");
  expect_usage_error({"campaign", "--ops", "10"}, "--ops");
  expect_usage_error({"--scenario", "fork", "campaign"}, "--scenario");
  expect_usage_error({"campaign", "--json", "/nonexistent-dir/x.json"}, "/nonexistent-dir/x.json");
}
TEST(Cli, StallStepsIsInTheReplayLineWhenNotTheDefault) {
  Config c;
  EXPECT_EQ(c.replay_line().find("--stall-steps"), std::string::npos);
  c.stall_steps = 1000;
  EXPECT_NE(c.replay_line().find(" --stall-steps 1000"), std::string::npos) << c.replay_line();
}
TEST(Cli, UnwritableTracePathIsNamed) {
  expect_usage_error({"--trace", "/nonexistent-dir/t.json", "--ops", "1"}, "/nonexistent-dir/t.json");
  expect_usage_error({"--trace-events", "0", "--trace", "/tmp/faultline-cli-test.json"}, "--trace-events 0");
  expect_usage_error({"sweep", "--seeds", "1..2", "--trace", "/tmp/faultline-cli-test.json"}, "--trace");
}
TEST(Cli, MalformedSeedIsNamed) {
  expect_usage_error({"--seed", "12x"}, "12x");
  expect_usage_error({"--seed", "-1"}, "-1");
  expect_usage_error({"--seed", "0x"}, "0x");
  expect_usage_error({"--seed", "18446744073709551616"}, "18446744073709551616");  // 2^64
  expect_usage_error({"--seed", ""}, "--seed ''");  // empty: not the default seed
}
TEST(Cli, UnwritableReportPathsAreNamed) {
  expect_usage_error({"--json", "/nonexistent-dir/r.json", "--ops", "1"}, "--json '/nonexistent-dir/r.json'");
  expect_usage_error({"sweep", "--seeds", "1..2", "--junit", "/nonexistent-dir/j.xml"},
                     "--junit '/nonexistent-dir/j.xml'");
  expect_usage_error({"sweep", "--seeds", "1..2", "--json", "/nonexistent-dir/s.json"},
                     "--json '/nonexistent-dir/s.json'");
}
TEST(Cli, NonNumericCountIsNamed) {
  expect_usage_error({"--workers", "many"}, "many");
  expect_usage_error({"--check-every", "often"}, "often");
}
TEST(Cli, OutOfRangeCountsAreNamed) {
  expect_usage_error({"--workers", "0"}, "--workers 0");
  expect_usage_error({"--workers", "513"}, "--workers 513");
  expect_usage_error({"--processes", "0"}, "--processes 0");
  expect_usage_error({"--pages", "5"}, "--pages 5");
  expect_usage_error({"--ops", "0"}, "--ops 0");
  expect_usage_error({"--io-error-ppm", "2000000"}, "--io-error-ppm 2000000");
  expect_usage_error({"--os-threads", "0", "--executor", "fibers-mt"}, "--os-threads 0");
  expect_usage_error({"--watchdog", "0"}, "--watchdog 0");
  expect_usage_error({"--check-every", "2000000000000"}, "--check-every 2000000000000");
  expect_usage_error({"--duration=-3", "--executor", "threads"}, "--duration -3");
  expect_usage_error({"--processes", "100", "--workers", "300", "--executor", "threads"}, "30000 OS threads");
}
TEST(Cli, BadEnumsAreNamed) {
  expect_usage_error({"--executor", "gpu"}, "gpu");
  expect_usage_error({"--sched", "fifo"}, "fifo");
}
TEST(Cli, BadMixIsNamed) {
  expect_usage_error({"--mix", "teleport=3"}, "teleport");
  expect_usage_error({"--mix", "read=lots"}, "lots");
  expect_usage_error({"--mix", "read"}, "'read' is not op=weight");
  expect_usage_error({"--mix", "read=0,write=0,file-read=0,fork=0,mprotect=0,munmap=0,mlock=0,madvise=0,send=0,"
                              "dev-read=0,file-write=0,mlock-file=0,send-file=0,mprotect-file=0,madvise-file=0,munmap-file=0"},
                     "every operation has weight 0");
}
TEST(Cli, OptionsThatContradictTheExecutorAreNamed) {
  expect_usage_error({"--executor", "fibers", "--duration", "5"}, "--duration");
  expect_usage_error({"--executor", "threads", "--expect-digest", "1234"}, "--expect-digest");
  expect_usage_error({"--executor", "threads", "--max-steps", "10"}, "--max-steps");
}
TEST(Cli, BadScriptsAndShrinkArgumentsAreNamed) {
  expect_usage_error({"--script", "p1.t0@1:p1.t1"}, "needs --executor fibers --sched script");
  expect_usage_error({"--sched", "script", "--script", "p1.t0@5:p1.t1,p1.t0@5:p2.t0"}, "the place p1.t0@5 is named twice");
  expect_usage_error({"--sched", "script", "--script", "5-1"}, "'5-1' is not PLACE:NAME");
  expect_usage_error({"--sched", "script", "--script", "5:1"}, "'5' is not a choice's place");
  expect_usage_error({"--executor", "threads", "--record-script", "/tmp/x"}, "--record-script");
  expect_usage_error({"--executor", "threads", "--explain-decision", "p1.t0@3"}, "--explain-decision");
  expect_usage_error({"--explain-decision", "3"}, "--explain-decision: '3' is not a choice's place");
  expect_usage_error({"--only-workers", "p1.t9"}, "'p1.t9' is not a thread of the initial processes");
  expect_usage_error({"--only-workers", "t1"}, "'t1' is not a thread pP.tJ");
  expect_usage_error({"--sched-seed", "-3"}, "--sched-seed '-3' is not an unsigned 64-bit integer");
  expect_usage_error({"--record-script", "/nonexistent-dir/s"}, "/nonexistent-dir/s");
  expect_usage_error({"shrink"}, "give the failing run's replay line");
  expect_usage_error({"shrink", "--budget", "0", "--", "--ops", "10"}, "--budget 0 is out of range");
  expect_usage_error({"shrink", "--budget", "soon", "--ops", "10"}, "'soon' is not a number");
  expect_usage_error({"shrink", "--seeds", "0", "--ops", "10"}, "--seeds 0 is out of range");
  expect_usage_error({"shrink", "--jobs"}, "--jobs needs a value");
  expect_usage_error({"shrink", "--", "--scenario", "teleport"}, "teleport");
  expect_usage_error({"shrink", "--", "sweep", "--ops", "10"}, "'sweep' in the line");
}
TEST(Cli, BadSweepArgumentsAreNamed) {
  expect_usage_error({"sweep", "--seeds", "1..x"}, "1..x");
  expect_usage_error({"sweep", "--seeds", "9..2"}, "9..2");
  expect_usage_error({"sweep", "--seeds", "-4"}, "-4");
  expect_usage_error({"sweep", "--shard", "3/3"}, "3/3");
  expect_usage_error({"sweep", "--shard", "1"}, "'1'");
  expect_usage_error({"sweep", "--jobs", "-1"}, "--jobs -1");
  expect_usage_error({"sweep", "--timeout", "0"}, "--timeout 0");
  expect_usage_error({"sweep", "--workers", "0"}, "--workers 0");  // a run option after 'sweep'
  expect_usage_error({"sweep", "--max-forks", "-1"}, "--max-forks -1");
}
TEST(Cli, ShardEnvironmentMustBeWholeAndInRange) {
  ::setenv("GTEST_TOTAL_SHARDS", "4", 1);
  ::unsetenv("GTEST_SHARD_INDEX");
  expect_usage_error({"sweep", "--seeds", "1..2"}, "GTEST_SHARD_INDEX");
  ::setenv("GTEST_SHARD_INDEX", "7", 1);
  expect_usage_error({"sweep", "--seeds", "1..2"}, "GTEST_SHARD_INDEX=7");
  ::unsetenv("GTEST_TOTAL_SHARDS");
  ::unsetenv("GTEST_SHARD_INDEX");
}
TEST(Cli, ShardsSplitTheSeedsWithoutOverlapOrGap) {
  SweepOptions o;
  ASSERT_FALSE(parse_seed_range("10..29", o));
  std::vector<std::uint64_t> all;
  for (int i = 0; i < 3; ++i) {
    ASSERT_FALSE(parse_shard(std::to_string(i) + "/3", o));
    for (std::uint64_t s : shard_seeds(o)) all.push_back(s);
  }
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), 20u);
  for (std::size_t k = 0; k < all.size(); ++k) EXPECT_EQ(all[k], 10 + k);
}
TEST(Cli, SweepChildReplaysTheConfiguration) {
  Config c;
  c.scenario = "fork";
  c.ops = 77;
  c.max_forks = 9;
  std::vector<std::string> a = seed_args(c, 42);
  std::string joined;
  for (const auto& w : a) joined += w + " ";
  EXPECT_NE(joined.find("--seed 42 "), std::string::npos) << joined;
  EXPECT_NE(joined.find("--scenario fork "), std::string::npos) << joined;
  EXPECT_NE(joined.find("--ops 77 "), std::string::npos) << joined;
  EXPECT_NE(joined.find("--max-forks 9 "), std::string::npos) << joined;
}
// --mix changes only the weights it names: a replay line must name the
// zeros too, or it runs the scenario's weight (a sweep's children did, and
// ran mlock at weight 2 where the user asked for 0).
TEST(Cli, ReplayedMixKeepsZeroWeights) {
  Config asked;
  find_scenario("mixed")->apply(asked);
  ASSERT_FALSE(parse_mix("mlock=0,send=20", asked.mix));
  ASSERT_EQ(asked.mix[static_cast<std::size_t>(Op::kWire)], 0u);
  Config replayed;
  find_scenario("mixed")->apply(replayed);
  ASSERT_NE(replayed.mix, asked.mix);
  ASSERT_FALSE(parse_mix(format_mix(asked.mix), replayed.mix)) << format_mix(asked.mix);
  EXPECT_EQ(replayed.mix, asked.mix) << format_mix(asked.mix);
}
// A fix turned off is 7.x as written there: the replay line and a sweep's
// seeds must keep it off.
TEST(Cli, FixesTurnedOffAreReplayed) {
  Config c;
  c.fixes &= ~(1u << static_cast<unsigned>(vm::Fix::kDeadObjectRetry));
  EXPECT_NE(c.replay_line().find(" --no-fix dead-object-retry"), std::string::npos) << c.replay_line();
  EXPECT_EQ(c.replay_line().find(" --no-fix collapse-unmaps"), std::string::npos) << c.replay_line();
  EXPECT_EQ(c.fixes_off(), std::vector<std::string>{"dead-object-retry"});
  Config all_on;
  EXPECT_EQ(all_on.replay_line().find("--no-fix"), std::string::npos);
}
TEST(Cli, ListFixesNamesEveryFix) {
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(cli_main({"list", "fixes"}), 0);
  const std::string out = ::testing::internal::GetCapturedStdout();
  for (unsigned f = 0; f < static_cast<unsigned>(vm::Fix::kCount); ++f)
    EXPECT_NE(out.find(vm::fix_name(static_cast<vm::Fix>(f))), std::string::npos) << out;
}
TEST(Cli, ListMutantsNamesEveryMutantWithTheLinesItBreaks) {
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(cli_main({"list", "mutants"}), 0);
  const std::string out = ::testing::internal::GetCapturedStdout();
  for (int i = 1; i < static_cast<int>(vm::Mutant::kCount); ++i) {
    const auto m = static_cast<vm::Mutant>(i);
    EXPECT_NE(out.find(vm::mutant_name(m)), std::string::npos) << out;
    EXPECT_NE(std::string(vm::mutant_lines(m)), "") << vm::mutant_name(m) << " names no lines";
    EXPECT_NE(std::string(vm::mutant_what(m)), "") << vm::mutant_name(m) << " says nothing";
  }
  EXPECT_EQ(out.find("none"), std::string::npos) << "the no-mutant entry is not a mutant";
  EXPECT_NE(out.find(std::to_string(static_cast<int>(vm::Mutant::kCount) - 1) + " mutants"), std::string::npos);
}
TEST(Selftest, NamesTheOracleOfAFailureAndComparesFailuresWithoutAddresses) {
  EXPECT_EQ(oracle_of("FAIL [data] read: process 1 ...", ""), "data");
  EXPECT_EQ(oracle_of("FAIL [lock checker: lock assertion failed] x", ""), "lock checker: lock assertion failed");
  EXPECT_EQ(oracle_of("panic: page already busy (KASSERT...)", ""), "panic");
  EXPECT_EQ(oracle_of("", "killed by signal 6 (Aborted)"), "crash");
  EXPECT_EQ(oracle_of("", "no verdict within 60 s (killed)"), "timeout");
  EXPECT_EQ(failure_signature("actor 3 sleeping on 0x564bc7ead5c8 \"pfault\""),
            failure_signature("actor 3 sleeping on 0x7f00aa \"pfault\""));
  EXPECT_NE(failure_signature("FAIL [data] page 3"), failure_signature("FAIL [data] page 4"));
  // Under ASan the first line carries the process id (the reduced selftest's
  // replay of mprotect-keeps-timestamp did not confirm for that in CI).
  const std::string a = "==10002==ERROR: AddressSanitizer: heap-use-after-free on address 0x50800003e468 at pc 0x55f5";
  const std::string b = "==10009==ERROR: AddressSanitizer: heap-use-after-free on address 0x50800003e468 at pc 0x55d0";
  EXPECT_EQ(failure_signature(a), failure_signature(b));
  EXPECT_EQ(oracle_of(a, ""), "asan");
  for (int i = 1; i < static_cast<int>(vm::Mutant::kCount); ++i)
    EXPECT_FALSE(hunting_line(static_cast<vm::Mutant>(i)).empty()) << vm::mutant_name(static_cast<vm::Mutant>(i));
}

// The median of the seconds to kill, a survivor counting as infinitely slow.
TEST(Selftest, TheMedianTimeToKillCountsASurvivorAsSlowest) {
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_DOUBLE_EQ(median_time_to_kill({3, 1, 2}), 2);
  EXPECT_DOUBLE_EQ(median_time_to_kill({4, 1, 2, 3}), 2.5);
  EXPECT_DOUBLE_EQ(median_time_to_kill({inf, 1, 2}), 2);
  EXPECT_TRUE(std::isinf(median_time_to_kill({inf, inf, 1})));
  EXPECT_TRUE(std::isinf(median_time_to_kill({})));
  ASSERT_EQ(compared_schedulers().size(), 5u);
  EXPECT_TRUE(compared_schedulers()[0].deterministic);
  EXPECT_TRUE(compared_schedulers()[2].deterministic);
  EXPECT_STREQ(compared_schedulers()[2].name, "fibers-pos");
  EXPECT_FALSE(compared_schedulers()[3].deterministic);
}
TEST(Cli, ListWindowsNamesEveryWindowOfTheCatalogue) {
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(cli_main({"list", "windows"}), 0);
  const std::string out = ::testing::internal::GetCapturedStdout();
  for (const vm::Window& w : vm::reach_catalogue()) {
    EXPECT_NE(out.find(w.name), std::string::npos) << out;
    EXPECT_NE(out.find(w.where), std::string::npos) << out;
  }
  EXPECT_NE(out.find(fmt::format("{} windows", vm::reach_catalogue().size())), std::string::npos) << out;
}
TEST(Cli, ListAndHelpExitZero) {
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(cli_main({"list"}), 0);
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("mixed"), std::string::npos);
  EXPECT_NE(out.find("fork"), std::string::npos);
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(cli_main({"--help"}), 0);
  const std::string help = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(help.find("--scenario"), std::string::npos);
  EXPECT_NE(help.find("--json"), std::string::npos);
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(cli_main({"--version"}), 0);
  EXPECT_EQ(::testing::internal::GetCapturedStdout().rfind("faultline ", 0), 0u);
}

// A sweep's seed that dies of a signal still shows what it printed first
// (here a KASSERT's panic line) in the sweep's line, its JUnit failure and
// its JSON entry: the child is a stand-in that passes seed 1, panics and
// aborts on seed 2, and fails an oracle on seed 3.
TEST(Sweep, ASeedKilledByASignalKeepsItsFirstFailureLine) {
  char dir[] = "/tmp/faultline-sweep-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string d = dir;
  const std::string child = d + "/child.sh";
  {
    std::FILE* f = std::fopen(child.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("#!/bin/sh\n"
               "case \"$*\" in *'--seed 2 '*) echo 'some output'; "
               "echo 'panic: freeing a page with I/O in progress' >&2; kill -ABRT $$;;\n"
               "  *'--seed 3 '*) echo 'FAIL [data] a stale value'; exit 1;; esac\n"
               "echo 'pass: PASS'\n",
               f);
    std::fclose(f);
    ASSERT_EQ(::chmod(child.c_str(), 0755), 0);
  }
  SweepOptions o;
  ASSERT_FALSE(parse_seed_range("1..3", o));
  o.jobs = 2;
  o.timeout_s = 60;
  o.self_exe = child;
  o.junit_path = d + "/j.xml";
  o.json_path = d + "/s.json";
  Config c;
  find_scenario("mixed")->apply(c);
  ::testing::internal::CaptureStdout();
  const int code = sweep_command(c, o);
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("seed 2: FAIL killed by signal 6 (Aborted): panic: freeing a page with I/O in progress\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("seed 3: FAIL [data] a stale value\n"), std::string::npos) << out;  // not "FAIL FAIL"
  EXPECT_NE(out.find("1 passed, 2 failed"), std::string::npos) << out;
  auto slurp = [](const std::string& path) {
    std::string text;
    if (std::FILE* f = std::fopen(path.c_str(), "r")) {
      char buf[4096];
      for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
      std::fclose(f);
    }
    return text;
  };
  const std::string xml = slurp(o.junit_path);
  EXPECT_NE(xml.find("tests=\"3\" failures=\"2\""), std::string::npos) << xml;
  EXPECT_NE(xml.find("<testcase classname=\"faultline.mixed.fibers\" name=\"seed 1\""), std::string::npos) << xml;
  EXPECT_NE(xml.find("<failure message=\"killed by signal 6 (Aborted): panic: freeing a page with I/O in progress\""),
            std::string::npos)
      << xml;
  EXPECT_NE(xml.find("replay: faultline --scenario mixed --executor fibers --seed 2 "), std::string::npos) << xml;
  const nlohmann::ordered_json j = nlohmann::ordered_json::parse(slurp(o.json_path));
  EXPECT_EQ(j["failed"], 2);
  EXPECT_EQ(j["seeds"][2]["failure"], "FAIL [data] a stale value");
  ASSERT_EQ(j["seeds"].size(), 3u);
  EXPECT_EQ(j["seeds"][1]["seed"], 2);
  EXPECT_EQ(j["seeds"][1]["pass"], false);
  EXPECT_EQ(j["seeds"][1]["failure"], "killed by signal 6 (Aborted): panic: freeing a page with I/O in progress");
  EXPECT_EQ(j["seeds"][0]["pass"], true);
  std::remove(child.c_str());
  std::remove(o.junit_path.c_str());
  std::remove(o.json_path.c_str());
  ::rmdir(dir);
}

// Swarm: a seed's configuration is a function of the seed, valid, varied
// across seeds (operations switched off, memory, sizes, workers, I/O), with
// reads and writes always on and the base's scenario, --ops and fixes; the
// child runs it from its replay line, without --swarm.
TEST(Sweep, SwarmDrawsAValidVariedConfigurationFromEachSeed) {
  Config base;
  find_scenario("mixed")->apply(base);
  base.ops = 700;
  base.fixes &= ~(1u << static_cast<unsigned>(vm::Fix::kBypassUnmaps));
  std::set<std::string> lines;
  std::set<std::uint32_t> pages, latencies;
  int forks_off = 0, truncator_off = 0;
  for (std::uint64_t seed = 1; seed <= 200; ++seed) {
    const Config c = swarm_config(base, seed);
    ASSERT_FALSE(c.validate()) << "seed " << seed << ": " << *c.validate();
    EXPECT_EQ(c.replay_line(), swarm_config(base, seed).replay_line()) << "seed " << seed;
    EXPECT_GT(c.mix[static_cast<std::size_t>(Op::kRead)], 0u);
    EXPECT_GT(c.mix[static_cast<std::size_t>(Op::kWrite)], 0u);
    EXPECT_EQ(c.scenario, "mixed");
    EXPECT_EQ(c.ops, 700u);
    EXPECT_EQ(c.fixes, base.fixes);
    lines.insert(c.replay_line());
    pages.insert(c.pages);
    latencies.insert(c.io_latency_us);
    forks_off += c.mix[static_cast<std::size_t>(Op::kFork)] == 0;
    truncator_off += !c.truncator;
    const std::vector<std::string> args = seed_args(c, seed);
    std::string joined;
    for (const std::string& a : args) joined += a + " ";
    EXPECT_EQ(joined.find("--swarm"), std::string::npos) << joined;
    EXPECT_NE(joined.find(fmt::format("--pages {} ", c.pages)), std::string::npos) << joined;
    EXPECT_NE(joined.find(fmt::format("--seed {} ", seed)), std::string::npos) << joined;
    EXPECT_NE(joined.find("--no-fix bypass-unmaps"), std::string::npos) << joined;
  }
  EXPECT_EQ(lines.size(), 200u);
  EXPECT_EQ(pages.size(), 7u);
  EXPECT_EQ(latencies.size(), 4u);
  EXPECT_GT(forks_off, 60);
  EXPECT_LT(forks_off, 140);
  EXPECT_GT(truncator_off, 20);
}

TEST(Sweep, FirstFailureLineFindsPanicsAssertionsAndSanitizers) {
  EXPECT_EQ(first_failure_line("progress\npanic: pip underflow\n  KASSERT(o.pip > 0)\nFAIL [crash] x\n"),
            "panic: pip underflow");
  EXPECT_EQ(first_failure_line("a\nfaultline: x.cpp:3: f: Assertion `p' failed.\n"),
            "faultline: x.cpp:3: f: Assertion `p' failed.");
  EXPECT_EQ(first_failure_line("==1==ERROR: AddressSanitizer: heap-use-after-free\n"),
            "==1==ERROR: AddressSanitizer: heap-use-after-free");
  EXPECT_EQ(first_failure_line("all good\n"), "");
}

TEST(Sweep, JunitEscapesWhatItQuotes) {
  SeedOutcome bad;
  bad.seed = 7;
  bad.failure = "FAIL [data] <0x1> & \"x\"\x01";
  bad.replay = "faultline --seed 7";
  bad.output = "line <a>\n";
  const std::string x = junit_xml("s<&>", {bad}, 1.5);
  EXPECT_NE(x.find("message=\"FAIL [data] &lt;0x1&gt; &amp; &quot;x&quot;\\x01\""), std::string::npos) << x;
  EXPECT_NE(x.find("<testsuite name=\"s&lt;&amp;&gt;\""), std::string::npos) << x;
  EXPECT_NE(x.find("line &lt;a&gt;"), std::string::npos) << x;
}

}  // namespace
}  // namespace faultline::stress
