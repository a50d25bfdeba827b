// What the scaling benchmarks (scale_bench: the model; host_bench: the host
// kernel) share: the will-it-scale shapes and sharings, the duration of one
// timed run, and the counters every point reports.
//
// A point is one timed run: N workers start together, loop for
// FL_BENCH_SECONDS (default 0.25 s), finish the round they are in, and are
// joined.  Reported with UseManualTime over that whole span, one iteration:
//   touches_per_s         pages touched per second, all workers
//   per_worker            the same divided by the workers: will-it-scale's and
//                         the LKP report's per-task figure; flat means linear
//                         scaling, falling means the workers wait for each other
//   faults_per_touch      faults taken per page touched (a fault may map
//                         neighbours: the model prefaults up to 8, Linux maps
//                         up to 16 around a file read fault)
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

namespace faultline::bench {

// will-it-scale's page_fault1/2/3: map a region, touch each page, unmap.
enum class Shape : int { kAnon = 0, kPrivateFile = 1, kSharedFile = 2 };
// What the workers share:
//   disjoint  each its own address space and its own object (file): only
//             global state is shared (the page queues, the free queue)
//   shared    one address space (threads of one process) and one object
//             (one file; for anon, one shared anonymous object), each worker
//             mapping all of it at its own address
//   hot-page  as shared, but every worker touches only page 0, then removes
//             its own translation of it and touches it again
enum class Sharing : int { kDisjoint = 0, kShared = 1, kHotPage = 2 };

inline const char* shape_name(Shape s) {
  static constexpr const char* kNames[] = {"anon", "private-file", "shared-file"};
  return kNames[static_cast<int>(s)];
}
inline const char* sharing_name(Sharing s) {
  static constexpr const char* kNames[] = {"disjoint", "shared", "hot-page"};
  return kNames[static_cast<int>(s)];
}

// Pages mapped, touched and unmapped per round (will-it-scale maps 128 MiB;
// the model's memory is real bytes, 64 workers x 256 pages x 3 fit easily).
inline constexpr std::uint64_t kRoundPages = 256;

inline double run_seconds() {
  const char* s = std::getenv("FL_BENCH_SECONDS");
  if (s == nullptr || *s == '\0') return 0.25;
  char* end = nullptr;
  const double v = std::strtod(s, &end);
  if (end == s || *end != '\0' || !(v > 0.0 && v <= 60.0)) {
    std::fprintf(stderr, "FL_BENCH_SECONDS=%s: not a duration in seconds in (0, 60]\n", s);
    std::exit(2);
  }
  return v;
}

// Worker counts 1, 2, 4, ... up to 64; FL_BENCH_MAX_WORKERS lowers the top.
inline void worker_args(benchmark::internal::Benchmark* b, const std::vector<std::int64_t>& fixed) {
  std::int64_t top = 64;
  if (const char* s = std::getenv("FL_BENCH_MAX_WORKERS"); s != nullptr && *s != '\0') {
    top = std::strtoll(s, nullptr, 10);
    if (top < 1 || top > 4096) {
      std::fprintf(stderr, "FL_BENCH_MAX_WORKERS=%s: not a worker count in [1, 4096]\n", s);
      std::exit(2);
    }
  }
  for (std::int64_t w = 1; w <= top; w *= 2) {
    std::vector<std::int64_t> args = fixed;
    args.push_back(w);
    b->Args(args);
  }
}

// Every point of a scaling benchmark taking (shape, sharing, write, workers):
// 3 shapes x 3 sharings x read/write x the worker counts, one timed run each
// reported over its own span.
inline void scaling_points(benchmark::internal::Benchmark* b) {
  for (int shape = 0; shape < 3; ++shape)
    for (int sharing = 0; sharing < 3; ++sharing)
      for (int write = 0; write < 2; ++write) worker_args(b, {shape, sharing, write});
  b->ArgNames({"shape", "sharing", "write", "workers"})->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
}

// Start barrier and stop flag of one timed run.
struct RunControl {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::atomic<bool> stop{false};
  void arrive_and_wait() {
    ready.fetch_add(1, std::memory_order_acq_rel);
    while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
  }
  bool stopping() const { return stop.load(std::memory_order_relaxed); }
};

inline void report_point(benchmark::State& state, double seconds, int workers, std::uint64_t touches,
                         std::uint64_t faults) {
  state.SetIterationTime(seconds);
  state.counters["touches"] = static_cast<double>(touches);
  state.counters["touches_per_s"] = static_cast<double>(touches) / seconds;
  state.counters["per_worker"] = static_cast<double>(touches) / seconds / workers;
  state.counters["faults_per_touch"] = touches == 0 ? 0.0 : static_cast<double>(faults) / static_cast<double>(touches);
  state.counters["workers"] = workers;
}

}  // namespace faultline::bench
