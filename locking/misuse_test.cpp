// Misuse is reported naming the lock and the site, and the bad operation is
// skipped rather than left to undefined behaviour.  The test bodies misuse
// locks on purpose, so the static analysis is off for them.
#include <gtest/gtest.h>

#include "locking/test_util.h"

namespace faultline::locking {
namespace {

using testing::LockingTest;
using testing::run_threads;

LockClass misuse_class{"misuse object", LockKind::kMutex};
LockClass misuse_sx_class{"misuse map", LockKind::kSx};

std::string at_line(int line) { return "locking/misuse_test.cpp:" + std::to_string(line); }

void UnlockingALockNotHeldIsReportedAndSkippedBody() FL_NO_THREAD_SAFETY_ANALYSIS {
  ScopedReportCapture cap(Mode::kReport);
  Mutex m(misuse_class, "obj 7");
  const int line = __LINE__ + 1;
  m.unlock();
  ASSERT_EQ(cap.size(), 1u);
  EXPECT_EQ(cap.at(0).kind, ReportKind::kNotOwned);
  EXPECT_EQ(cap.at(0).second_site, at_line(line));
  EXPECT_NE(cap.at(0).message.find("\"misuse object\" (obj 7)"), std::string::npos) << cap.at(0).message;
  // Held by another thread: unlocking here must not release it.
  int held_line = 0;
  std::atomic<bool> locked{false}, release{false};
  std::thread owner([&] {
    ActorScope scope("owner");
    held_line = __LINE__ + 1;
    m.lock();
    locked = true;
    while (!release) std::this_thread::yield();
    m.unlock();
  });
  while (!locked) std::this_thread::yield();
  m.unlock();
  ASSERT_EQ(cap.size(), 2u);
  EXPECT_NE(cap.at(1).message.find("held exclusively by actor"), std::string::npos);
  EXPECT_NE(cap.at(1).message.find("\"owner\""), std::string::npos);
  EXPECT_EQ(cap.at(1).first_site, at_line(held_line));
  EXPECT_FALSE(m.try_lock());  // still held by the owner
  release = true;
  owner.join();
  EXPECT_TRUE(m.try_lock());
  m.unlock();
}

TEST_F(LockingTest, UnlockingALockNotHeldIsReportedAndSkipped) { UnlockingALockNotHeldIsReportedAndSkippedBody(); }

void RecursionIsReportedNotDeadlockedBody() FL_NO_THREAD_SAFETY_ANALYSIS {
  ScopedReportCapture cap(Mode::kReport);
  Mutex m(misuse_class, "obj 8");
  const int first = __LINE__ + 1;
  m.lock();
  const int second = __LINE__ + 1;
  m.lock();  // would self-deadlock on a raw mutex
  ASSERT_EQ(cap.size(), 1u);
  EXPECT_EQ(cap.at(0).kind, ReportKind::kRecursion);
  EXPECT_EQ(cap.at(0).first_site, at_line(first));
  EXPECT_EQ(cap.at(0).second_site, at_line(second));
  EXPECT_FALSE(m.try_lock());  // try on a held lock by its owner: also recursion
  EXPECT_EQ(cap.count(ReportKind::kRecursion), 2u);
  m.unlock();
  EXPECT_EQ(m.owner(), nullptr);
}

TEST_F(LockingTest, RecursionIsReportedNotDeadlocked) { RecursionIsReportedNotDeadlockedBody(); }

void DestroyingAHeldLockIsReportedBody() FL_NO_THREAD_SAFETY_ANALYSIS {
  ScopedReportCapture cap(Mode::kReport);
  auto m = std::make_unique<Mutex>(misuse_class, "obj 9");
  const int line = __LINE__ + 1;
  m->lock();
  m.reset();
  ASSERT_EQ(cap.size(), 1u);
  EXPECT_EQ(cap.at(0).kind, ReportKind::kDestroyHeld);
  EXPECT_NE(cap.at(0).message.find("(obj 9)"), std::string::npos);
  EXPECT_EQ(cap.at(0).first_site, at_line(line));
  EXPECT_EQ(current_actor().depth(), 0);  // the dead lock left the held stack
}

TEST_F(LockingTest, DestroyingAHeldLockIsReported) { DestroyingAHeldLockIsReportedBody(); }

void SxMisuseBody() FL_NO_THREAD_SAFETY_ANALYSIS {
  ScopedReportCapture cap(Mode::kReport);
  SxLock sx(misuse_sx_class, "map 1");
  sx.sunlock();
  sx.xunlock();
  EXPECT_EQ(cap.count(ReportKind::kNotOwned), 2u);
  sx.slock();
  sx.slock();  // shared recursion: caught from the held stack
  sx.xlock();  // exclusive while holding shared: a self-deadlock
  EXPECT_EQ(cap.count(ReportKind::kRecursion), 2u);
  sx.sunlock();
  EXPECT_EQ(sx.sharers(), 0u);
  sx.xlock();
  sx.xlock();
  EXPECT_EQ(cap.count(ReportKind::kRecursion), 3u);
  sx.xunlock();
  sx.downgrade();  // not exclusively held any more
  EXPECT_EQ(cap.count(ReportKind::kNotOwned), 3u);
}

TEST_F(LockingTest, SxMisuse) { SxMisuseBody(); }

void FailedAssertionsAreReportedBody() FL_NO_THREAD_SAFETY_ANALYSIS {
  if (!kInvariants) GTEST_SKIP() << "built with FL_INVARIANTS=OFF: ownership assertions are compiled out";
  ScopedReportCapture cap(Mode::kReport);
  Mutex m(misuse_class, "obj 10");
  SxLock sx(misuse_sx_class, "map 2");
  const int line = __LINE__ + 1;
  m.assert_owned();
  sx.assert_xlocked();
  sx.assert_slocked();
  sx.slock();
  sx.assert_slocked();
  sx.assert_locked();
  sx.assert_xlocked();
  sx.assert_unlocked();
  sx.sunlock();
  m.lock();
  m.assert_not_owned();
  m.unlock();
  ASSERT_EQ(cap.count(ReportKind::kAssertion), 6u);
  EXPECT_EQ(cap.at(0).second_site, at_line(line));
  EXPECT_NE(cap.at(0).message.find("expected owned"), std::string::npos) << cap.at(0).message;
}

TEST_F(LockingTest, FailedAssertionsAreReported) { FailedAssertionsAreReportedBody(); }

void SleepWithoutTheInterlockIsReportedBody() FL_NO_THREAD_SAFETY_ANALYSIS {
  ScopedReportCapture cap(Mode::kReport);
  Mutex m(misuse_class);
  int chan = 0;
  EXPECT_EQ(detail::sleep_impl(&chan, &m, "tnolock", 1000000, false, Site::current()), 0);
  EXPECT_EQ(cap.count(ReportKind::kNotOwned), 1u);
}

TEST_F(LockingTest, SleepWithoutTheInterlockIsReported) { SleepWithoutTheInterlockIsReportedBody(); }

void unlock_unheld_in_off_mode() FL_NO_THREAD_SAFETY_ANALYSIS {
  set_mode(Mode::kOff);
  Mutex m(misuse_class, "obj 11");
  m.unlock();
}

void recurse_in_abort_mode() FL_NO_THREAD_SAFETY_ANALYSIS {
  set_mode(Mode::kAbort);
  Mutex m(misuse_class, "obj 12");
  m.lock();
  m.lock();
}

using MisuseDeathTest = LockingTest;

TEST_F(MisuseDeathTest, MisuseAbortsOutsideReportMode) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(unlock_unheld_in_off_mode(),
               "unlocking lock \"misuse object\" \\(obj 11\\) not held");
  EXPECT_DEATH(recurse_in_abort_mode(),
               "recursion on non-recursive lock \"misuse object\" \\(obj 12\\)");
}

}  // namespace
}  // namespace faultline::locking
