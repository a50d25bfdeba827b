#include "locking/sleep.h"

#include <algorithm>
#include <atomic>
#include <memory>

#include <gtest/gtest.h>

#include "locking/test_util.h"

namespace faultline::locking {
namespace {

using namespace std::chrono_literals;
using testing::LockingTest;
using testing::run_fibers;
using testing::run_threads;

LockClass interlock_class{"test interlock", LockKind::kMutex};
LockClass other_class{"test other", LockKind::kMutex};

struct Flag {
  Mutex mtx{interlock_class, "flag"};
  bool set FL_GUARDED_BY(mtx) = false;
};

TEST_F(LockingTest, SleepUntilWokenRetakesInterlock) {
  ScopedReportCapture cap(Mode::kReport);
  Flag f;
  std::atomic<bool> was_woken{false};
  std::thread sleeper([&] {
    MutexLock l(f.mtx);
    while (!f.set) EXPECT_EQ(msleep(&f, f.mtx, "tflag"), SleepResult::kWoken);
    f.mtx.assert_owned();
    was_woken = true;
  });
  while (sleepers(&f) == 0) std::this_thread::yield();
  {
    MutexLock l(f.mtx);
    f.set = true;
  }
  EXPECT_EQ(wakeup(&f), 1u);
  sleeper.join();
  EXPECT_TRUE(was_woken);
  EXPECT_EQ(cap.size(), 0u);
}

TEST_F(LockingTest, SleepDropReturnsWithoutInterlock) {
  ScopedReportCapture cap(Mode::kReport);
  Flag f;
  std::thread sleeper([&] {
    f.mtx.lock();
    EXPECT_EQ(msleep_drop(&f, f.mtx, "tdrop"), SleepResult::kWoken);
    EXPECT_FALSE(f.mtx.owned());
    f.mtx.assert_not_owned();
  });
  while (sleepers(&f) == 0) std::this_thread::yield();
  EXPECT_EQ(wakeup(&f), 1u);
  sleeper.join();
  EXPECT_EQ(cap.size(), 0u);
}

TEST_F(LockingTest, SleepTimesOut) {
  ScopedReportCapture cap(Mode::kReport);
  Flag f;
  MutexLock l(f.mtx);
  EXPECT_EQ(msleep(&f, f.mtx, "ttmo", 2ms), SleepResult::kTimedOut);
  f.mtx.assert_owned();
  EXPECT_EQ(sleepers(&f), 0u);  // the timed-out sleeper left the queue
  EXPECT_EQ(cap.size(), 0u);
}

TEST_F(LockingTest, WakeupOneTakesTheLongestSleeper) {
  ScopedReportCapture cap(Mode::kReport);
  set_backend(Backend::kFiber);
  Mutex mtx(interlock_class);
  int chan = 0;
  std::vector<int> order;
  run_fibers(4, [&](int i) {
    if (i < 3) {
      MutexLock l(mtx);
      msleep(&chan, mtx, "tfifo");
      order.push_back(i);
    } else {
      while (sleepers(&chan) < 3) boost::this_fiber::yield();
      for (int k = 0; k < 3; ++k) {
        EXPECT_TRUE(wakeup_one(&chan));
        while (order.size() < static_cast<std::size_t>(k + 1)) boost::this_fiber::yield();
      }
      EXPECT_FALSE(wakeup_one(&chan));
    }
  });
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(cap.size(), 0u);
}

TEST_F(LockingTest, SleepingWithANonSleepableLockIsReported) {
  ScopedReportCapture cap(Mode::kReport);
  Mutex other(other_class, "other");
  Flag f;
  MutexLock lo(other);
  MutexLock lf(f.mtx);
  const int line = __LINE__ + 1;
  msleep(&f, f.mtx, "tbad", 1ms);
  ASSERT_EQ(cap.count(ReportKind::kSleepWithLock), 1u);
  EXPECT_EQ(cap.at(0).first_class, "test other");
  EXPECT_EQ(cap.at(0).second_site, "locking/sleep_test.cpp:" + std::to_string(line));
  EXPECT_NE(cap.at(0).message.find("\"tbad\""), std::string::npos);
}

// A timed sleep of the lock library: one schedule point of kind `kind` on
// `chan`, with the duration as its argument, and a sleep: taken holding a
// mutex, it is reported with its wait message.
using TimedSleep = void (*)(const void*, const char*, std::uint32_t, const Site&);
void expect_timed_sleep(TimedSleep sleep, Point kind, const char* wmesg, const char* wmesg_under_mutex) {
  ScopedReportCapture cap(Mode::kReport);
  struct Seen {
    Point kind;
    const void* object = nullptr;
    std::uint32_t arg = 0;
    int n = 0;
  } seen{kind};
  set_point_hook(
      [](const PointInfo& info, void* ctx) {
        auto* s = static_cast<Seen*>(ctx);
        if (info.point != s->kind) return;
        s->object = info.object;
        s->arg = info.arg;
        ++s->n;
      },
      &seen);
  int chan = 0;
  sleep(&chan, wmesg, 250, Site::current());
  set_point_hook(nullptr, nullptr);
  EXPECT_EQ(seen.n, 1);
  EXPECT_EQ(seen.object, &chan);
  EXPECT_EQ(seen.arg, 250u);
  EXPECT_EQ(cap.size(), 0u);
  Mutex other(other_class, "other");
  {
    MutexLock l(other);
    sleep(&chan, wmesg_under_mutex, 1, Site::current());  // no hook: the thread really sleeps
  }
  ASSERT_EQ(cap.count(ReportKind::kSleepWithLock), 1u);
  EXPECT_NE(cap.at(0).message.find(std::string("\"") + wmesg_under_mutex + "\""), std::string::npos)
      << cap.at(0).message;
}

// pause(9): a schedule point the harness spends as time (kPause).
TEST_F(LockingTest, PauseIsATimedSchedulePointAndNotUnderAMutex) {
  expect_timed_sleep(&pause, Point::kPause, "tpause", "tbadpause");
}

// io_sleep: a pager's wait for its transfer ("swread", ...), of kind kIo.
TEST_F(LockingTest, IoSleepIsAnIoSchedulePointAndNotUnderAMutex) {
  expect_timed_sleep(&io_sleep, Point::kIo, "swread", "vnread");
}

TEST_F(LockingTest, DumpShowsSleepersAndHeldLocks) {
  ScopedReportCapture cap(Mode::kReport);
  Flag f;
  Mutex other(other_class, "held-one");
  std::thread sleeper([&] {
    ActorScope scope("dump-sleeper");
    MutexLock l(f.mtx);
    while (!f.set) msleep(&f, f.mtx, "tdump");
  });
  while (sleepers(&f) == 0) std::this_thread::yield();
  std::string dump;
  {
    MutexLock l(other);
    dump = dump_all_locks();
  }
  EXPECT_NE(dump.find("\"dump-sleeper\": sleeping on"), std::string::npos) << dump;
  EXPECT_NE(dump.find("\"tdump\""), std::string::npos) << dump;
  EXPECT_NE(dump.find("exclusive \"test other\" (held-one) @ locking/sleep_test.cpp:"),
            std::string::npos)
      << dump;
  {
    MutexLock l(f.mtx);
    f.set = true;
  }
  wakeup(&f);
  sleeper.join();
}

// Pairs of actors hand a turn back and forth through one channel per pair,
// with the pair's mutex as interlock.  Every sleep that returns "woken" must
// match one sleeper counted by a wakeup call, and every handoff must arrive.
struct Pair {
  explicit Pair() : mtx(interlock_class, "pair") {}
  Mutex mtx;
  int turn FL_GUARDED_BY(mtx) = 0;
  int handoffs FL_GUARDED_BY(mtx) = 0;
};

struct PingPongCounts {
  std::atomic<long> woken_sleeps{0};
  std::atomic<long> delivered{0};
  std::atomic<long> sleeps{0};
};

void ping_pong(Pair& p, int me, int rounds, PingPongCounts& counts) {
  for (int r = 0; r < rounds; ++r) {
    p.mtx.lock();
    while (p.turn != me) {
      counts.sleeps.fetch_add(1, std::memory_order_relaxed);
      if (msleep(&p.turn, p.mtx, "pingpong") == SleepResult::kWoken)
        counts.woken_sleeps.fetch_add(1, std::memory_order_relaxed);
    }
    p.turn = 1 - me;
    ++p.handoffs;
    p.mtx.unlock();
    counts.delivered.fetch_add(static_cast<long>(wakeup(&p.turn)), std::memory_order_relaxed);
  }
}

TEST_F(LockingTest, PingPongThousandThreads) {
  ScopedReportCapture cap(Mode::kReport);
  constexpr int kThreads = 1000, kRounds = 50;
  std::vector<std::unique_ptr<Pair>> pairs;
  for (int i = 0; i < kThreads / 2; ++i) pairs.push_back(std::make_unique<Pair>());
  PingPongCounts counts;
  run_threads(kThreads, [&](int i) {
    ActorScope scope("pingpong-" + std::to_string(i));
    ping_pong(*pairs[static_cast<std::size_t>(i / 2)], i % 2, kRounds, counts);
  });
  for (auto& p : pairs) {
    MutexLock l(p->mtx);
    EXPECT_EQ(p->handoffs, 2 * kRounds);
  }
  EXPECT_EQ(counts.woken_sleeps.load(), counts.delivered.load());
  EXPECT_EQ(counts.woken_sleeps.load(), counts.sleeps.load());  // no timeouts, no spurious returns
  EXPECT_GT(counts.delivered.load(), 0);
  EXPECT_EQ(cap.size(), 0u);
  RecordProperty("sleeps", std::to_string(counts.sleeps.load()));
}

TEST_F(LockingTest, PingPongTenThousandFibers) {
  set_backend(Backend::kFiber);
  ScopedReportCapture cap(Mode::kReport);
  constexpr int kFibers = std::min(10000, testing::kMaxTestFibers), kRounds = 20;
  RecordProperty("fibers", kFibers);
  std::vector<std::unique_ptr<Pair>> pairs;
  for (int i = 0; i < kFibers / 2; ++i) pairs.push_back(std::make_unique<Pair>());
  PingPongCounts counts;
  run_fibers(kFibers, [&](int i) {
    ActorScope scope("fiber-" + std::to_string(i));
    ping_pong(*pairs[static_cast<std::size_t>(i / 2)], i % 2, kRounds, counts);
  });
  for (auto& p : pairs) {
    MutexLock l(p->mtx);
    EXPECT_EQ(p->handoffs, 2 * kRounds);
  }
  EXPECT_EQ(counts.woken_sleeps.load(), counts.delivered.load());
  EXPECT_EQ(counts.woken_sleeps.load(), counts.sleeps.load());
  // Every handoff after a partner's first sleep needs a real wakeup.
  EXPECT_GE(counts.delivered.load(), kFibers / 2 * (2 * kRounds - 2));
  EXPECT_EQ(cap.size(), 0u);
}

TEST_F(LockingTest, PingPongThreadsOnFutexAndTbbBackends) {
  for (Backend b : {Backend::kFutex, Backend::kTbbSpin, Backend::kTbbQueuing}) {
    set_backend(b);
    ScopedReportCapture cap(Mode::kReport);
    std::vector<std::unique_ptr<Pair>> pairs;
    for (int i = 0; i < 8; ++i) pairs.push_back(std::make_unique<Pair>());
    PingPongCounts counts;
    run_threads(16, [&](int i) { ping_pong(*pairs[static_cast<std::size_t>(i / 2)], i % 2, 200, counts); });
    EXPECT_EQ(counts.woken_sleeps.load(), counts.delivered.load()) << backend_name(b);
    EXPECT_EQ(cap.size(), 0u) << backend_name(b);
    pairs.clear();
    set_backend(Backend::kStd);
  }
}

}  // namespace
}  // namespace faultline::locking
