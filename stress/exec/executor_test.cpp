// Executors: what a body can rely on whichever carries it.
#include "stress/exec/executor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "locking/locking.h"

namespace faultline::stress {
namespace {

locking::LockClass spin_class{"executor test", locking::LockKind::kMutex};

// Restores the process-wide lock backend a test changes.
struct FiberBackend {
  FiberBackend() { locking::set_backend(locking::Backend::kFiber); }
  ~FiberBackend() { locking::set_backend(locking::Backend::kStd); }
};

Config fibers_mt(int os_threads, std::uint32_t perturb_ppm) {
  Config c;
  c.executor = ExecutorKind::kFibersMt;
  c.os_threads = os_threads;
  c.perturb_ppm = perturb_ppm;
  return c;
}

// A fiber that retries until another fiber acts (as a fault that finds the
// map changed retries until the changer is done) must not keep its carrier
// for ever: fibers are not preempted, so the executor yields it at schedule
// points.  On one carrier with perturbation off, the spinner starts first
// and the setter only runs if the spinner is made to yield.
TEST(FibersMtExecutor, YieldsAFiberThatSpinsThroughSchedulePoints) {
  FiberBackend backend;
  auto ex = make_executor(fibers_mt(1, 0));
  locking::Mutex mtx{spin_class, "spin"};
  std::atomic<bool> flag{false};
  std::atomic<std::uint64_t> spins{0};
  constexpr std::uint64_t kGiveUp = 5'000'000;
  std::string error;
  ASSERT_TRUE(ex->spawn("spinner", [&] {
    std::uint64_t n = 0;
    while (!flag.load() && n < kGiveUp) {
      mtx.lock();
      mtx.unlock();
      ++n;
    }
    spins.store(n);
  }, &error)) << error;
  ASSERT_TRUE(ex->spawn("setter", [&] { flag.store(true); }, &error)) << error;
  EXPECT_EQ(ex->run(), RunEnd::kDone);
  EXPECT_TRUE(flag.load());
  EXPECT_LT(spins.load(), kGiveUp) << "the spinner kept its carrier: the setter never ran";
}

// A pager's I/O (schedule point kIo with a latency) takes that long on
// fibers over threads too, sleeping only the fiber: the other fiber on the
// same carrier runs meanwhile.
TEST(FibersMtExecutor, SimulatedIoSleepsTheFiberNotTheCarrier) {
  FiberBackend backend;
  auto ex = make_executor(fibers_mt(1, 0));
  std::atomic<bool> io_done{false}, other_ran_during_io{false};
  std::chrono::steady_clock::duration io_time{};
  std::string error;
  ASSERT_TRUE(ex->spawn("io", [&] {
    const auto t0 = std::chrono::steady_clock::now();
    locking::schedule_point(locking::Point::kIo, &io_done, 20'000);
    io_time = std::chrono::steady_clock::now() - t0;
    io_done.store(true);
  }, &error)) << error;
  ASSERT_TRUE(ex->spawn("other", [&] { other_ran_during_io.store(!io_done.load()); }, &error)) << error;
  EXPECT_EQ(ex->run(), RunEnd::kDone);
  EXPECT_GE(io_time, std::chrono::milliseconds(20));
  EXPECT_TRUE(other_ran_during_io.load());
}

// Each run has a work-stealing pool of its own (Boost's work_stealing sets
// its registry up once per process, sized for the first run's carriers), so
// a second run with more carriers works, and every carrier runs fibers:
// the ones spawned before the run all start on carrier 0, and the others
// steal them.
TEST(FibersMtExecutor, EachRunHasItsOwnCarriersAndTheyStealWork) {
  FiberBackend backend;
  for (int carriers : {2, 3}) {
    auto ex = make_executor(fibers_mt(carriers, 0));
    std::mutex mtx;
    std::set<std::thread::id> ran_on;
    std::atomic<int> ran{0};
    std::string error;
    for (int i = 0; i < 64; ++i) {
      ASSERT_TRUE(ex->spawn("worker", [&] {
        // Busy long enough for the other carriers to come and steal.
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2);
        while (std::chrono::steady_clock::now() < until) {
        }
        {
          std::lock_guard<std::mutex> l(mtx);
          ran_on.insert(std::this_thread::get_id());
        }
        ran.fetch_add(1);
      }, &error)) << error;
    }
    EXPECT_EQ(ex->run(), RunEnd::kDone);
    EXPECT_EQ(ran.load(), 64);
    EXPECT_EQ(ran_on.size(), static_cast<std::size_t>(carriers)) << carriers << " carriers";
  }
}

}  // namespace
}  // namespace faultline::stress
