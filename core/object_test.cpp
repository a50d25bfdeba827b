#include "core/object.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/test_util.h"

namespace faultline::vm {
namespace {

using locking::MutexLock;
using testing::CoreTest;

void populate(Object& o, Pindex n) {
  MutexLock l(o.mtx);
  for (Pindex i = 0; i < n; ++i) {
    Page* m = page_alloc(o, i, kAllocNormal);
    m->valid = kPageBitsAll;
    page_wakeup(m);
    MutexLock pq(o.vm.page_queues);
    page_activate(m);
  }
}

TEST_F(CoreTest, LastDeallocateTerminatesAndFreesPages) {
  Object* o = object_allocate(vm(), ObjectType::kDefault, 8);
  populate(*o, 8);
  EXPECT_EQ(free_pages(), 248u);
  object_reference(*o);
  object_deallocate(o);  // 2 -> 1: still alive
  {
    MutexLock l(o->mtx);
    EXPECT_EQ(o->ref_count, 1);
    EXPECT_EQ(o->pages.size(), 8u);
  }
  EXPECT_EQ(vm().live_objects.load(), 1);
  object_deallocate(o);  // last: terminated, pages freed
  EXPECT_EQ(free_pages(), 256u);
  EXPECT_EQ(vm().live_objects.load(), 0);
  MutexLock pq(vm().page_queues);
  EXPECT_EQ(vm().active.count, 0u);
}

TEST_F(CoreTest, ShadowChainsAndTheirTeardown) {
  Object* base = object_allocate(vm(), ObjectType::kDefault, 8);
  populate(*base, 2);
  // Unshared, unnamed: shadowing is skipped (7.x shortcut).
  Object* o = base;
  Pindex off = 0;
  object_shadow(&o, &off, 8);
  EXPECT_EQ(o, base);
  // Shared (two references, as after fork): a shadow is made.
  object_reference(*base);
  Object* s1 = base;
  Pindex off1 = 2;
  object_shadow(&s1, &off1, 6);
  ASSERT_NE(s1, base);
  EXPECT_EQ(off1, 0u);
  {
    MutexLock l(s1->mtx);
    EXPECT_EQ(s1->backing_object, base);
    EXPECT_EQ(s1->backing_offset, 2u);
    EXPECT_EQ(s1->ref_count, 1);
    EXPECT_EQ(s1->type, ObjectType::kDefault);
  }
  {
    MutexLock l(base->mtx);
    EXPECT_EQ(base->shadow_count, 1);
    EXPECT_EQ(base->ref_count, 2);  // the shadow took over one reference
  }
  object_deallocate(s1);  // terminates s1, drops its reference on base
  {
    MutexLock l(base->mtx);
    EXPECT_EQ(base->shadow_count, 0);
    EXPECT_EQ(base->ref_count, 1);
  }
  object_deallocate(base);
  EXPECT_EQ(free_pages(), 256u);
}

TEST_F(CoreTest, PipWaitSleepsUntilPagingDrains) {
  Object* o = object_allocate(vm(), ObjectType::kDefault, 1);
  {
    MutexLock l(o->mtx);
    object_pip_add(*o, 2);
  }
  std::atomic<bool> drained{false};
  std::thread waiter([&] {
    MutexLock l(o->mtx);
    object_pip_wait(*o, "vmopip");
    drained = true;
    EXPECT_EQ(o->pip, 0);
  });
  while (locking::sleepers(&o->pip) == 0) std::this_thread::yield();
  {
    MutexLock l(o->mtx);
    object_pip_wakeup(*o);
  }
  EXPECT_FALSE(drained.load());  // one still in progress
  {
    MutexLock l(o->mtx);
    object_pip_wakeup(*o);
  }
  waiter.join();
  EXPECT_TRUE(drained.load());
  object_deallocate(o);
}

TEST_F(CoreTest, TerminationWaitsForPagingInProgress) {
  Object* o = object_allocate(vm(), ObjectType::kDefault, 1);
  populate(*o, 1);
  {
    MutexLock l(o->mtx);
    object_pip_add(*o, 1);  // a pager operation in flight
  }
  std::atomic<bool> gone{false};
  std::thread killer([&] {
    object_deallocate(o);
    gone = true;
  });
  while (locking::sleepers(&o->pip) == 0) std::this_thread::yield();
  {
    MutexLock l(o->mtx);
    EXPECT_TRUE(o->flags & kObjDead);  // marked dead before waiting
    EXPECT_FALSE(gone.load());
    object_pip_wakeup(*o);
  }
  killer.join();
  EXPECT_TRUE(gone.load());
  EXPECT_EQ(free_pages(), 256u);
}

// Every object lock carries its object's chain key, whoever takes it and
// however (lock, MutexLock, the relock after a sleep): top-first is
// accepted, a chain locked bottom-up is reported, even by code that locks
// the backing object first with no nesting key at all.
TEST_F(CoreTest, ChainLockedBottomUpIsReported) {
  Object* base = object_allocate(vm(), ObjectType::kDefault, 4);
  object_reference(*base);  // shared, so the shadow is made
  Object* top = base;
  Pindex off = 0;
  object_shadow(&top, &off, 4);
  ASSERT_NE(top, base);
  Object* top2 = top;  // a second level: the chain top2 -> top -> base
  object_reference(*top);
  object_shadow(&top2, &off, 4);
  ASSERT_NE(top2, top);
  {
    MutexLock a(top2->mtx);
    MutexLock b(top->mtx);
    MutexLock c(base->mtx);
  }
  {
    MutexLock a(top2->mtx);  // skipping a level down is still top first
    MutexLock c(base->mtx);
  }
  EXPECT_EQ(capture_->size(), 0u);
  object_deallocate(top2);
  object_deallocate(top);
  object_deallocate(base);
  // Up a chain, in a process of its own: anywhere else ThreadSanitizer's
  // deadlock detector rightly calls the same two mutexes taken in both
  // orders (here, and top first by the teardown) an inversion.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        Object* other = object_allocate(vm(), ObjectType::kDefault, 4);
        object_reference(*other);
        Object* other_top = other;
        Pindex o = 0;
        object_shadow(&other_top, &o, 4);
        {
          MutexLock b(other->mtx);
          MutexLock a(other_top->mtx);  // up the chain: reported
        }
        for (std::size_t i = 0; i < capture_->size(); ++i) std::fprintf(stderr, "%s\n", capture_->at(i).message.c_str());
        std::fflush(stderr);
        std::_Exit(capture_->count(locking::ReportKind::kSameClass) == 1 && other_top != other ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "duplicate lock of same class .* not above held key");
}

}  // namespace
}  // namespace faultline::vm
