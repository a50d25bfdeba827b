#include "locking/mutex.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "locking/test_util.h"

namespace faultline::locking {
namespace {

using testing::LockingTest;
using testing::run_fibers;
using testing::run_threads;

LockClass counter_class{"test counter", LockKind::kMutex};

struct Counter {
  Mutex mtx{counter_class, "counter"};
  long value FL_GUARDED_BY(mtx) = 0;
};

class MutexBackendTest : public LockingTest, public ::testing::WithParamInterface<Backend> {};

TEST_P(MutexBackendTest, ExcludesAcrossThreads) {
  set_backend(GetParam());
  ScopedReportCapture cap(Mode::kReport);
  Counter c;
  constexpr int kThreads = 8, kIters = 20000;
  auto body = [&](int) {
    for (int i = 0; i < kIters; ++i) {
      MutexLock l(c.mtx);
      c.value = c.value + 1;
    }
  };
  if (is_fiber(GetParam())) {
    run_fibers(kThreads, [&](int i) {
      for (int k = 0; k < kIters / 100; ++k) {
        MutexLock l(c.mtx);
        long v = c.value;
        boost::this_fiber::yield();  // hold across a switch: others must wait
        c.value = v + 1;
      }
      (void)i;
    });
    MutexLock l(c.mtx);
    EXPECT_EQ(c.value, kThreads * (kIters / 100));
  } else {
    run_threads(kThreads, body);
    MutexLock l(c.mtx);
    EXPECT_EQ(c.value, long{kThreads} * kIters);
  }
  EXPECT_EQ(cap.size(), 0u);
}

TEST_P(MutexBackendTest, TryLockFailsWhileHeldElsewhere) {
  set_backend(GetParam());
  ScopedReportCapture cap(Mode::kReport);
  Mutex m(counter_class);
  m.lock();
  bool other_got = true;
  if (is_fiber(GetParam())) {
    run_fibers(1, [&](int) { other_got = m.try_lock(); });
  } else {
    run_threads(1, [&](int) { other_got = m.try_lock(); });
  }
  EXPECT_FALSE(other_got);
  EXPECT_TRUE(m.owned());
  m.unlock();
  if (m.try_lock())
    m.unlock();
  else
    ADD_FAILURE() << "try_lock of a free mutex failed";
  EXPECT_EQ(cap.size(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Backends, MutexBackendTest, ::testing::ValuesIn(kAllBackends),
                         [](const auto& info) {
                           std::string n = backend_name(info.param);
                           for (char& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

TEST_F(LockingTest, OwnershipIsPerActor) {
  Mutex m(counter_class);
  EXPECT_FALSE(m.owned());
  m.lock();
  EXPECT_TRUE(m.owned());
  EXPECT_EQ(m.owner(), &current_actor());
  bool owned_elsewhere = true;
  run_threads(1, [&](int) { owned_elsewhere = m.owned(); });
  EXPECT_FALSE(owned_elsewhere);
  m.unlock();
  EXPECT_EQ(m.owner(), nullptr);
}

TEST_F(LockingTest, FibersAreSeparateActors) {
  set_backend(Backend::kFiber);
  Mutex m(counter_class);
  const Actor* a0 = nullptr;
  const Actor* a1 = nullptr;
  run_fibers(2, [&](int i) {
    ActorScope scope(i == 0 ? "fiber-a" : "fiber-b");
    (i == 0 ? a0 : a1) = &current_actor();
    EXPECT_EQ(current_actor().name(), i == 0 ? "fiber-a" : "fiber-b");
    boost::this_fiber::yield();
    EXPECT_EQ(&current_actor(), i == 0 ? a0 : a1);
  });
  EXPECT_NE(a0, a1);
}

TEST_F(LockingTest, SetBackendRefusesWhileLocksOfAnotherBackendLive) {
  auto m = std::make_unique<Mutex>(counter_class);
  try {
    set_backend(Backend::kFiber);
    FAIL() << "set_backend should have thrown";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("backend std"), std::string::npos) << e.what();
  }
  EXPECT_EQ(current_backend(), Backend::kStd);
  m.reset();
  set_backend(Backend::kFiber);
  EXPECT_EQ(current_backend(), Backend::kFiber);
}

TEST(BackendNames, RoundTrip) {
  for (Backend b : kAllBackends) EXPECT_EQ(parse_backend(backend_name(b)), b);
  EXPECT_FALSE(parse_backend("spinlock").has_value());
  EXPECT_EQ(parse_mode("abort"), Mode::kAbort);
  EXPECT_FALSE(parse_mode("loud").has_value());
}

}  // namespace
}  // namespace faultline::locking

namespace faultline::locking {
namespace {

// Many short-lived fibers: contexts are reused at the same addresses, and a
// fiber must never be handed a dead fiber's actor.
TEST_F(LockingTest, FiberActorsAreNeverStale) {
  set_backend(Backend::kFiber);
  // Built with fmt, not operator+ chains: g++ 12 at -O3 warns -Wrestrict
  // falsely inside libstdc++'s string concatenation.
  auto name = [](int round, int i) { return fmt::format("r{}-f{}", round, i); };
  for (int round = 0; round < 50; ++round) {
    std::vector<std::string> seen(4);
    testing::run_fibers(4, [&](int i) {
      ActorScope scope(name(round, i));
      boost::this_fiber::yield();
      seen[static_cast<std::size_t>(i)] = current_actor().name();
    });
    for (int i = 0; i < 4; ++i) EXPECT_EQ(seen[static_cast<std::size_t>(i)], name(round, i));
    // An implicit actor per fiber, also never shared (compared by id: these
    // fibers run one after another, so actors may reuse freed addresses).
    std::vector<std::uint64_t> implicit(3);
    testing::run_fibers(3, [&](int i) { implicit[static_cast<std::size_t>(i)] = current_actor().id(); });
    EXPECT_NE(implicit[0], implicit[1]);
    EXPECT_NE(implicit[1], implicit[2]);
  }
}

}  // namespace
}  // namespace faultline::locking
