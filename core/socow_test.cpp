// Zero-copy sends as 7.0's socow_setup / socow_iodone lend pages.
#include <cstring>

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

}  // namespace
}  // namespace faultline::vm
