// vm_object_deallocate and vm_object_collapse as 7.0 does them, with their
// sleeps and lock drops: each test forces one window and checks that the
// collapse still happens and the data is intact.
#include <atomic>
#include <thread>

#include "core/fault_fixture.h"

namespace faultline::vm {
namespace {

using locking::MutexLock;
using testing::FaultTest;

class CollapseTest : public FaultTest {
 protected:
  // o, mapped at a_ with word i = 100 + i in page i, then forked; the
  // parent's write to page 0 gives it a shadow s_ of o.  o then has two
  // references (s_ and the child's entry) and one shadow; unmapping the
  // child's side (collapse_now) leaves the shadow's only and collapses o
  // into it.
  void SetUp() override {
    FaultTest::SetUp();
    o_ = object_allocate(vm(), ObjectType::kDefault, 4);
    a_ = mmap_object(o_, 4, kProtRead | kProtWrite);
    for (std::uint64_t i = 0; i < 4; ++i) ASSERT_EQ(store(a_ + i * ps(), 100 + i), Kern::kSuccess);
    child_ = &adopt(vmspace_fork(map()));
    ASSERT_EQ(store(a_, 200), Kern::kSuccess);
    s_ = pmap_extract(map().pmap, a_)->object;
    ASSERT_NE(s_, o_);
  }
  void collapse_now() { ASSERT_EQ(map_munmap(*child_, a_, a_ + 4 * ps()), Kern::kSuccess); }
  void expect_collapsed_with_data() {
    EXPECT_EQ(cnt().object_collapses.load(), 1u);
    {
      MutexLock l(s_->mtx);
      EXPECT_EQ(s_->backing_object, nullptr);
    }
    std::uint64_t v = 0;
    ASSERT_EQ(load(a_, &v), Kern::kSuccess);
    EXPECT_EQ(v, 200u);
    for (std::uint64_t i = 1; i < 4; ++i) {
      ASSERT_EQ(load(a_ + i * ps(), &v), Kern::kSuccess);
      EXPECT_EQ(v, 100 + i);
    }
  }
  // Runs `f` on a thread of its own when this thread is about to sleep on
  // `chan` (f may take the sleep's interlock: it gets it once the sleeper
  // has let go of it).  join_waker() after the operation.
  void wake_from_elsewhere(const void* chan, std::function<void()> f) {
    at_first_point(
        [chan](const locking::PointInfo& info) { return info.point == locking::Point::kSleep && info.object == chan; },
        [this, f = std::move(f)] { waker_ = std::thread(f); });
  }
  void join_waker() {
    if (waker_.joinable()) waker_.join();
    locking::set_point_hook(nullptr, nullptr);
  }

  Object* o_ = nullptr;
  Object* s_ = nullptr;
  std::uint64_t a_ = 0;
  Map* child_ = nullptr;
  std::thread waker_;
};

// vm_object_backing_scan (OBSC_COLLAPSE_WAIT) meets a busy page in the
// backing object, one busied by a thread holding no paging in progress (in
// 7.x, a vm_page_grab caller): it sleeps "vmocol" with the shadow unlocked
// and the backing object's lock dropped, then starts over.
TEST_F(CollapseTest, BackingScanSleepsOnABusyPageThenStartsOver) {
  Page* busy = nullptr;
  {
    MutexLock l(o_->mtx);
    busy = page_lookup(*o_, 2);
    ASSERT_NE(busy, nullptr);
    page_busy(busy);
  }
  wake_from_elsewhere(busy, [this, busy] {
    MutexLock l(o_->mtx);
    page_wakeup(busy);
  });
  collapse_now();
  join_waker();
  EXPECT_EQ(cnt().collapse_sleeps.load(), 1u);
  expect_collapsed_with_data();
}

// The shadow is locked elsewhere: vm_object_deallocate undoes its
// decrement, pauses ("vmo_de") and starts over.
TEST_F(CollapseTest, DeallocatePausesWhileTheShadowIsLockedElsewhere) {
  std::atomic<int> stage{0};
  std::thread holder([&] {
    MutexLock l(s_->mtx);
    stage = 1;
    while (stage.load() != 2) std::this_thread::yield();
  });
  while (stage.load() != 1) std::this_thread::yield();
  at_first_point([](const locking::PointInfo& info) { return info.point == locking::Point::kPause; },
                 [&] { stage = 2; });
  collapse_now();
  holder.join();
  locking::set_point_hook(nullptr, nullptr);
  EXPECT_GE(cnt().dealloc_pauses.load(), 1u);
  expect_collapsed_with_data();
}

// Paging in progress on the shadow: vm_object_deallocate sleeps "objde1"
// on it, with the backing object unlocked, then checks that the shadow
// still shadows it and tries again.
TEST_F(CollapseTest, DeallocateWaitsForPagingInProgressOnTheShadow) {
  {
    MutexLock l(s_->mtx);
    object_pip_add(*s_, 1);
  }
  wake_from_elsewhere(&s_->pip, [this] {
    MutexLock l(s_->mtx);
    object_pip_wakeup(*s_);
  });
  collapse_now();
  join_waker();
  EXPECT_EQ(cnt().dealloc_pip_sleeps.load(), 1u);
  expect_collapsed_with_data();
}

// Paging in progress on the backing object: "objde2", with the shadow
// unlocked and the object's lock dropped.
TEST_F(CollapseTest, DeallocateWaitsForPagingInProgressOnTheObject) {
  {
    MutexLock l(o_->mtx);
    object_pip_add(*o_, 1);
  }
  wake_from_elsewhere(&o_->pip, [this] {
    MutexLock l(o_->mtx);
    object_pip_wakeup(*o_);
  });
  collapse_now();
  join_waker();
  EXPECT_EQ(cnt().dealloc_pip_sleeps.load(), 1u);
  expect_collapsed_with_data();
}

}  // namespace
}  // namespace faultline::vm
