// The quiescence gate on OS threads: close() returns only once no
// participant is inside, nobody gets in until open(), and the nudge wakes a
// participant asleep inside.
#include "stress/exec/quiesce.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace faultline::stress {
namespace {

locking::LockClass sleep_test_class{"quiesce test sleep", locking::LockKind::kMutex};

TEST(QuiesceGate, CloseWaitsForEveryParticipantAndNobodyEntersUntilOpen) {
  QuiesceGate gate("test gate");
  std::atomic<int> inside{0};
  std::atomic<std::uint64_t> units{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      locking::ActorScope me("participant " + std::to_string(t));
      while (!stop.load()) {
        QuiesceScope in(gate);
        inside.fetch_add(1);
        for (int i = 0; i < 50; ++i) std::this_thread::yield();  // a unit of work, long enough to be caught in
        inside.fetch_sub(1);
        units.fetch_add(1);
      }
    });
  locking::ActorScope me("closer");
  int closes = 0;
  std::uint64_t last = 0;
  int progressed = 0;
  for (; closes < 200; ++closes) {
    gate.close();
    ASSERT_EQ(inside.load(), 0) << "close " << closes << " returned with a participant inside";
    for (int i = 0; i < 20; ++i) std::this_thread::yield();
    ASSERT_EQ(inside.load(), 0) << "close " << closes << ": a participant got in while closed";
    const std::uint64_t u = units.load();
    progressed += u != last ? 1 : 0;
    last = u;
    gate.open();
    for (int i = 0; i < 100; ++i) std::this_thread::yield();
  }
  stop.store(true);
  for (auto& th : threads) th.join();
  EXPECT_EQ(gate.active(), 0u);
  EXPECT_GT(progressed, 100) << "participants rarely ran between two closes";
}

// A participant asleep inside its unit of work, on something only the
// closer can bring about: close() runs the nudge before it waits.
TEST(QuiesceGate, CloseNudgesAParticipantAsleepInside) {
  QuiesceGate gate("test gate");
  locking::Mutex mtx(sleep_test_class);
  int chan = 0;
  bool woken = false;
  std::atomic<bool> entered{false};
  std::thread sleeper([&] {
    locking::ActorScope me("sleeper");
    QuiesceScope in(gate);
    entered.store(true);
    locking::MutexLock l(mtx);
    while (!woken) locking::msleep(&chan, mtx, "nudge me");
  });
  while (!entered.load() || locking::sleepers(&chan) == 0) std::this_thread::yield();
  locking::ActorScope me("closer");
  int nudges = 0;
  gate.close([&] {
    ++nudges;
    locking::MutexLock l(mtx);
    woken = true;
    locking::wakeup(&chan);
  });
  EXPECT_EQ(nudges, 1);
  EXPECT_EQ(gate.active(), 0u);
  gate.open();
  sleeper.join();
}

}  // namespace
}  // namespace faultline::stress
