// The pmap that sleeps and the MMU that does not hold the pmap lock: the
// windows 7.x has between a CPU's use of a translation and the pmap calls
// that change it, and pmap_enter's wait for a page-table page.
#include <atomic>
#include <cstring>
#include <functional>
#include <thread>

#include "core/fault_fixture.h"

namespace faultline::vm {
namespace {

using locking::MutexLock;
using testing::FaultTest;

class PmapTest : public FaultTest {
 protected:
  // Takes free pages until free + cache is at the reserve: a normal
  // allocation (a page-table page) fails.  Requires nothing held.
  Object* hog_to_reserve() {
    Object* hog = object_allocate(vm(), ObjectType::kDefault, 1024);
    MutexLock l(hog->mtx);
    Pindex i = 0;
    while (page_alloc(*hog, i, kAllocNormal) != nullptr) ++i;
    return hog;
  }
  // Runs `body` once, at the schedule point of the next user access, which
  // has walked its translation and not yet used it (the MMU's window).
  void in_the_mmu_window(std::function<void()> body) {
    at_first_point(
        [this](const locking::PointInfo& info) {
          return info.point == locking::Point::kUser && info.object == &map().pmap.inflight;
        },
        std::move(body));
  }
  // Starts pmap_remove_write(m) on another thread (as pageout about to
  // launder) and waits until it waits for the access in flight or has
  // returned.  `then` runs on that thread after it returns.
  void remove_write_racing_the_access(Page* m, std::function<void()> then = {}) {
    racer_ = std::thread([this, m, then] {
      MutexLock pq(vm().page_queues);
      pmap_remove_write(m);
      if (then) then();
      returned_ = true;
    });
    while (cnt().shootdown_waits.load() == 0 && !returned_.load()) std::this_thread::yield();
  }
  std::thread racer_;
  std::atomic<bool> returned_{false};

  void release(Object* hog) {
    {
      MutexLock l(hog->mtx);
      MutexLock pq(vm().page_queues);
      while (!hog->pages.empty()) page_free(hog->pages.begin()->second);
    }
    object_deallocate(hog);
  }
};

// pmap_enter needs a page-table page and none is free: it drops the pmap and
// the page queues, waits for memory (VM_WAIT) and looks again (7.0 amd64
// _pmap_allocpte, 1268-1279).
TEST_F(PmapTest, PmapEnterSleepsForAPageTablePage) {
  Object* o = object_allocate(vm(), ObjectType::kDefault, 1);
  Page* m = nullptr;
  {
    MutexLock l(o->mtx);
    m = page_alloc(*o, 0, kAllocNormal);  // busy, as pmap_enter requires
    m->valid = kPageBitsAll;
  }
  Object* hog = hog_to_reserve();
  const std::uint64_t va = 0x7000'0000'0000ull;
  std::atomic<bool> done{false};
  std::thread enterer([&] {
    pmap_enter(map().pmap, va, m, kProtRead, false);
    done = true;
  });
  while (locking::sleepers(&vm().free_count) == 0) std::this_thread::yield();
  EXPECT_FALSE(done.load());
  EXPECT_EQ(cnt().pmap_enter_waits.load(), 1u);
  EXPECT_EQ(pmap_extract(map().pmap, va), nullptr);
  release(hog);
  enterer.join();
  EXPECT_EQ(pmap_extract(map().pmap, va), m);
  pmap_remove(map().pmap, va, va + ps());
  {
    MutexLock l(o->mtx);
    page_wakeup(m);
  }
  object_deallocate(o);
}

// The same from a fault: memory runs out between the fault's allocation of
// the page (free + cache above the severe mark at L433) and its pmap_enter
// (L891), which sleeps with the page busy and the object unlocked (L883).
TEST_F(PmapTest, FaultsPmapEnterSleepsWithThePageBusy) {
  std::uint64_t va = mmap_anon(1);
  Object* hog = nullptr;
  std::thread faulter;
  std::atomic<bool> done{false};
  Page* busy_page = nullptr;
  faulter = std::thread([&] {
    const std::thread::id me = std::this_thread::get_id();
    at_first_point(
        [this, me](const locking::PointInfo& info) {
          return info.point == locking::Point::kLock && info.object == &map().pmap.mtx &&
                 std::this_thread::get_id() == me;
        },
        [&] { std::thread([&] { hog = hog_to_reserve(); }).join(); });
    EXPECT_EQ(vm_fault(map(), va, kProtRead | kProtWrite, kFaultNormal), Kern::kSuccess);
    done = true;
  });
  while (locking::sleepers(&vm().free_count) == 0) std::this_thread::yield();
  EXPECT_FALSE(done.load());
  EXPECT_EQ(cnt().pmap_enter_waits.load(), 1u);
  {
    // The page waits busy in its object, unmapped.
    map_lock_read(map());
    Object* o = map().lookup_entry(va)->object;
    map_unlock_read(map());
    MutexLock l(o->mtx);
    busy_page = page_lookup(*o, 0);
    ASSERT_NE(busy_page, nullptr);
    EXPECT_NE(busy_page->oflags & kVpoBusy, 0);
  }
  release(hog);
  faulter.join();
  locking::set_point_hook(nullptr, nullptr);
  EXPECT_EQ(pmap_extract(map().pmap, va), busy_page);
  EXPECT_EQ(busy_page->oflags & kVpoBusy, 0);
}

// A store walks a writable translation whose modified bit is clear; before
// it sets the bit, pmap_remove_write (pageout about to launder) clears write
// permission.  The store's compare-and-swap on the PTE fails and it faults,
// as a store whose page walk finds the PTE read-only does: nothing lands
// on the page being written back.
TEST_F(PmapTest, AStoreRacingRemoveWriteBeforeItSetsModifiedFaults) {
  std::uint64_t va = mmap_anon(1);
  std::uint64_t v = 0;
  ASSERT_EQ(load(va, &v), Kern::kSuccess);  // read fault: maps the page
  ASSERT_EQ(vm_fault(map(), va, kProtRead | kProtWrite, kFaultNormal), Kern::kSuccess);  // writable, M clear
  Page* m = pmap_extract(map().pmap, va);
  ASSERT_FALSE(pte_at(va).modified);
  // It clears write, then waits for this access (the shootdown).
  in_the_mmu_window([&] { remove_write_racing_the_access(m); });
  std::uint64_t w = 0x5708e;
  EXPECT_FALSE(pmap_access(map().pmap, va, true, &w)) << "the store must fault";
  racer_.join();
  EXPECT_EQ(cnt().mmu_stale_walks.load(), 1u);
  std::uint64_t now = 0;
  std::memcpy(&now, m->data, sizeof now);
  EXPECT_EQ(now, 0u) << "the store did not land";
  EXPECT_FALSE(m->is_dirty());
}

// The same with the modified bit already set (a TLB entry that may write
// without touching the PTE): the store lands, pmap_remove_write collects
// the bit, and it returns only after the store has completed (the
// shootdown), so a write-back that follows copies the stored word.
// Without the shootdown wait pmap_remove_write returns first (shootdown
// count 0) and the pager would copy the page under the store.
TEST_F(PmapTest, AStoreInFlightDuringRemoveWriteCompletesBeforeItReturns) {
  std::uint64_t va = mmap_anon(1);
  ASSERT_EQ(store(va, 1), Kern::kSuccess);  // M set
  Page* m = pmap_extract(map().pmap, va);
  ASSERT_TRUE(pte_at(va).modified);
  std::uint64_t seen_at_return = 0;
  in_the_mmu_window([&] {
    remove_write_racing_the_access(m, [&] {
      std::memcpy(&seen_at_return, m->data, sizeof seen_at_return);  // what a pager would copy
    });
    EXPECT_FALSE(returned_.load()) << "pmap_remove_write returned with a store in flight";
  });
  std::uint64_t w = 0x2222;
  EXPECT_TRUE(pmap_access(map().pmap, va, true, &w));
  racer_.join();
  EXPECT_EQ(seen_at_return, 0x2222u);
  EXPECT_TRUE(m->is_dirty()) << "the modified bit was collected";
  std::uint64_t v = 0;
  EXPECT_FALSE(pmap_access(map().pmap, va, true, &v)) << "write-protected now";
}

// pmap_is_modified reads the PTE while a store has walked it but not yet
// set the modified bit: it says clean, and a moment later the page is
// dirty.  7.x's pageout lives with this window by removing every mapping
// of a page it found clean before caching it (vm_pageout.c 830-845), which
// collects the bit: the page then goes to the launder instead.
TEST_F(PmapTest, IsModifiedMissesAStoreInFlightAndRemoveAllCollectsIt) {
  std::uint64_t va = mmap_anon(1);
  std::uint64_t v = 0;
  ASSERT_EQ(load(va, &v), Kern::kSuccess);
  ASSERT_EQ(vm_fault(map(), va, kProtRead | kProtWrite, kFaultNormal), Kern::kSuccess);
  Page* m = pmap_extract(map().pmap, va);
  bool modified_in_window = true;
  in_the_mmu_window([&] {
    std::thread([&] {
      MutexLock pq(vm().page_queues);
      modified_in_window = pmap_is_modified(m);
    }).join();
  });
  std::uint64_t w = 0x77;
  EXPECT_TRUE(pmap_access(map().pmap, va, true, &w));
  EXPECT_FALSE(modified_in_window);
  MutexLock l(m->object->mtx);
  MutexLock pq(vm().page_queues);
  EXPECT_TRUE(pmap_is_modified(m));
  pmap_remove_all(m);
  EXPECT_TRUE(m->is_dirty()) << "removing the mapping collects the store's modified bit";
}

}  // namespace
}  // namespace faultline::vm
