// The main() of faultline's benchmark programs.  A second thread is parked
// for the whole run: until one exists, glibc skips atomic instructions in its
// locks and every lock figure would be flattering.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

#include <benchmark/benchmark.h>

namespace faultline::bench {

inline int run_with_second_thread(int argc, char** argv) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread parked([&] {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return done; });
  });
  benchmark::Initialize(&argc, argv);
  int rc = 0;
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
    rc = 2;
  } else {
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
  }
  {
    std::lock_guard<std::mutex> l(mu);
    done = true;
  }
  cv.notify_one();
  parked.join();
  return rc;
}

}  // namespace faultline::bench
