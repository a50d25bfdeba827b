// vm_object_deallocate and vm_object_collapse as 7.0 does them, with their
// sleeps and lock drops: each test forces one window and checks that the
// collapse still happens and the data is intact.
#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>

#include "core/fault_fixture.h"

namespace faultline::vm {
namespace {

using locking::MutexLock;
using testing::FaultTest;
using testing::kBase;

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

// vm_object_qcollapse (a collapse while paging is in progress: only idle
// pages move) against a fault that reads a page of the backing object
// through the shadow.  The fault keeps an invalid placeholder in the shadow
// at that index until its very end: it maps the backing page, unbusies it,
// unlocks the backing object, and only then relocks the shadow to free the
// placeholder (seed L891-917 and L154-168; a failed re-lookup, L795-798,
// does the same with the page unmapped).  A fork of another process that
// shares the shadow collapses it in that window (vm_map_copy_entry; the
// fault's paging in progress makes it a quick collapse), and 7.0's scan
// frees the backing page because the shadow has a page at its index, valid
// or not (vm_object.c 1539-1561): a page just mapped, and the only copy of
// its data.  FreeBSD 9.3's scan skips it; so does fix
// qcollapse-skips-invalid.
class QuickCollapseTest : public CollapseTest {
 protected:
  // o_ is left behind s_ with one reference and only page 2 (value 102),
  // and s_ is mapped copy-on-write in a second process, m2_, as well.
  void SetUp() override {
    CollapseTest::SetUp();
    deallocate_during_pageout(o_, s_, 2, [this] { collapse_now(); });
    {
      MutexLock l(o_->mtx);
      ASSERT_EQ(o_->ref_count, 1);
      ASSERT_EQ(o_->pages.size(), 1u);
      p2_ = page_lookup(*o_, 2);
      ASSERT_NE(p2_, nullptr);
    }
    m2_ = &adopt(std::make_unique<Map>(vm(), kBase, kBase + (1ull << 30)));
    object_reference(*s_);
    ASSERT_EQ(map_mmap(*m2_, &b_, 4 * ps(), s_, 0, kProtRead | kProtWrite, kProtAll, kEntryCow | kEntryNeedsCopy,
                       Inherit::kCopy),
              Kern::kSuccess);
  }
  // m2_ reads page 2 while the first process forks in the window.  Returns
  // what m2_ reads (the fault's own mapping is the first thing it reads
  // through, if it is still there).
  std::uint64_t read_with_a_fork_in_the_window() {
    std::unique_ptr<Map> forked;
    Page* p2 = p2_;
    // The fault's lock of the shadow once the backing page is mapped in m2_
    // and unbusied: the lock that frees the placeholder.  (Read unlocked:
    // only this thread runs until the hook fires.)
    Pmap* pmap2 = &m2_->pmap;
    at_first_point(
        [this, p2, pmap2](const locking::PointInfo& info) {
          return info.point == locking::Point::kLock && info.object == &s_->mtx && (p2->oflags & kVpoBusy) == 0 &&
                 std::any_of(p2->pv.begin(), p2->pv.end(), [pmap2](const PvEntry& pv) { return pv.pmap == pmap2; });
        },
        [this, &forked] { std::thread([this, &forked] { forked = vmspace_fork(map()); }).join(); });
    std::uint64_t v = ~std::uint64_t{0};
    EXPECT_EQ(load_in(*m2_, b_ + 2 * ps(), &v), Kern::kSuccess);
    locking::set_point_hook(nullptr, nullptr);
    EXPECT_NE(forked, nullptr) << "the window was not entered";
    if (forked != nullptr) forked_ = &adopt(std::move(forked));
    return v;
  }

  Page* p2_ = nullptr;
  Map* m2_ = nullptr;
  Map* forked_ = nullptr;
  std::uint64_t b_ = 0;
};

TEST_F(QuickCollapseTest, ForkLeavesABackingPageUnderAFaultsPlaceholder) {
  EXPECT_EQ(read_with_a_fork_in_the_window(), 102u);
  EXPECT_EQ(cnt().qcollapse_kept.load(), 1u);
  ASSERT_EQ(cnt().object_collapses.load(), 0u);  // o_ is still there
  {
    MutexLock l(o_->mtx);
    EXPECT_EQ(page_lookup(*o_, 2), p2_) << "the backing page left its object";
    MutexLock pq(vm().page_queues);
    pmap_remove_all(p2_);
  }
  // Not only through the mapping the fault made: every process that shares
  // the chain still finds the page.
  std::uint64_t v = 0;
  ASSERT_EQ(load_in(*m2_, b_ + 2 * ps(), &v), Kern::kSuccess);
  EXPECT_EQ(v, 102u);
  ASSERT_EQ(load(a_ + 2 * ps(), &v), Kern::kSuccess);
  EXPECT_EQ(v, 102u);
  ASSERT_NE(forked_, nullptr);
  ASSERT_EQ(load_in(*forked_, a_ + 2 * ps(), &v), Kern::kSuccess);
  EXPECT_EQ(v, 102u);
}

// 7.0 as written (with collapse-unmaps, which turns the assertion's panic
// into an unmapping): the page goes, and m2_ reads a zero-filled page.
TEST_F(QuickCollapseTest, WithoutTheFixTheForkFreesThePageTheFaultJustMapped) {
  vm().set_fix(Fix::kQcollapseSkipsInvalid, false);
  EXPECT_EQ(read_with_a_fork_in_the_window(), 0u);
  EXPECT_EQ(cnt().qcollapse_kept.load(), 0u);
  ASSERT_EQ(cnt().object_collapses.load(), 0u);  // o_ is still there
  MutexLock l(o_->mtx);
  EXPECT_EQ(page_lookup(*o_, 2), nullptr);
}

// vm_object_collapse's bypass (7.0 vm_object.c 1731-1777): the backing
// object has another reference (the first child's entry), so it cannot be
// merged; the parent's shadow has a valid page over each of its pages, so
// the parent's next fork (vm_map_copy_entry collapses the source) points
// the shadow past it.  Never sleeps: both objects stay locked throughout.
// Three pages, two touched: the shadow is not wholly resident, so the
// OBSC_TEST_ALL_SHADOWED scan decides.
TEST_F(FaultTest, ForkBypassesABackingObjectItsShadowCovers) {
  Object* o = object_allocate(vm(), ObjectType::kDefault, 3);
  const std::uint64_t a = mmap_object(o, 3, kProtRead | kProtWrite);
  ASSERT_EQ(store(a, 10), Kern::kSuccess);
  ASSERT_EQ(store(a + ps(), 11), Kern::kSuccess);
  Map& child = adopt(vmspace_fork(map()));
  ASSERT_EQ(store(a, 20), Kern::kSuccess);
  Object* top = pmap_extract(map().pmap, a)->object;
  ASSERT_NE(top, o);
  ASSERT_EQ(store(a + ps(), 21), Kern::kSuccess);
  Map& child2 = adopt(vmspace_fork(map()));
  EXPECT_EQ(cnt().object_bypasses.load(), 1u);
  EXPECT_EQ(cnt().object_collapses.load(), 0u);
  {
    MutexLock l(top->mtx);
    EXPECT_EQ(top->backing_object, nullptr);
  }
  {
    MutexLock l(o->mtx);
    EXPECT_EQ(o->ref_count, 1);  // the first child's entry
    EXPECT_EQ(o->shadow_count, 0);
  }
  std::uint64_t v = 0;
  for (Map* m : {&map(), &child2}) {
    ASSERT_EQ(load_in(*m, a, &v), Kern::kSuccess);
    EXPECT_EQ(v, 20u);
    ASSERT_EQ(load_in(*m, a + ps(), &v), Kern::kSuccess);
    EXPECT_EQ(v, 21u);
  }
  ASSERT_EQ(load_in(child, a, &v), Kern::kSuccess);
  EXPECT_EQ(v, 10u);
  ASSERT_EQ(load_in(child, a + ps(), &v), Kern::kSuccess);
  EXPECT_EQ(v, 11u);
}

// The same, but the shadow lacks page 1: the backing object still holds
// data the shadow reads through it (vm_object_backing_scan
// OBSC_TEST_ALL_SHADOWED fails), so there is no bypass.
TEST_F(FaultTest, NoBypassOfABackingObjectWithAPageTheShadowLacks) {
  Object* o = object_allocate(vm(), ObjectType::kDefault, 2);
  const std::uint64_t a = mmap_object(o, 2, kProtRead | kProtWrite);
  ASSERT_EQ(store(a, 10), Kern::kSuccess);
  ASSERT_EQ(store(a + ps(), 11), Kern::kSuccess);
  adopt(vmspace_fork(map()));
  ASSERT_EQ(store(a, 20), Kern::kSuccess);
  Object* top = pmap_extract(map().pmap, a)->object;
  Map& child2 = adopt(vmspace_fork(map()));
  EXPECT_EQ(cnt().object_bypasses.load(), 0u);
  {
    MutexLock l(top->mtx);
    EXPECT_EQ(top->backing_object, o);
  }
  std::uint64_t v = 0;
  ASSERT_EQ(load_in(child2, a + ps(), &v), Kern::kSuccess);
  EXPECT_EQ(v, 11u);
}

// A stale translation meets the bypass.  A write fault copies a backing
// page into the shadow and then starts over (here the re-lookup finds the
// protection lowered, L810-820), leaving its process a read-only
// translation of the backing page under the copy (7.x behaviour: see
// FailedCowWriteLeavesTheReadOnlyTranslationOfTheBackingPage).  Now the
// shadow covers every page of the backing object, and a fork bypasses it:
// that translation is of a page outside the process's chain.  Leaves the
// bypass done; returns the backing page.
class BypassTest : public FaultTest {
 protected:
  Page* stale_translation_then_bypass() {
    o_ = object_allocate(vm(), ObjectType::kDefault, 2);
    a_ = mmap_object(o_, 2, kProtRead | kProtWrite);
    EXPECT_EQ(store(a_, 10), Kern::kSuccess);
    EXPECT_EQ(store(a_ + ps(), 11), Kern::kSuccess);
    b_ = cow_mapping_of(o_, a_, 2);  // o_'s other reference
    EXPECT_EQ(store(a_ + ps(), 21), Kern::kSuccess);  // a_'s shadow, with its own page 1
    {
      map_lock_read(map());
      shadow_ = map().lookup_entry(a_)->object;
      map_unlock_read(map());
    }
    EXPECT_NE(shadow_, o_);
    launder_and_free(*shadow_, 1);  // a swap object now: its pager is asked first, the map let go
    std::uint64_t v = 0;
    EXPECT_EQ(load(a_, &v), Kern::kSuccess);
    EXPECT_EQ(v, 10u);
    Page* backing = pmap_extract(map().pmap, a_);
    if (backing == nullptr || backing->object != o_) {
      ADD_FAILURE() << "the read did not map the backing page";
      return nullptr;
    }
    on_lock_of(o_->mtx, 2, [&] { ASSERT_EQ(map_protect(map(), a_, a_ + 2 * ps(), kProtRead), Kern::kSuccess); });
    EXPECT_EQ(vm_fault(map(), a_, kProtRead | kProtWrite, kFaultDirty), Kern::kProtectionFailure);
    locking::set_point_hook(nullptr, nullptr);
    EXPECT_EQ(pmap_extract(map().pmap, a_), backing);  // the stale translation
    forked_ = &adopt(vmspace_fork(map()));  // vm_map_copy_entry collapses the shadow: a bypass
    EXPECT_EQ(cnt().object_bypasses.load(), 1u);
    return backing;
  }
  // b_ goes, here and in the fork: the bypassed object's last references,
  // so it is terminated.
  void unmap_the_other_reference() {
    ASSERT_EQ(map_munmap(*forked_, b_, b_ + 2 * ps()), Kern::kSuccess);
    ASSERT_EQ(map_munmap(map(), b_, b_ + 2 * ps()), Kern::kSuccess);
  }

  Object* o_ = nullptr;
  Object* shadow_ = nullptr;
  Map* forked_ = nullptr;
  std::uint64_t a_ = 0, b_ = 0;
};

TEST_F(BypassTest, BypassRemovesTheStaleTranslationOfACoveredPage) {
  Page* backing = stale_translation_then_bypass();
  ASSERT_NE(backing, nullptr);
  EXPECT_EQ(cnt().bypass_unmapped.load(), 1u);
  EXPECT_NE(pmap_extract(map().pmap, a_), backing);
  unmap_the_other_reference();
  std::uint64_t v = 0;
  ASSERT_EQ(load(a_, &v), Kern::kSuccess);  // from the shadow's copy
  EXPECT_EQ(v, 10u);
  ASSERT_EQ(load(a_ + ps(), &v), Kern::kSuccess);
  EXPECT_EQ(v, 21u);
  ASSERT_EQ(load_in(*forked_, a_, &v), Kern::kSuccess);
  EXPECT_EQ(v, 10u);
}

// 7.0 as written: the translation stays, and the bypassed object's end
// frees a mapped page (7.0's vm_page_free_toq asserts against it).
TEST_F(BypassTest, WithoutTheFixTheBypassedObjectIsFreedUnderAMapping) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  vm().set_fix(Fix::kBypassUnmaps, false);
  Page* backing = stale_translation_then_bypass();
  ASSERT_NE(backing, nullptr);
  EXPECT_EQ(cnt().bypass_unmapped.load(), 0u);
  EXPECT_EQ(pmap_extract(map().pmap, a_), backing);
  EXPECT_DEATH(unmap_the_other_reference(), "terminating an object with a mapped page");
  // Leave a state the teardown can check: the stale translation goes.
  pmap_remove(map().pmap, a_, a_ + ps());
  vm().set_fix(Fix::kBypassUnmaps, true);
}

}  // namespace
}  // namespace faultline::vm
