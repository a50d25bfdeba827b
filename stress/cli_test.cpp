// Bad input exits 2 with a message naming the bad value; nothing runs.
#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "stress/cli.h"
#include "stress/config.h"
#include "stress/scenario.h"
#include "stress/sweep.h"

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
                              "dev-read=0"},
                     "every operation has weight 0");
}
TEST(Cli, OptionsThatContradictTheExecutorAreNamed) {
  expect_usage_error({"--executor", "fibers", "--duration", "5"}, "--duration");
  expect_usage_error({"--executor", "threads", "--expect-digest", "1234"}, "--expect-digest");
  expect_usage_error({"--executor", "threads", "--max-steps", "10"}, "--max-steps");
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
TEST(Cli, ListAndHelpExitZero) {
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(cli_main({"list"}), 0);
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(out.find("mixed"), std::string::npos);
  EXPECT_NE(out.find("fork"), std::string::npos);
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(cli_main({"--help"}), 0);
  EXPECT_NE(::testing::internal::GetCapturedStdout().find("--scenario"), std::string::npos);
}

}  // namespace
}  // namespace faultline::stress
