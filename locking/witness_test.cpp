#include "locking/witness.h"

#include <gtest/gtest.h>

#include "locking/test_util.h"

namespace faultline::locking {
namespace {

using testing::LockingTest;
using testing::run_threads;

LockClass class_a{"class A", LockKind::kMutex};
LockClass class_b{"class B", LockKind::kMutex};
LockClass class_c{"class C", LockKind::kMutex};
LockClass chain_class{"chain object", LockKind::kMutex, SameClass::kOrdered};
LockClass flat_class{"flat object", LockKind::kMutex, SameClass::kForbid};
LockClass map_class{"test map", LockKind::kSx};

std::string at_line(int line) { return "locking/witness_test.cpp:" + std::to_string(line); }

// Thread 1 takes A then B; thread 2, after it, takes B then A.  No deadlock
// can happen, yet the reversal must be reported, naming both classes and both
// sites.  With distinct instances (a1, b1 vs a2, b2) no instance-level cycle
// exists at all: only a class-level checker sees this one.
void reversal_case(bool same_instances) {
  ScopedReportCapture cap(Mode::kReport);
  Mutex a1(class_a, "a1"), b1(class_b, "b1"), a2(class_a, "a2"), b2(class_b, "b2");
  Mutex& a = a1;
  Mutex& b = b1;
  Mutex& a_again = same_instances ? a1 : a2;
  Mutex& b_again = same_instances ? b1 : b2;
  int line_t1_a = 0, line_t1_b = 0, line_t2_b = 0, line_t2_a = 0;
  run_threads(1, [&](int) {
    line_t1_a = __LINE__ + 1;
    a.lock();
    line_t1_b = __LINE__ + 1;
    b.lock();
    b.unlock();
    a.unlock();
  });
  EXPECT_EQ(cap.size(), 0u);
  EXPECT_TRUE(witness::ordered_before(class_a, class_b));
  run_threads(1, [&](int) {
    line_t2_b = __LINE__ + 1;
    b_again.lock();
    line_t2_a = __LINE__ + 1;
    a_again.lock();
    a_again.unlock();
    b_again.unlock();
  });
  ASSERT_EQ(cap.size(), 1u);
  Report r = cap.at(0);
  EXPECT_EQ(r.kind, ReportKind::kOrderReversal);
  EXPECT_EQ(r.first_class, "class B");   // held
  EXPECT_EQ(r.second_class, "class A");  // being acquired
  EXPECT_EQ(r.first_site, at_line(line_t2_b));
  EXPECT_EQ(r.second_site, at_line(line_t2_a));
  // The message also shows where the opposite order was first seen.
  for (int line : {line_t1_a, line_t1_b, line_t2_a, line_t2_b})
    EXPECT_NE(r.message.find(at_line(line)), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("\"class A\""), std::string::npos);
  EXPECT_NE(r.message.find("\"class B\""), std::string::npos);

  // Reported once per pair of classes.
  run_threads(1, [&](int) {
    b_again.lock();
    a_again.lock();
    a_again.unlock();
    b_again.unlock();
  });
  EXPECT_EQ(cap.size(), 1u);
}

TEST_F(LockingTest, ReversalNamesBothClassesAndBothSites) { reversal_case(false); }

// The same on one pair of instances.  TSan's own deadlock detector rightly
// flags this instance-level cycle, so CTest runs it separately (see
// CMakeLists.txt) with TSan's detector off for that one process.
using WitnessSameInstance = LockingTest;
TEST_F(WitnessSameInstance, ReversalNamesBothClassesAndBothSites) { reversal_case(true); }

TEST_F(LockingTest, TransitiveReversalShowsThePath) {
  ScopedReportCapture cap(Mode::kReport);
  Mutex a(class_a), b(class_b), c(class_c), c2(class_c), a2(class_a);
  {
    MutexLock la(a);
    MutexLock lb(b);
  }
  {
    MutexLock lb(b);
    MutexLock lc(c);
  }
  EXPECT_TRUE(witness::ordered_before(class_a, class_c));
  EXPECT_EQ(cap.size(), 0u);
  {
    MutexLock lc(c2);
    MutexLock la(a2);  // C before A closes A -> B -> C -> A (other instances)
  }
  ASSERT_EQ(cap.size(), 1u);
  const Report r = cap.at(0);
  EXPECT_EQ(r.kind, ReportKind::kOrderReversal);
  EXPECT_EQ(r.first_class, "class C");
  EXPECT_EQ(r.second_class, "class A");
  EXPECT_NE(r.message.find("\"class A\" @"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("before \"class B\""), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("before \"class C\""), std::string::npos) << r.message;
}

TEST_F(LockingTest, TryLockAddsNoOrder) {
  ScopedReportCapture cap(Mode::kReport);
  Mutex a(class_a), b(class_b);
  {
    MutexLock la(a);
    MutexLock lb(b);
  }
  // B held, A only tried: the pageout daemon's pattern.  Not a reversal.
  b.lock();
  if (a.try_lock())
    a.unlock();
  else
    ADD_FAILURE() << "try_lock of a free mutex failed";
  b.unlock();
  EXPECT_EQ(cap.size(), 0u);
  EXPECT_FALSE(witness::ordered_before(class_b, class_a));
}

TEST_F(LockingTest, DeclaredOrderIsEnforced) {
  ScopedReportCapture cap(Mode::kReport);
  const int declared_line = __LINE__ + 1;
  witness::declare_order({&class_a, &class_b, &class_c});
  EXPECT_TRUE(witness::ordered_before(class_a, class_c));
  Mutex a(class_a), c(class_c);
  {
    MutexLock lc(c);
    MutexLock la(a);
  }
  ASSERT_EQ(cap.size(), 1u);
  EXPECT_EQ(cap.at(0).kind, ReportKind::kOrderReversal);
  EXPECT_NE(cap.at(0).message.find("(declared)"), std::string::npos) << cap.at(0).message;
  EXPECT_NE(cap.at(0).message.find(at_line(declared_line)), std::string::npos) << cap.at(0).message;

  // A declaration against the established order is itself reported.
  witness::declare_order({&class_c, &class_a});
  ASSERT_EQ(cap.size(), 2u);
  EXPECT_EQ(cap.at(1).kind, ReportKind::kDeclaredOrder);
}

TEST_F(LockingTest, SameClassOrderedByKeyIsAccepted) {
  ScopedReportCapture cap(Mode::kReport);
  Mutex top(chain_class, "top"), middle(chain_class, "middle"), bottom(chain_class, "bottom");
  // An object chain locked top first, key = depth.
  top.lock();
  middle.lock_nested(1);
  top.unlock();
  bottom.lock_nested(2);
  bottom.unlock();
  middle.unlock();
  EXPECT_EQ(cap.size(), 0u);
  // Keys must increase: taking depth 1 while holding depth 2 is reported
  // (on other instances: no instance-level cycle, only the class rule).
  Mutex deep(chain_class, "deep"), shallow(chain_class, "shallow");
  deep.lock_nested(2);
  const int bad_line = __LINE__ + 1;
  shallow.lock_nested(1);
  shallow.unlock();
  deep.unlock();
  ASSERT_EQ(cap.size(), 1u);
  EXPECT_EQ(cap.at(0).kind, ReportKind::kSameClass);
  EXPECT_EQ(cap.at(0).second_site, at_line(bad_line));
  EXPECT_NE(cap.at(0).message.find("\"chain object\""), std::string::npos);
}

TEST_F(LockingTest, SameClassUndeclaredIsReported) {
  ScopedReportCapture cap(Mode::kReport);
  Mutex x(flat_class, "x"), y(flat_class, "y");
  x.lock();
  const int line = __LINE__ + 1;
  y.lock();
  y.unlock();
  x.unlock();
  ASSERT_EQ(cap.size(), 1u);
  EXPECT_EQ(cap.at(0).kind, ReportKind::kSameClass);
  EXPECT_EQ(cap.at(0).first_class, "flat object");
  EXPECT_EQ(cap.at(0).second_site, at_line(line));
  // A try-lock of the same class cannot deadlock and is allowed.
  x.lock();
  if (y.try_lock())
    y.unlock();
  else
    ADD_FAILURE() << "try_lock of a free mutex failed";
  x.unlock();
  EXPECT_EQ(cap.size(), 1u);
}

TEST_F(LockingTest, SleepableAfterNonSleepableIsReported) {
  ScopedReportCapture cap(Mode::kReport);
  Mutex a(class_a);
  SxLock map(map_class);
  a.lock();
  map.xlock();
  map.xunlock();
  a.unlock();
  ASSERT_GE(cap.size(), 1u);
  EXPECT_EQ(cap.count(ReportKind::kSleepWithLock), 1u);
}

TEST_F(LockingTest, OffModeChecksNoOrder) {
  ScopedReportCapture cap(Mode::kOff);
  Mutex a(class_a), b(class_b), a2(class_a), b2(class_b);
  {
    MutexLock la(a);
    MutexLock lb(b);
  }
  {
    MutexLock lb(b2);
    MutexLock la(a2);
  }
  EXPECT_EQ(cap.size(), 0u);
  EXPECT_FALSE(witness::ordered_before(class_a, class_b));
}

TEST_F(LockingTest, GraphListsEdgesWithSites) {
  ScopedReportCapture cap(Mode::kReport);
  Mutex a(class_a), b(class_b);
  const int line = __LINE__ + 1;
  MutexLock la(a);
  MutexLock lb(b);
  std::string g = witness::format_graph();
  EXPECT_NE(g.find("\"class A\" @ " + at_line(line) + " before \"class B\""), std::string::npos) << g;
}

using WitnessDeathTest = LockingTest;

void reverse_in_abort_mode() {
  set_mode(Mode::kAbort);
  Mutex a(class_a), b(class_b), a2(class_a), b2(class_b);
  {
    MutexLock la(a);
    MutexLock lb(b);
  }
  MutexLock lb(b2);
  MutexLock la(a2);
}

TEST_F(WitnessDeathTest, AbortModeAbortsOnReversal) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(reverse_in_abort_mode(), "lock order reversal");
}

}  // namespace
}  // namespace faultline::locking
