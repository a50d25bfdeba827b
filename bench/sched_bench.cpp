// Speed of the deterministic fiber scheduler (stress/sched/det_sched.h).
//
// BM_SchedPoints: N fibers each pass schedule_point(kUser) in a loop, about
// 2^20 points per run, one run per iteration; items_per_second is schedule
// points per second (target: at least 1 million).  Under kRandom nearly every
// point switches fibers; under kPct the highest-priority fiber runs on until
// it ends, so points rarely switch: the two bound the cost of a point.  Each
// run includes creating its fibers and its OS thread; BM_SchedSetup prices
// that alone (items are fibers), to show it is small beside 2^20 points.  Both
// measure warm runs: an untimed first run faults the fiber stacks in, and the
// scheduler keeps the stacks of finished runs for the next.
//
// BM_FiberMemory: what one run adds to the process's resident memory, per
// fiber, with every fiber started (its stack's touched pages, its
// Boost.Fiber context, the scheduler's per-worker state).  Stacks and heap
// are reused by later runs in a process, so it measures only as the first
// benchmark of its process: run one point per process,
//   sched_bench --benchmark_filter='BM_FiberMemory/100000/'
//
// Real time, not CPU time: the fibers run on the scheduler's own thread while
// the benchmark thread waits in run().
//   build/release/bench/sched_bench --benchmark_repetitions=5
//   --benchmark_report_aggregates_only=true
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include <benchmark/benchmark.h>

#include "bench/bench_main.h"
#include "locking/locking.h"
#include "stress/sched/det_sched.h"

namespace fl = faultline::locking;
namespace fs = faultline::stress;

namespace {

constexpr std::uint64_t kPointsPerRun = std::uint64_t{1} << 20;

fs::DetOptions options(fs::Policy policy) {
  fs::DetOptions o;
  o.seed = 1;
  o.policy = policy;
  o.pct_expected_steps = kPointsPerRun;
  return o;
}

// Resident bytes of this process (/proc/self/statm).
std::uint64_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  unsigned long long size = 0, resident = 0;
  if (f == nullptr || std::fscanf(f, "%llu %llu", &size, &resident) != 2) std::abort();
  std::fclose(f);
  return resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

// One run of `fibers` fibers sharing kPointsPerRun points; its step count,
// or 0 if it did not finish.  With `bytes_per_fiber`, also what the run
// added to the process's resident memory, per fiber, measured when the last
// fiber has started (every stack touched, every fiber alive).
std::uint64_t points_run(int fibers, fs::Policy policy, double* bytes_per_fiber = nullptr) {
  const std::uint64_t per_fiber = kPointsPerRun / static_cast<std::uint64_t>(fibers);
  const std::uint64_t before = bytes_per_fiber != nullptr ? resident_bytes() : 0;
  std::uint64_t at_full = 0;
  int started = 0;  // fibers run one at a time: no atomics needed
  fs::DetScheduler s(options(policy));
  for (int i = 0; i < fibers; ++i) {
    s.spawn("f", [&, per_fiber] {
      if (++started == fibers && bytes_per_fiber != nullptr) at_full = resident_bytes();
      for (std::uint64_t j = 0; j < per_fiber; ++j) fl::schedule_point(fl::Point::kUser, nullptr);
    });
  }
  const bool done = s.run() == fs::DetOutcome::kDone;
  if (bytes_per_fiber != nullptr) *bytes_per_fiber = static_cast<double>(at_full - before) / fibers;
  return done ? s.steps() : 0;
}

// Arg 0: fibers; arg 1: policy (0 random, 1 pct).
void BM_SchedPoints(benchmark::State& state) {
  const auto fibers = static_cast<int>(state.range(0));
  const auto policy = static_cast<fs::Policy>(state.range(1));
  fl::set_backend(fl::Backend::kFiber);
  // Untimed: the first run in a process faults its stacks in (two pages per
  // fiber, ~1 s for 10,000 fibers on a VM where a fault costs tens of us);
  // later runs reuse them, as a seed sweep's runs do.
  points_run(fibers, policy);
  std::uint64_t points = 0;
  for (auto _ : state) {
    const std::uint64_t n = points_run(fibers, policy);
    if (n == 0) {
      state.SkipWithError("the run did not finish");
      break;
    }
    points += n;
  }
  fl::set_backend(fl::Backend::kStd);
  state.SetItemsProcessed(static_cast<std::int64_t>(points));
  state.SetLabel(policy == fs::Policy::kPct ? "pct" : "random");
}
BENCHMARK(BM_SchedPoints)
    ->ArgsProduct({{2, 100, 1000, 10000, 100000}, {0, 1}})
    ->ArgNames({"fibers", "pct"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_FiberMemory(benchmark::State& state) {
  static bool first = true;
  const auto fibers = static_cast<int>(state.range(0));
  if (!first) {
    state.SkipWithError("not the first benchmark of this process: run it alone (--benchmark_filter)");
    for (auto _ : state) {
    }
    return;
  }
  first = false;
  fl::set_backend(fl::Backend::kFiber);
  double bytes = 0;
  for (auto _ : state) {
    if (points_run(fibers, fs::Policy::kRandom, &bytes) == 0) {
      state.SkipWithError("the run did not finish");
      break;
    }
  }
  fl::set_backend(fl::Backend::kStd);
  state.counters["bytes_per_fiber"] = bytes;
  state.counters["stack_bytes_reserved"] = static_cast<double>(fs::DetOptions{}.stack_bytes);
}
BENCHMARK(BM_FiberMemory)->Arg(1000)->Arg(10000)->Arg(100000)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// A run whose fibers return at once: thread, fiber and actor creation.
void BM_SchedSetup(benchmark::State& state) {
  const auto fibers = static_cast<int>(state.range(0));
  fl::set_backend(fl::Backend::kFiber);
  points_run(fibers, fs::Policy::kRandom);  // untimed, as above
  for (auto _ : state) {
    fs::DetScheduler s(options(fs::Policy::kRandom));
    for (int i = 0; i < fibers; ++i) s.spawn("f", [] {});
    if (s.run() != fs::DetOutcome::kDone) {
      state.SkipWithError("the run did not finish");
      break;
    }
  }
  fl::set_backend(fl::Backend::kStd);
  state.SetItemsProcessed(state.iterations() * fibers);
}
BENCHMARK(BM_SchedSetup)->Arg(2)->Arg(1000)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) { return faultline::bench::run_with_second_thread(argc, argv); }
