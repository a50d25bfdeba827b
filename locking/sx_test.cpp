#include "locking/sx.h"

#include <atomic>

#include <gtest/gtest.h>

#include "locking/test_util.h"

namespace faultline::locking {
namespace {

using testing::LockingTest;
using testing::run_fibers;
using testing::run_threads;

LockClass sx_class{"test sx", LockKind::kSx};

struct Guarded {
  SxLock lock{sx_class, "guarded"};
  long value FL_GUARDED_BY(lock) = 0;
};

TEST_F(LockingTest, SxSharedHoldersOverlap) {
  ScopedReportCapture cap(Mode::kReport);
  SxLock sx(sx_class);
  std::atomic<int> inside{0}, max_inside{0};
  run_threads(4, [&](int) {
    SxSharedLock s(sx);
    int n = ++inside;
    int m = max_inside.load();
    while (n > m && !max_inside.compare_exchange_weak(m, n)) {
    }
    while (max_inside.load() < 4) std::this_thread::yield();  // all four in at once
    --inside;
  });
  EXPECT_EQ(max_inside.load(), 4);
  EXPECT_EQ(cap.size(), 0u);
}

TEST_F(LockingTest, SxExclusiveExcludes) {
  for (Backend b : {Backend::kStd, Backend::kFutex, Backend::kFiber}) {
    set_backend(b);
    ScopedReportCapture cap(Mode::kReport);
    Guarded g;
    auto body = [&](int) {
      for (int i = 0; i < 2000; ++i) {
        if (i % 3 == 0) {
          SxSharedLock s(g.lock);
          EXPECT_GE(g.value, 0);
        } else {
          SxExclusiveLock x(g.lock);
          long v = g.value;
          if (is_fiber(b) && i % 16 == 0) boost::this_fiber::yield();
          g.value = v + 1;
        }
      }
    };
    if (is_fiber(b))
      run_fibers(8, body);
    else
      run_threads(8, body);
    {
      SxSharedLock s(g.lock);
      long expect = 0;
      for (int i = 0; i < 2000; ++i) expect += i % 3 != 0;
      EXPECT_EQ(g.value, 8 * expect) << backend_name(b);
    }
    EXPECT_EQ(cap.size(), 0u);
  }
  set_backend(Backend::kStd);
}

// Upgrade and downgrade change the mode, which the static analysis cannot
// follow (see sx.h); the run-time assertions check it instead.
void upgrade_only_for_the_sole_sharer() FL_NO_THREAD_SAFETY_ANALYSIS {
  ScopedReportCapture cap(Mode::kReport);
  SxLock sx(sx_class);
  sx.slock();
  ASSERT_TRUE(sx.try_upgrade());
  sx.assert_xlocked();
  EXPECT_TRUE(sx.xlocked());
  sx.downgrade();
  sx.assert_slocked();
  EXPECT_FALSE(sx.xlocked());
  EXPECT_EQ(sx.sharers(), 1u);

  std::atomic<bool> other_in{false}, release{false};
  std::thread other([&] {
    sx.slock();
    other_in = true;
    while (!release) std::this_thread::yield();
    sx.sunlock();
  });
  while (!other_in) std::this_thread::yield();
  EXPECT_FALSE(sx.try_upgrade());  // two sharers
  sx.assert_slocked();             // the shared hold is kept
  EXPECT_EQ(sx.sharers(), 2u);
  release = true;
  other.join();
  sx.unlock();
  EXPECT_EQ(sx.sharers(), 0u);
  EXPECT_EQ(cap.size(), 0u);
}

TEST_F(LockingTest, SxUpgradeOnlyForTheSoleSharer) { upgrade_only_for_the_sole_sharer(); }

TEST_F(LockingTest, SxWritersArePreferred) {
  ScopedReportCapture cap(Mode::kReport);
  SxLock sx(sx_class);
  sx.slock();
  std::atomic<int> stage{0};
  std::thread writer([&] {
    sx.xlock();
    stage = 1;
    sx.xunlock();
  });
  while (sx.exclusive_waiters() == 0) std::this_thread::yield();  // queued behind us
  std::atomic<bool> reader_in{false};
  std::thread reader([&] {
    sx.slock();
    reader_in = true;
    EXPECT_EQ(stage.load(), 1);  // came in after the writer
    sx.sunlock();
  });
  while (sx.shared_waiters() == 0) std::this_thread::yield();  // queued behind the writer
  EXPECT_FALSE(reader_in.load());
  bool third_got = true;  // a waiting writer blocks new sharers, even try_slock
  run_threads(1, [&](int) {
    if (sx.try_slock()) {
      sx.sunlock();
    } else {
      third_got = false;
    }
  });
  EXPECT_FALSE(third_got);
  sx.sunlock();
  writer.join();
  reader.join();
  EXPECT_TRUE(reader_in.load());
  EXPECT_EQ(cap.size(), 0u);
}

}  // namespace
}  // namespace faultline::locking

namespace faultline::locking {
namespace {

// Mixed shared / exclusive / try / upgrade / downgrade traffic: a writer is
// never inside with anyone else, and sharers only with sharers.
void sx_mixed_traffic() FL_NO_THREAD_SAFETY_ANALYSIS {
  static LockClass mixed_class{"test sx mixed", LockKind::kSx};
  SxLock sx(mixed_class);
  std::atomic<int> readers{0}, writers{0}, violations{0};
  auto in_exclusive = [&] {
    if (writers.fetch_add(1) != 0 || readers.load() != 0) ++violations;
    writers.fetch_sub(1);
  };
  auto in_shared = [&] {
    readers.fetch_add(1);
    if (writers.load() != 0) ++violations;
    readers.fetch_sub(1);
  };
  testing::run_threads(8, [&](int t) {
    unsigned x = 12345u + static_cast<unsigned>(t);
    for (int i = 0; i < 20000; ++i) {
      x = x * 1103515245u + 12345u;
      switch ((x >> 16) % 6) {
        case 0: sx.slock(); in_shared(); sx.sunlock(); break;
        case 1: sx.xlock(); in_exclusive(); sx.xunlock(); break;
        case 2: if (sx.try_slock()) { in_shared(); sx.sunlock(); } break;
        case 3: if (sx.try_xlock()) { in_exclusive(); sx.xunlock(); } break;
        case 4:
          sx.slock();
          if (sx.try_upgrade()) {
            in_exclusive();
            sx.downgrade();
          }
          in_shared();
          sx.sunlock();
          break;
        default: sx.xlock(); in_exclusive(); sx.downgrade(); in_shared(); sx.unlock(); break;
      }
    }
  });
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(sx.sharers(), 0u);
  EXPECT_EQ(sx.exclusive_waiters(), 0u);
  EXPECT_EQ(sx.shared_waiters(), 0u);
}

TEST_F(LockingTest, SxMixedTrafficKeepsExclusion) {
  ScopedReportCapture cap(Mode::kReport);
  sx_mixed_traffic();
  EXPECT_EQ(cap.size(), 0u);
}

}  // namespace
}  // namespace faultline::locking
