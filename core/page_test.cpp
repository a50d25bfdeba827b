#include "core/page.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "core/test_util.h"

namespace faultline::vm {
namespace {

using locking::MutexLock;
using testing::CoreTest;

// Frees every page of o.  Requires nothing held.
void free_all(Object& o) {
  MutexLock l(o.mtx);
  MutexLock pq(o.vm.page_queues);
  while (!o.pages.empty()) page_free(o.pages.begin()->second);
}

// An object holding every page an allocation with `flags` can get, so that
// the next one of the same kind fails.  Requires nothing held.
Object* hog_memory(Vm& vm, unsigned flags) {
  Object* hog = object_allocate(vm, ObjectType::kDefault, 1024);
  MutexLock l(hog->mtx);
  Pindex i = 0;
  while (page_alloc(*hog, i, flags) != nullptr) ++i;
  return hog;
}

// Takes every free page (not the cached ones: allocation takes free pages
// first) into a new object.  Requires nothing held.
Object* hog_free_pages(Vm& vm) {
  Object* hog = object_allocate(vm, ObjectType::kDefault, 1024);
  MutexLock l(hog->mtx);
  Pindex i = 0;
  while (vm.free_count.load() > 0) page_alloc(*hog, i++, kAllocSystem);
  return hog;
}

// Caches m (clean, idle, unmapped) as pageout would after laundering it to
// swap: its object becomes a swap object with a copy of m, since 7.0 frees
// rather than caches a page that nothing could bring back.  Requires: m's
// object locked.
void cache_laundered(Page* m) FL_NO_THREAD_SAFETY_ANALYSIS {
  Object& o = *m->object;
  o.type = ObjectType::kSwap;
  o.swap[m->pindex].assign(m->data, m->data + o.vm.page_size());
  m->dirty.store(0);
  m->valid = kPageBitsAll;
  MutexLock pq(o.vm.page_queues);
  page_cache(m);
}

// A write to lent page m of o, on a thread of its own: vm_page_cowfault
// with o and the page queues held, as the fault calls it.
std::thread cowfault_on_thread(Object* o, Page* m) {
  return std::thread([o, m] {
    MutexLock l(o->mtx);
    MutexLock pq(o->vm.page_queues);
    page_cowfault(m);
  });
}

// Page 0 of o, resident, valid (every byte `fill`), active and lent to a
// "socket" (page_loan).  Requires nothing held.
Page* lent_page(Object& o, std::uint8_t fill) {
  MutexLock l(o.mtx);
  Page* m = page_alloc(o, 0, kAllocNormal);
  if (m == nullptr) return nullptr;
  std::memset(m->data, fill, o.vm.page_size());
  m->valid = kPageBitsAll;
  page_wakeup(m);
  MutexLock pq(o.vm.page_queues);
  page_activate(m);
  page_loan(m);
  return m;
}

TEST_F(CoreTest, BootPutsEveryPageOnTheFreeListZeroed) {
  EXPECT_EQ(free_pages(), 256u);
  MutexLock f(vm().free_mtx);
  EXPECT_EQ(vm().free_list.count, 256u);
  for (Page* p = vm().free_list.head; p != nullptr; p = p->q_next) {
    EXPECT_EQ(p->queue, PageQueue::kFree);
    EXPECT_TRUE(p->flags & kPgZero);
  }
}

// FL_KASSERT does not depend on NDEBUG: a page freed while its I/O is in
// progress panics in every build type, `cmake -DCMAKE_BUILD_TYPE=Release`
// (-O3 -DNDEBUG) included.  Only FL_INVARIANTS=OFF compiles it out.
TEST_F(CoreTest, KassertPanicsInEveryBuildTypeFreeingAPageUnderIo) {
  if (!kInvariants) GTEST_SKIP() << "built with FL_INVARIANTS=OFF: KASSERTs are compiled out";
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  Object* o = object_allocate(vm(), ObjectType::kDefault, 16);
  auto free_under_io = [&] {
    MutexLock l(o->mtx);
    Page* m = page_alloc(*o, 0, kAllocNormal);
    if (m == nullptr) return;
    page_io_start(m);
    MutexLock pq(vm().page_queues);
    page_free(m);
  };
  EXPECT_DEATH(free_under_io(),
               "panic: freeing a page with I/O in progress\n"
               "  KASSERT\\(m->busy == 0\\) failed at core/page.cpp:[0-9]+ in page_free");
  EXPECT_EQ(free_pages(), 256u);  // the death happened in a child process
  EXPECT_TRUE(invariants_compiled_in());
  object_deallocate(o);
}

TEST_F(CoreTest, AllocInsertsABusyPageAndFreeReturnsIt) {
  Object* o = object_allocate(vm(), ObjectType::kDefault, 16);
  {
    MutexLock l(o->mtx);
    Page* m = page_alloc(*o, 3, kAllocZero);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(page_lookup(*o, 3), m);
    EXPECT_EQ(m->object, o);
    EXPECT_EQ(m->pindex, 3u);
    EXPECT_TRUE(m->oflags & kVpoBusy);
    EXPECT_TRUE(m->flags & kPgZero);  // asked for zero, got a prezeroed page
    EXPECT_EQ(m->valid, 0);
    EXPECT_EQ(free_pages(), 255u);
    std::memset(m->data, 0xab, vm().page_size());
    MutexLock pq(vm().page_queues);
    page_free(m);
    EXPECT_EQ(page_lookup(*o, 3), nullptr);
  }
  EXPECT_EQ(free_pages(), 256u);
  {
    // The freed page went to the head without PG_ZERO: a normal allocation
    // gets it back with its old bytes.
    MutexLock l(o->mtx);
    Page* m = page_alloc(*o, 0, kAllocNormal);
    ASSERT_NE(m, nullptr);
    EXPECT_FALSE(m->flags & kPgZero);
    EXPECT_EQ(static_cast<unsigned char>(m->data[17]), 0xab);
  }
  free_all(*o);
  // Only that page lost PG_ZERO; the prezero pass zeroes exactly it.
  EXPECT_EQ(vm().prezero_free_pages(10), 1u);
  {
    MutexLock f(vm().free_mtx);
    Page* t = vm().free_list.tail;
    EXPECT_TRUE(t->flags & kPgZero);
    EXPECT_EQ(static_cast<unsigned char>(t->data[17]), 0);
  }
  object_deallocate(o);
}

TEST_F(CoreTest, AllocStopsAtTheReserveAndSystemAllocationsDipIn) {
  Object* o = object_allocate(vm(), ObjectType::kDefault, 1024);
  const std::uint32_t reserve = vm().config().free_reserved;
  {
    MutexLock l(o->mtx);
    Pindex i = 0;
    while (page_alloc(*o, i, kAllocNormal) != nullptr) ++i;
    EXPECT_EQ(i, 256u - reserve);
    EXPECT_EQ(free_pages(), reserve);
    EXPECT_TRUE(vm().count_severe());
    EXPECT_TRUE(vm().pages_needed.load());  // the pageout daemon was asked for
    EXPECT_NE(page_alloc(*o, i, kAllocSystem), nullptr);
    EXPECT_EQ(free_pages(), reserve - 1);
  }
  free_all(*o);
  EXPECT_EQ(free_pages(), 256u);
  object_deallocate(o);
}

// 7.0's cache (vm_page.c 1508-1603, 1040-1083): a cached page leaves the
// resident set (lookups miss it) but keeps its bytes and valid bits; an
// allocation takes free pages first, then the oldest cached page of any
// object, emptied.
TEST_F(CoreTest, CachedPagesAreInvisibleAndReclaimedOnlyWhenNoFreePageIsLeft) {
  Object* a = object_allocate(vm(), ObjectType::kDefault, 1024);
  Object* b = object_allocate(vm(), ObjectType::kDefault, 1024);
  const std::uint32_t ncached = vm().config().free_reserved + 2;  // more than the reserve
  Page* first_cached = nullptr;
  {
    MutexLock l(a->mtx);
    for (Pindex i = 0; i < ncached; ++i) {
      Page* m = page_alloc(*a, i, kAllocNormal);
      page_wakeup(m);
      cache_laundered(m);
      EXPECT_EQ(m->queue, PageQueue::kCache);
      if (i == 0) first_cached = m;
    }
    EXPECT_EQ(vm().cache_count.load(), ncached);
    EXPECT_EQ(page_lookup(*a, 1), nullptr) << "vm_page_lookup sees resident pages only";
    EXPECT_TRUE(object_has_cached(*a, 1));
  }
  {
    MutexLock l(b->mtx);
    Pindex i = 0;
    while (free_pages() > 0) {
      Page* m = page_alloc(*b, i++, kAllocNormal);
      ASSERT_NE(m, nullptr);
      EXPECT_NE(m->queue, PageQueue::kCache);
    }
    // IFNOTCACHED refuses only a cached page of (b, i) itself.
    Page* m = page_alloc(*b, i, kAllocIfNotCached);
    EXPECT_EQ(m, first_cached);  // the oldest cached page, taken out of object a
    EXPECT_EQ(m->valid, 0) << "another object's cached page comes emptied";
    EXPECT_EQ(vm().cache_count.load(), ncached - 1);
    EXPECT_EQ(vm().counters().v_tcached.load(), ncached);
    EXPECT_EQ(vm().counters().cache_reactivations.load(), 0u);
  }
  {
    MutexLock l(a->mtx);
    EXPECT_FALSE(object_has_cached(*a, 0));
    EXPECT_TRUE(object_has_cached(*a, 1));
  }
  free_all(*b);
  object_deallocate(a);  // terminate frees its cached pages
  EXPECT_EQ(vm().cache_count.load(), 0u);
  EXPECT_EQ(free_pages(), 256u);
  object_deallocate(b);
}

// The reactivation the seed checks for at L448: allocating (object, pindex)
// when it has a cached page returns that page, valid, bytes intact; with
// VM_ALLOC_IFNOTCACHED (read-around) the allocation fails instead.
TEST_F(CoreTest, ACachedPageComesBackToItsOwnIndexValidWithItsBytes) {
  Object* a = object_allocate(vm(), ObjectType::kDefault, 8);
  Page* m = nullptr;
  {
    MutexLock l(a->mtx);
    m = page_alloc(*a, 3, kAllocNormal);
    std::memset(m->data, 0x77, vm().page_size());
    page_wakeup(m);
    cache_laundered(m);
    ASSERT_EQ(m->queue, PageQueue::kCache);
    EXPECT_EQ(page_alloc(*a, 3, kAllocIfNotCached), nullptr);
    EXPECT_TRUE(object_has_cached(*a, 3)) << "a refused IFNOTCACHED allocation leaves the page cached";
    Page* again = page_alloc(*a, 3, kAllocNormal);
    EXPECT_EQ(again, m);
    EXPECT_EQ(again->valid, kPageBitsAll);
    EXPECT_EQ(again->oflags & kVpoBusy, kVpoBusy);
    EXPECT_EQ(again->data[0], std::byte{0x77});
    EXPECT_EQ(again->data[vm().page_size() - 1], std::byte{0x77});
    EXPECT_EQ(page_lookup(*a, 3), m);
    EXPECT_FALSE(object_has_cached(*a, 3));
    EXPECT_EQ(vm().counters().cache_reactivations.load(), 1u);
    page_wakeup(m);
  }
  free_all(*a);
  object_deallocate(a);
}

// vm_page_cache frees a page that nothing could bring back (1523-1533): an
// invalid page, a default object's, a swap object's without a swap copy.
TEST_F(CoreTest, CachingAPageWithNothingBehindItFreesIt) {
  Object* a = object_allocate(vm(), ObjectType::kDefault, 8);
  {
    MutexLock l(a->mtx);
    const auto resident = [&](Pindex i) {
      Page* p = page_alloc(*a, i, kAllocNormal);
      p->valid = kPageBitsAll;
      page_wakeup(p);
      return p;
    };
    Page* d = resident(0);
    Page* s = resident(1);
    MutexLock pq(vm().page_queues);
    page_cache(d);  // default object
    EXPECT_EQ(d->queue, PageQueue::kFree);
    a->type = ObjectType::kSwap;  // swap, but no copy of page 1
    page_cache(s);
    EXPECT_EQ(s->queue, PageQueue::kFree);
  }
  EXPECT_EQ(vm().cache_count.load(), 0u);
  EXPECT_EQ(free_pages(), 256u);
  object_deallocate(a);
}

// The cache is under the free-queue mutex: reclaiming another object's
// cached page needs no lock of that object (the pre-rework cache try-locked
// it and deactivated what it could not take).
TEST_F(CoreTest, ACachedPageIsReclaimedWhileItsObjectIsLockedElsewhere) {
  Object* a = object_allocate(vm(), ObjectType::kDefault, 8);
  Page* m = nullptr;
  {
    MutexLock l(a->mtx);
    m = page_alloc(*a, 0, kAllocNormal);
    page_wakeup(m);
    cache_laundered(m);
  }
  Object* hog = hog_free_pages(vm());
  std::atomic<int> phase{0};
  std::thread holder([&] {
    MutexLock la(a->mtx);
    phase = 1;
    while (phase.load() != 2) std::this_thread::yield();
  });
  while (phase.load() != 1) std::this_thread::yield();
  Object* b = object_allocate(vm(), ObjectType::kDefault, 8);
  {
    MutexLock l(b->mtx);
    EXPECT_EQ(page_alloc(*b, 0, kAllocSystem), m);
  }
  phase = 2;
  holder.join();
  {
    MutexLock l(a->mtx);
    EXPECT_FALSE(object_has_cached(*a, 0));
  }
  free_all(*b);
  free_all(*hog);
  object_deallocate(a);
  object_deallocate(b);
  object_deallocate(hog);
}

TEST_F(CoreTest, SleepOnBusyPageUntilWakeup) {
  Object* o = object_allocate(vm(), ObjectType::kDefault, 4);
  Page* m = nullptr;
  {
    MutexLock l(o->mtx);
    m = page_alloc(*o, 0, kAllocNormal);  // busy
  }
  std::atomic<int> slept{-1};
  std::thread waiter([&] {
    MutexLock l(o->mtx);
    slept = page_sleep_if_busy(m, true, "pgrbwt") ? 1 : 0;
    o->mtx.assert_owned();  // held again after the sleep
  });
  while (locking::sleepers(m) == 0) std::this_thread::yield();
  {
    MutexLock l(o->mtx);
    EXPECT_TRUE(m->oflags & kVpoWanted);
    page_wakeup(m);
    EXPECT_EQ(m->oflags & (kVpoBusy | kVpoWanted), 0);
  }
  waiter.join();
  EXPECT_EQ(slept.load(), 1);
  {
    // Soft busy: the I/O count.  Not busy at all: no sleep.
    MutexLock l(o->mtx);
    page_io_start(m);
  }
  std::thread io_waiter([&] {
    MutexLock l(o->mtx);
    EXPECT_TRUE(page_sleep_if_busy(m, true, "pgrbwt"));
  });
  while (locking::sleepers(m) == 0) std::this_thread::yield();
  {
    MutexLock l(o->mtx);
    page_io_finish(m);
  }
  io_waiter.join();
  {
    MutexLock l(o->mtx);
    EXPECT_FALSE(page_sleep_if_busy(m, true, "pgrbwt"));
  }
  free_all(*o);
  object_deallocate(o);
}

TEST_F(CoreTest, VmWaitSleepsUntilPagesAreFreed) {
  Object* o = object_allocate(vm(), ObjectType::kDefault, 1024);
  {
    MutexLock l(o->mtx);
    Pindex i = 0;
    while (page_alloc(*o, i, kAllocNormal) != nullptr) ++i;
  }
  ASSERT_TRUE(vm().count_severe());
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    vm_wait(vm());
    done = true;
  });
  while (locking::sleepers(&vm().free_count) == 0) std::this_thread::yield();
  EXPECT_FALSE(done.load());
  free_all(*o);  // the free that brings memory back to free_min wakes it
  waiter.join();
  EXPECT_TRUE(done.load());
  EXPECT_EQ(vm().counters().v_vmwait.load(), 1u);  // one sleep, as the kernel's
  vm_wait(vm());  // memory is not short: no sleep
  EXPECT_EQ(vm().counters().v_vmwait.load(), 1u);
  object_deallocate(o);
}

// vm_page_cowfault sleeps for memory with the lent page back in its object
// and unbusy; a fault may busy it meanwhile and be mapping it with the object
// unlocked.  7.x's cowfault starts over on the page regardless, and its
// vm_page_remove clears that fault's busy bit.  Here it leaves a busy page
// alone (its caller retries the fault, which then waits for the page).
// Found by the harness: the default campaign hit "page not busy".
TEST_F(CoreTest, CowfaultThatWaitedForMemoryLeavesAPageBusiedMeanwhileAlone) {
  Object* o = object_allocate(vm(), ObjectType::kDefault, 4);
  Page* m = lent_page(*o, 0x11);
  ASSERT_NE(m, nullptr);
  Object* hog = hog_memory(vm(), kAllocNormal);
  std::thread writer = cowfault_on_thread(o, m);
  while (locking::sleepers(&vm().free_count) == 0) std::this_thread::yield();
  {
    MutexLock l(o->mtx);
    page_busy(m);  // another fault takes the page while the writer sleeps
  }
  free_all(*hog);
  writer.join();
  {
    MutexLock l(o->mtx);
    EXPECT_EQ(page_lookup(*o, 0), m);
    EXPECT_TRUE((m->oflags & kVpoBusy) != 0) << "the cowfault cleared another's busy";
    if ((m->oflags & kVpoBusy) != 0) page_wakeup(m);
    MutexLock pq(vm().page_queues);
    page_loan_end(m);
  }
  free_all(*o);
  object_deallocate(o);
  object_deallocate(hog);
}

// vm_page_cowfault sleeps for memory; meanwhile the loan ends and pageout
// caches the page (clean, unwired now).  The lookup no longer sees it, so
// the cowfault returns (7.0 vm_page.c 1953-1957).  The pre-rework cache kept
// the page in its object, the cowfault started over on it and took it out
// of its object while it stayed in the cache, and the allocation that
// reused it crashed (issue 13: fault-storm seed 9 with sends, SIGSEGV in
// reuse_cached_locked).
TEST_F(CoreTest, CowfaultWhoseLentPageGotCachedMeanwhileLeavesIt) {
  Object* o = object_allocate(vm(), ObjectType::kDefault, 4);
  Page* m = lent_page(*o, 0x3c);
  ASSERT_NE(m, nullptr);
  Object* hog = hog_memory(vm(), kAllocSystem);  // the reserve too: nothing left
  ASSERT_EQ(free_pages(), 0u);
  std::thread writer = cowfault_on_thread(o, m);
  while (locking::sleepers(&vm().free_count) == 0) std::this_thread::yield();
  {
    // The send completes and pageout caches the page.
    MutexLock l(o->mtx);
    {
      MutexLock pq(vm().page_queues);
      page_loan_end(m);
    }
    cache_laundered(m);
  }
  // Enough other cached pages to wake the writer (free + cache at free_min).
  const std::uint32_t ncached = vm().config().free_min + 2;
  Object* c = object_allocate(vm(), ObjectType::kDefault, ncached);
  {
    MutexLock lc(c->mtx);  // the younger object first, as the order checker wants
    MutexLock l(hog->mtx);
    for (Pindex i = 0; i < ncached; ++i) {
      Page* p = page_lookup(*hog, i);
      ASSERT_NE(p, nullptr);
      {
        MutexLock pq(vm().page_queues);
        page_rename(p, *c, i);
      }
      cache_laundered(p);
    }
  }
  writer.join();
  {
    MutexLock l(o->mtx);
    EXPECT_EQ(page_lookup(*o, 0), nullptr);
    EXPECT_TRUE(object_has_cached(*o, 0));
    EXPECT_EQ(m->object, o);
    EXPECT_EQ(m->queue, PageQueue::kCache);
    EXPECT_EQ(m->cow, 0u);
  }
  free_all(*hog);
  object_deallocate(o);
  object_deallocate(c);
  object_deallocate(hog);
}

// vm_page_cowfault allocates as any other caller does, the cache included:
// with no free page but free + cache above free_min, VM_WAIT returns at once
// (memory is not short), so an allocation that refused the cache would try
// again forever.
TEST_F(CoreTest, CowfaultTakesACachedPageWhenNoneIsFree) {
  Object* o = object_allocate(vm(), ObjectType::kDefault, 4);
  Page* m = lent_page(*o, 0x5a);
  ASSERT_NE(m, nullptr);
  const std::uint32_t ncached = vm().config().free_min + 2;
  Object* c = object_allocate(vm(), ObjectType::kDefault, ncached);
  {
    MutexLock l(c->mtx);
    for (Pindex i = 0; i < ncached; ++i) {
      Page* p = page_alloc(*c, i, kAllocNormal);
      ASSERT_NE(p, nullptr);
      page_wakeup(p);
      cache_laundered(p);
    }
  }
  Object* hog = hog_free_pages(vm());
  ASSERT_EQ(free_pages(), 0u);
  ASSERT_FALSE(vm().count_min()) << "the cache alone must keep memory above free_min";
  std::atomic<bool> done{false};
  std::thread writer([&] {
    MutexLock l(o->mtx);
    MutexLock pq(vm().page_queues);
    page_cowfault(m);
    done.store(true);
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!done.load() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(done.load()) << "the cowfault spun for 20 s with " << vm().cache_count.load()
                           << " cached pages and none free";
  free_all(*hog);  // unsticks a spinning cowfault, so a failure cannot hang
  writer.join();
  EXPECT_EQ(vm().cache_count.load(), ncached - 1);
  {
    MutexLock l(c->mtx);
    EXPECT_FALSE(object_has_cached(*c, 0)) << "the copy is the oldest cached page";
  }
  {
    MutexLock l(o->mtx);
    Page* copy = page_lookup(*o, 0);
    ASSERT_NE(copy, nullptr);
    EXPECT_NE(copy, m);
    EXPECT_EQ(std::memcmp(copy->data, m->data, vm().page_size()), 0);
    MutexLock pq(vm().page_queues);
    page_loan_end(m);  // m left the object: the lender frees it
  }
  free_all(*o);
  object_deallocate(o);
  object_deallocate(c);
  object_deallocate(hog);
}

TEST_F(CoreTest, QueueMembershipFollowsActivateDeactivateWire) {
  Object* o = object_allocate(vm(), ObjectType::kDefault, 4);
  {
    MutexLock l(o->mtx);
    Page* m = page_alloc(*o, 0, kAllocNormal);
    page_wakeup(m);
    MutexLock pq(vm().page_queues);
    page_activate(m);
    EXPECT_EQ(m->queue, PageQueue::kActive);
    EXPECT_EQ(vm().active.count, 1u);
    page_deactivate(m);
    EXPECT_EQ(m->queue, PageQueue::kInactive);
    EXPECT_EQ(vm().active.count, 0u);
    EXPECT_EQ(vm().inactive.count, 1u);
    page_wire(m);
    page_wire(m);
    EXPECT_EQ(m->queue, PageQueue::kNone);  // wired pages are on no queue
    EXPECT_EQ(vm().wired_count.load(), 1u);
    page_deactivate(m);                     // no effect while wired
    EXPECT_EQ(m->queue, PageQueue::kNone);
    page_unwire(m, false);
    EXPECT_EQ(m->queue, PageQueue::kNone);
    page_unwire(m, true);
    EXPECT_EQ(m->queue, PageQueue::kActive);
    EXPECT_EQ(vm().wired_count.load(), 0u);
  }
  free_all(*o);
  object_deallocate(o);
}

TEST_F(CoreTest, RenameMovesAndDirtiesZeroInvalidFillsHoles) {
  Object* a = object_allocate(vm(), ObjectType::kDefault, 4);
  Object* b = object_allocate(vm(), ObjectType::kDefault, 4);
  {
    MutexLock la(a->mtx);
    Page* m = page_alloc(*a, 1, kAllocNormal);
    std::memset(m->data, 0x5a, vm().page_size());
    m->valid = 0x0f;  // first half valid
    page_zero_invalid(m);
    EXPECT_EQ(m->valid, kPageBitsAll);
    EXPECT_EQ(static_cast<unsigned char>(m->data[0]), 0x5a);
    EXPECT_EQ(static_cast<unsigned char>(m->data[vm().page_size() - 1]), 0);
    // As the fault's rename (seed L732): holding the backing object, the top
    // object is only try-locked.
    if (b->mtx.try_lock()) {
      {
        MutexLock pq(vm().page_queues);
        page_rename(m, *b, 2);
      }
      b->mtx.unlock();
    } else {
      FAIL() << "try-lock of an unshared object failed";
    }
    EXPECT_EQ(m->object, b);
    EXPECT_EQ(m->pindex, 2u);
    EXPECT_EQ(m->dirty, kPageBitsAll);
    EXPECT_EQ(m->oflags & kVpoBusy, 0);  // removal clears busy (the fault re-busies)
    EXPECT_EQ(page_lookup(*a, 1), nullptr);
  }
  free_all(*b);
  object_deallocate(a);
  object_deallocate(b);
}

TEST(VmConfigTest, BadValuesAreNamed) {
  VmConfig c;
  c.page_size = 3000;
  EXPECT_NE(c.validate().find("page_size=3000"), std::string::npos);
  c = VmConfig{};
  c.npages = 4;
  EXPECT_THROW(Vm{c}, std::invalid_argument);
  c = VmConfig{};
  c.io_error_ppm = 2000000;
  EXPECT_NE(c.validate().find("io_error_ppm=2000000"), std::string::npos);
}

}  // namespace
}  // namespace faultline::vm
