// Costs of locking/: uncontended lock+unlock per backend (raw primitive, our
// Mutex with the checker off, with it on), and sleep/wakeup round trips.
//
// A second thread is started before any benchmark runs: until one exists,
// glibc skips atomic instructions in its locks and every figure would be
// flattering.  Targets (issue 2): checker off within 1.5x of the raw backend;
// checker on under 100 ns per lock+unlock.  bench/lock_ratios.py prints the
// medians and ratios of one run.
#include <condition_variable>
#include <memory>
#include <string>
#include <vector>
#include <mutex>
#include <thread>

#include <benchmark/benchmark.h>

#include "bench/bench_main.h"
#include <boost/fiber/all.hpp>
#include <oneapi/tbb/queuing_mutex.h>
#include <oneapi/tbb/spin_mutex.h>

#include "locking/detail/primitives.h"
#include "locking/locking.h"

namespace fl = faultline::locking;

namespace {

fl::LockClass bench_class{"bench object", fl::LockKind::kMutex};
fl::LockClass bench_outer{"bench outer", fl::LockKind::kMutex};

// ---- raw primitives, as each backend's baseline ----

template <class M>
void BM_Raw(benchmark::State& state) {
  M m;
  for (auto _ : state) {
    m.lock();
    m.unlock();
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_Raw<std::mutex>)->Name("raw/std");
BENCHMARK(BM_Raw<fl::detail::FutexMutex>)->Name("raw/futex");
BENCHMARK(BM_Raw<tbb::spin_mutex>)->Name("raw/tbb-spin");
BENCHMARK(BM_Raw<boost::fibers::mutex>)->Name("raw/fiber");

void BM_RawQueuing(benchmark::State& state) {
  tbb::queuing_mutex m;
  for (auto _ : state) {
    tbb::queuing_mutex::scoped_lock l(m);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_RawQueuing)->Name("raw/tbb-queuing");

// ---- our Mutex: arg 0 = backend, arg 1 = checker mode (0 off, 1 on) ----

// Conditional holds of `outer` are beyond the static analysis.
void BM_Mutex(benchmark::State& state) FL_NO_THREAD_SAFETY_ANALYSIS {
  auto b = static_cast<fl::Backend>(state.range(0));
  const bool checker = state.range(1) != 0;
  fl::set_backend(b);
  fl::set_mode(checker ? fl::Mode::kReport : fl::Mode::kOff);
  {
    fl::Mutex outer(bench_outer);
    fl::Mutex m(bench_class);
    // With the checker on, hold one other lock so each acquisition does a
    // real order test against a held lock, as in the fault path.
    if (checker) outer.lock();
    for (auto _ : state) {
      m.lock();
      m.unlock();
      benchmark::ClobberMemory();
    }
    if (checker) outer.unlock();
  }
  fl::set_mode(fl::Mode::kOff);
  fl::set_backend(fl::Backend::kStd);
  state.SetLabel(std::string(fl::backend_name(b)) + (checker ? " checker on" : " checker off"));
}

void MutexArgs(benchmark::internal::Benchmark* bm) {
  for (fl::Backend b : fl::kAllBackends)
    for (int checker : {0, 1}) bm->Args({static_cast<int>(b), checker});
}
BENCHMARK(BM_Mutex)->Apply(MutexArgs);

void BM_SxExclusive(benchmark::State& state) {
  static fl::LockClass sx_class{"bench sx", fl::LockKind::kSx};
  fl::set_mode(state.range(0) ? fl::Mode::kReport : fl::Mode::kOff);
  {
    fl::SxLock sx(sx_class);
    for (auto _ : state) {
      sx.xlock();
      sx.xunlock();
    }
  }
  fl::set_mode(fl::Mode::kOff);
}
BENCHMARK(BM_SxExclusive)->Arg(0)->Arg(1);

void BM_SxShared(benchmark::State& state) {
  static fl::LockClass sx_class{"bench sx shared", fl::LockKind::kSx};
  fl::set_mode(state.range(0) ? fl::Mode::kReport : fl::Mode::kOff);
  {
    fl::SxLock sx(sx_class);
    for (auto _ : state) {
      sx.slock();
      sx.sunlock();
    }
  }
  fl::set_mode(fl::Mode::kOff);
}
BENCHMARK(BM_SxShared)->Arg(0)->Arg(1);

// ---- lock+unlock with locks already held (issue 11) ----
// arg 0: locks held (each of its own class, taken in one order), arg 1:
// checker (0 off, 1 on).  With the checker on, each acquisition tests its
// order against every held lock; off, it is one owner compare plus the
// actor's hold count, and the held locks must cost nothing.

std::vector<std::string>& held_names() {
  static std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (int i = 0; i < 31; ++i) v.push_back("bench held " + std::to_string(i));
    return v;
  }();
  return names;
}

void BM_MutexWithHeld(benchmark::State& state) FL_NO_THREAD_SAFETY_ANALYSIS {
  const int held = static_cast<int>(state.range(0));
  const bool checker = state.range(1) != 0;
  fl::set_mode(checker ? fl::Mode::kReport : fl::Mode::kOff);
  {
    std::vector<std::unique_ptr<fl::LockClass>> classes;
    std::vector<std::unique_ptr<fl::Mutex>> locks;
    for (int i = 0; i < held; ++i) {
      classes.push_back(std::make_unique<fl::LockClass>(held_names()[static_cast<std::size_t>(i)].c_str(),
                                                        fl::LockKind::kMutex));
      locks.push_back(std::make_unique<fl::Mutex>(*classes.back()));
    }
    fl::Mutex m(bench_class);
    for (auto& l : locks) l->lock();
    for (auto _ : state) {
      m.lock();
      m.unlock();
      benchmark::ClobberMemory();
    }
    for (auto it = locks.rbegin(); it != locks.rend(); ++it) (*it)->unlock();
  }
  fl::set_mode(fl::Mode::kOff);
  fl::witness::reset();
  state.SetLabel(std::to_string(held) + " held, checker " + (checker ? "on" : "off"));
}
BENCHMARK(BM_MutexWithHeld)->ArgsProduct({{0, 8, 31}, {0, 1}});

// ---- sleep/wakeup round trips ----

struct Turn {
  fl::Mutex mtx{bench_class, "turn"};
  int turn FL_GUARDED_BY(mtx) = 0;
  bool stop FL_GUARDED_BY(mtx) = false;
};

// Pass the turn to `other` and sleep until it comes back (or stop).
bool hand_over(Turn& t, int me) {
  fl::MutexLock l(t.mtx);
  t.turn = 1 - me;
  fl::wakeup(&t.turn);
  while (t.turn != me && !t.stop) fl::msleep(&t.turn, t.mtx, "bench");
  return !t.stop;
}

// Two OS threads: one round trip = two sleeps and two wakeups.
void BM_SleepWakeupThreads(benchmark::State& state) {
  fl::set_mode(state.range(0) ? fl::Mode::kReport : fl::Mode::kOff);
  {
    Turn t;
    {
      fl::MutexLock l(t.mtx);
      t.turn = 0;
    }
    std::thread partner([&] {
      while (hand_over(t, 1)) {
      }
    });
    for (auto _ : state) hand_over(t, 0);
    {
      fl::MutexLock l(t.mtx);
      t.stop = true;
    }
    fl::wakeup(&t.turn);
    partner.join();
  }
  fl::set_mode(fl::Mode::kOff);
}
BENCHMARK(BM_SleepWakeupThreads)->Arg(0)->Arg(1)->UseRealTime();

// Two fibers on one OS thread.
void BM_SleepWakeupFibers(benchmark::State& state) {
  fl::set_backend(fl::Backend::kFiber);
  fl::set_mode(state.range(0) ? fl::Mode::kReport : fl::Mode::kOff);
  {
    Turn t;
    boost::fibers::fiber partner([&] {
      while (hand_over(t, 1)) {
      }
    });
    boost::fibers::fiber driver([&] {
      for (auto _ : state) hand_over(t, 0);
      {
        fl::MutexLock l(t.mtx);
        t.stop = true;
      }
      fl::wakeup(&t.turn);
    });
    driver.join();
    partner.join();
  }
  fl::set_mode(fl::Mode::kOff);
  fl::set_backend(fl::Backend::kStd);
}
BENCHMARK(BM_SleepWakeupFibers)->Arg(0)->Arg(1)->UseRealTime();

}  // namespace

int main(int argc, char** argv) { return faultline::bench::run_with_second_thread(argc, argv); }
