// Zero-copy sends as 7.0's socow_setup / socow_iodone lend pages.
#include <chrono>
#include <cstring>
#include <thread>

#include "core/fault_fixture.h"
#include "core/socow.h"

namespace faultline::vm {
namespace {

using locking::MutexLock;
using testing::FaultTest;

using SocowTest = FaultTest;

// socow_setup takes only the page queues and checks nothing about the page
// (7.0 uipc_cow.c 98-139): a page a fault holds busy is lent all the same.
TEST_F(SocowTest, LendsAPageEvenWhileItIsBusy) {
  std::uint64_t va = mmap_anon(1);
  ASSERT_EQ(store(va, 0x50c0), Kern::kSuccess);
  Page* m = pmap_extract(map().pmap, va);
  Object* o = m->object;
  {
    MutexLock l(o->mtx);
    page_busy(m);  // a fault is mapping it, say (seed L887-891)
  }
  EXPECT_EQ(socow_setup(map(), va), m);
  {
    MutexLock pq(vm().page_queues);
    EXPECT_EQ(m->cow, 1u);
    EXPECT_EQ(m->wire_count, 1);
    EXPECT_EQ(m->hold_count, 0) << "the hold taken by pmap_extract_and_hold is dropped";
  }
  std::uint64_t v = 1;
  EXPECT_FALSE(pmap_access(map().pmap, va, true, &v)) << "lent: write-protected";
  {
    MutexLock l(o->mtx);
    page_wakeup(m);
  }
  socow_iodone(m);
  MutexLock pq(vm().page_queues);
  EXPECT_EQ(m->cow, 0u);
  EXPECT_EQ(m->wire_count, 0);
  EXPECT_EQ(m->queue, PageQueue::kInactive);
}

// A write to a lent page copies it for the process (seed L343-350); the
// socket keeps the original, which socow_iodone frees (7.0 uipc_cow.c
// 83-93: its object let go of it).
TEST_F(SocowTest, AWriteCopiesTheLentPageAndIodoneFreesTheOriginal) {
  std::uint64_t va = mmap_anon(1);
  ASSERT_EQ(store(va, 0xaaaa), Kern::kSuccess);
  Page* m = socow_setup(map(), va);
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(store(va, 0xbbbb), Kern::kSuccess);
  EXPECT_NE(pmap_extract(map().pmap, va), m);
  std::uint64_t lent = 0;
  std::memcpy(&lent, m->data, sizeof lent);
  EXPECT_EQ(lent, 0xaaaau) << "the socket's page kept what was lent";
  EXPECT_EQ(m->object, nullptr);
  const std::uint32_t free_before = vm().free_count.load();
  socow_iodone(m);
  EXPECT_EQ(vm().free_count.load(), free_before + 1);
  EXPECT_EQ(m->queue, PageQueue::kFree);
}

// socow_setup holds the page (pmap_extract_and_hold) before it takes the
// page queues to lend it; munmap may free the page in between, which leaves
// it to the last unhold (7.0's PQ_HOLD).  The loan wires it, taking it off
// that queue (vm_page_wire), so the unhold must not free it: socow_iodone
// does.  The model's unhold freed it, wired and lent, and the next
// allocation panicked ("allocating a page that is wired, held, lent or
// mapped": scenario mixed --mix mlock=20,send=20 --anon-pages 4, seed 1).
TEST_F(SocowTest, APageFreedUnderTheHoldIsFreedByIodoneNotByTheUnhold) {
  std::uint64_t va = mmap_anon(1);
  ASSERT_EQ(store(va, 0x4011), Kern::kSuccess);
  Page* m = pmap_extract_and_hold(map().pmap, va, kProtRead);
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(map_munmap(map(), va, va + ps()), Kern::kSuccess);  // frees it, held
  EXPECT_EQ(m->object, nullptr);
  const std::uint32_t free_before = vm().free_count.load();
  {
    MutexLock pq(vm().page_queues);
    page_loan(m);
    page_unhold(m);
    EXPECT_NE(m->queue, PageQueue::kFree);
  }
  EXPECT_EQ(vm().free_count.load(), free_before) << "the unhold freed a wired, lent page";
  socow_iodone(m);
  EXPECT_EQ(m->queue, PageQueue::kFree);
  EXPECT_EQ(vm().free_count.load(), free_before + 1);
}

// A read fault entering a page lent meanwhile: the seed enters it with the
// entry's protection (L873-891), writable here, and the process's next
// store changes the lent bytes without a fault.  Fix lent-page-read-only
// enters it read-only under the page queues the loan takes.
class LentPageTest : public FaultTest {
 protected:
  // Lends the page at va and removes the process's translation of it, so
  // the next access is a read fault that enters the lent page afresh.
  Page* lend_then_unmap(std::uint64_t va) {
    Page* m = socow_setup(map(), va);
    pmap_remove(map().pmap, va, va + ps());
    return m;
  }
};

TEST_F(LentPageTest, AReadFaultEntersALentPageReadOnly) {
  std::uint64_t va = mmap_anon(1);
  ASSERT_EQ(store(va, 0x1111), Kern::kSuccess);
  Page* m = lend_then_unmap(va);
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(vm_fault(map(), va, kProtRead, kFaultNormal), Kern::kSuccess);
  EXPECT_EQ(pmap_extract(map().pmap, va), m);
  EXPECT_EQ(pte_at(va).prot & kProtWrite, 0);
  EXPECT_EQ(cnt().lent_mapped_read_only.load(), 1u);
  ASSERT_EQ(store(va, 0x2222), Kern::kSuccess);  // faults, copies
  std::uint64_t lent = 0;
  std::memcpy(&lent, m->data, sizeof lent);
  EXPECT_EQ(lent, 0x1111u);
  socow_iodone(m);
}

TEST_F(LentPageTest, WithoutTheFixAStoreChangesTheLentPage) {
  vm().set_fix(Fix::kLentPageReadOnly, false);
  std::uint64_t va = mmap_anon(1);
  ASSERT_EQ(store(va, 0x1111), Kern::kSuccess);
  Page* m = lend_then_unmap(va);
  ASSERT_NE(m, nullptr);
  // A write fault would copy (L343-350); the read fault maps it writable.
  ASSERT_EQ(vm_fault(map(), va, kProtRead, kFaultNormal), Kern::kSuccess);
  EXPECT_NE(pte_at(va).prot & kProtWrite, 0);
  std::uint64_t w = 0x2222;
  EXPECT_TRUE(pmap_access(map().pmap, va, true, &w)) << "no fault: the store goes into the lent page";
  std::uint64_t lent = 0;
  std::memcpy(&lent, m->data, sizeof lent);
  EXPECT_EQ(lent, 0x2222u) << "7.x as written: the socket's bytes changed";
  socow_iodone(m);
  vm().set_fix(Fix::kLentPageReadOnly, true);
}

// A page of a file lent to a send while an mlock has it wired.  munlock's
// vm_fault_unwire finds the page with pmap_extract and takes the page
// queues only after (seed L1065-1072); a store through another process's
// mapping in between copies the lent page (vm_page_cowfault, under the page
// queues), moving the object's wirings to the copy.  7.0's unwire then takes
// the loan's wiring, and the loan's end panics (vm_page_unwire: "invalid
// wire count").  Fix unwire-under-queues looks the page up under the page
// queues: a store that comes while the unwire holds them waits, and copies
// the page once it is unwired, so the copy is not wired and the loan ends
// with its own wiring.
TEST_F(SocowTest, AnUnwireRacingACowfaultTakesTheLoansWiringUnlessFixed) {
  Vnode& vp = new_vnode_filled(2 * ps(), std::byte{0x44});
  Object* o = vnode_pager_alloc(vp);
  const std::uint64_t va = mmap_object(o, 2, kProtRead | kProtWrite);
  Map& other = adopt(std::make_unique<Map>(vm(), testing::kBase, testing::kBase + (1ull << 30)));
  std::uint64_t ova = 0;
  ASSERT_EQ(map_mmap(other, &ova, 2 * ps(), vnode_pager_alloc(vp), 0, kProtRead | kProtWrite, kProtAll, 0,
                     Inherit::kShare),
            Kern::kSuccess);
  ASSERT_EQ(map_wire(map(), va, va + ps(), true), Kern::kSuccess);
  Page* m = socow_setup(map(), va);
  ASSERT_NE(m, nullptr);
  const auto race = [&] {
    at_first_point(
        [&](const locking::PointInfo& i) {
          return i.point == locking::Point::kLock &&
                 i.object == static_cast<const locking::LockBase*>(&vm().page_queues);
        },
        [&] {  // another process's thread (this one holds its map)
          Kern r = Kern::kFailure;
          std::thread([&] { r = store_in(other, ova, 7); }).join();
          EXPECT_EQ(r, Kern::kSuccess);
        });
    EXPECT_EQ(map_unwire(map(), va, va + ps(), true), Kern::kSuccess);
    locking::set_point_hook(nullptr, nullptr);
    socow_iodone(m);
  };
  vm().set_fix(Fix::kUnwireUnderQueues, false);
  EXPECT_DEATH(race(), "unwiring an unwired page");
  // Fixed: the store starts when the unwire is about to look the page up
  // (the pmap lock inside pmap_extract), and is given time to run; it has
  // to wait for the page queues the unwire holds.  Were they not held
  // there, it would copy the page first, and the unwire would find nothing
  // (unwire_unmapped) and leave the copy wired.
  vm().set_fix(Fix::kUnwireUnderQueues, true);
  const std::uint64_t skipped = cnt().unwire_unmapped.load();
  std::thread storer;
  Kern stored = Kern::kFailure;
  at_first_point(
      [&](const locking::PointInfo& i) {
        return i.point == locking::Point::kLock &&
               i.object == static_cast<const locking::LockBase*>(&map().pmap.mtx);
      },
      [&] {
        storer = std::thread([&] { stored = store_in(other, ova, 7); });
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      });
  EXPECT_EQ(map_unwire(map(), va, va + ps(), true), Kern::kSuccess);
  locking::set_point_hook(nullptr, nullptr);
  ASSERT_TRUE(storer.joinable()) << "the hook did not run";
  storer.join();
  EXPECT_EQ(stored, Kern::kSuccess);
  socow_iodone(m);
  EXPECT_EQ(cnt().unwire_unmapped.load(), skipped) << "the unwire found the page";
  MutexLock l(o->mtx);
  Page* copy = page_lookup(*o, 0);
  ASSERT_NE(copy, nullptr);
  EXPECT_NE(copy, m) << "the store copied the lent page";
  EXPECT_EQ(copy->wire_count, 0) << "copied after the unwire: not wired";
}

// A page of a file lent to a send, and a truncation: the loan wired it, so
// 7.0's vm_object_page_remove leaves it in its object, invalid, with the
// bytes from before the cut.  After the regrow a store to it copies the lent
// page (seed L343-350, before any test of validity), and 7.0's
// vm_page_cowfault marks the copy fully valid: the old bytes come back as
// the file's, where the regrown file reads zeros.  Fix
// cowfault-keeps-validity makes the copy only as valid as the page, so the
// fault's retry reads the file.
TEST_F(SocowTest, AStoreToALentPageATruncationLeftCopiesStaleBytesUnlessFixed) {
  Vnode& vp = new_vnode_filled(4 * ps(), std::byte{0x33});
  Object* o = vnode_pager_alloc(vp);
  const std::uint64_t va = mmap_object(o, 4, kProtRead | kProtWrite);
  Page* lent[2] = {socow_setup(map(), va + 2 * ps()), socow_setup(map(), va + 3 * ps())};
  ASSERT_NE(lent[0], nullptr);
  ASSERT_NE(lent[1], nullptr);
  {
    locking::SxExclusiveLock vl(vp.lock);
    vnode_pager_setsize(vp, ps());
    vnode_pager_setsize(vp, 4 * ps());
  }
  std::uint64_t v = 0;
  vm().set_fix(Fix::kCowfaultKeepsValidity, false);
  ASSERT_EQ(store(va + 2 * ps(), 1), Kern::kSuccess);
  ASSERT_EQ(load(va + 2 * ps() + 8, &v), Kern::kSuccess);
  EXPECT_EQ(v, 0x3333333333333333u) << "7.0: the bytes from before the cut";
  vm().set_fix(Fix::kCowfaultKeepsValidity, true);
  const std::uint64_t kept = cnt().cowfault_invalid_copies.load();
  ASSERT_EQ(store(va + 3 * ps(), 1), Kern::kSuccess);
  ASSERT_EQ(load(va + 3 * ps() + 8, &v), Kern::kSuccess);
  EXPECT_EQ(v, 0u) << "fixed: the regrown file's zeros";
  EXPECT_EQ(cnt().cowfault_invalid_copies.load(), kept + 1);
  for (Page* m : lent) socow_iodone(m);
}

}  // namespace
}  // namespace faultline::vm
