// The operations that race with the fault, each on its own semantics:
// pageout, truncation, fork, exit, mprotect, mlock.
#include <atomic>
#include <cstring>
#include <functional>
#include <thread>

#include "core/fault_fixture.h"
#include "core/pageout.h"

namespace faultline::vm {
namespace {

using locking::MutexLock;
using testing::FaultTest;

class OpsTest : public FaultTest {
 protected:
  // Ages o's pages (or only `only`): inactive and unreferenced, as the
  // active scan would leave them.
  void age(Object* o, Page* only = nullptr) {
    MutexLock l(o->mtx);
    MutexLock pq(vm().page_queues);
    for (auto& [pindex, m] : o->pages) {
      if (only != nullptr && m != only) continue;
      pmap_ts_referenced(m);
      m->flags &= static_cast<std::uint8_t>(~kPgReferenced);
      page_deactivate(m);
    }
  }
  // Makes memory short (free + cache at free_min) with an object holding
  // pages, so that the daemon launders; release_hog gives them back.
  Object* hog_memory() {
    Object* hog = object_allocate(vm(), ObjectType::kDefault, 1024);
    MutexLock l(hog->mtx);
    Pindex i = 0;
    while (free_pages() > vm().config().free_min) {
      if (page_alloc(*hog, i++, kAllocNormal) == nullptr) {
        ADD_FAILURE() << "allocation failed above free_min";
        break;
      }
    }
    return hog;
  }
  void release_hog(Object* hog) {
    {
      MutexLock l(hog->mtx);
      MutexLock pq(vm().page_queues);
      while (!hog->pages.empty()) page_free(hog->pages.begin()->second);
    }
    object_deallocate(hog);
  }
};

TEST_F(OpsTest, PageoutLaundersADirtyPageAndAFaultBringsItBack) {
  std::uint64_t va = mmap_anon(4);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(store(va + i * ps(), 0xabc0u + static_cast<unsigned>(i)), Kern::kSuccess);
  Object* o = pmap_extract(map().pmap, va)->object;
  age(o);
  // Memory is short (free + cache below target): the daemon launders.
  Object* hog = hog_memory();
  PageoutStats st = pageout_scan(vm(), 1);  // not the first pass: no second chance
  EXPECT_EQ(st.laundered, 4u);
  EXPECT_EQ(cnt().v_pgpgout.load(), 4u);
  {
    MutexLock l(o->mtx);
    EXPECT_EQ(o->type, ObjectType::kSwap);  // default became swap-backed
    EXPECT_EQ(o->swap.size(), 4u);
  }
  // The next pass caches the now clean pages (unmapping them).
  st = pageout_scan(vm());
  EXPECT_EQ(st.cached, 4u);
  EXPECT_EQ(pmap_extract(map().pmap, va), nullptr);
  // Reuse the cached pages for something else, so the data is only in swap.
  {
    MutexLock l(hog->mtx);
    Pindex i = 2000;
    while (vm().cache_count.load() > 0) ASSERT_NE(page_alloc(*hog, i++, kAllocSystem), nullptr);
  }
  {
    MutexLock l(o->mtx);
    EXPECT_TRUE(o->pages.empty());
  }
  release_hog(hog);
  for (int i = 0; i < 4; ++i) {
    std::uint64_t v = 0;
    ASSERT_EQ(load(va + i * ps(), &v), Kern::kSuccess);
    EXPECT_EQ(v, 0xabc0u + static_cast<unsigned>(i));
  }
  EXPECT_GE(cnt().v_majflt.load(), 1u);
}

// ---- vm_pageout_scan's lock drops (7.0 vm_pageout.c) ----

// Runs one pageout scan (pass `pass`) on this thread while another thread
// holds `held` (an object's mutex, or a vnode's lock shared), so the scan
// must wait for it where 7.0 waits: the object lock in
// vm_pageout_fallback_object_lock (page queues dropped), the vnode in
// vget(LK_TIMELOCK) (everything dropped).  When the scan is about to wait
// (`wait_point` on `wait_object`), `meanwhile` runs on the holder's thread,
// still holding, and then the holder lets go.
template <class Lock, class Unlock>
PageoutStats scan_while_held(Vm& vm, int pass, Lock lock, Unlock unlock, locking::Point wait_point,
                             const void* wait_object, std::function<void()> meanwhile) {
  struct Ctx {
    std::thread::id scanner;
    locking::Point point;
    const void* object;
    std::atomic<int> phase{0};  // 1: holder holds; 2: scan waits; 3: holder done
  } ctx{std::this_thread::get_id(), wait_point, wait_object};
  std::thread holder([&] {
    lock();
    ctx.phase = 1;
    while (ctx.phase.load() != 2) std::this_thread::yield();
    meanwhile();
    unlock();
    ctx.phase = 3;
  });
  while (ctx.phase.load() != 1) std::this_thread::yield();
  locking::set_point_hook(
      [](const locking::PointInfo& info, void* p) {
        auto* c = static_cast<Ctx*>(p);
        if (std::this_thread::get_id() != c->scanner || info.point != c->point || info.object != c->object ||
            c->phase.load() != 1)
          return;
        c->phase = 2;
        while (c->phase.load() != 3) std::this_thread::yield();
      },
      &ctx);
  PageoutStats st = pageout_scan(vm, pass);
  locking::set_point_hook(nullptr, nullptr);
  if (ctx.phase.load() == 1) ctx.phase = 2;  // never waited: let the holder go
  holder.join();
  EXPECT_EQ(ctx.phase.load(), 3);
  return st;
}

class PageoutTest : public OpsTest {
 protected:
  // One clean, valid, inactive page of a swap object (so it would be
  // cached), and memory short so that the daemon scans.
  Page* inactive_clean_page(Object** out) {
    std::uint64_t va = mmap_anon(1);
    EXPECT_EQ(store(va, 0x5ca9), Kern::kSuccess);
    Object* o = pmap_extract(map().pmap, va)->object;
    {
      MutexLock l(o->mtx);
      Page* m = page_lookup(*o, 0);
      o->type = ObjectType::kSwap;  // as if laundered before
      o->swap[0].assign(m->data, m->data + ps());
      MutexLock pq(vm().page_queues);
      pmap_remove_all(m);
      m->dirty.store(0);
    }
    age(o);
    *out = o;
    MutexLock l(o->mtx);
    return page_lookup(*o, 0);
  }
  PageoutStats scan_with_object_held(Object* o, std::function<void()> meanwhile) {
    return scan_while_held(
        vm(), 0, [o]() FL_NO_THREAD_SAFETY_ANALYSIS { o->mtx.lock(); },
        [o]() FL_NO_THREAD_SAFETY_ANALYSIS { o->mtx.unlock(); }, locking::Point::kLock, &o->mtx,
        std::move(meanwhile));
  }
};

// The object's try-lock fails, the daemon waits for it with the page queues
// dropped, and meanwhile the page is freed: the revalidation (same queue,
// same object, still before the marker; 259-261) sends it on.  Without it
// the daemon would free the free page ("freeing a free or cached page").
TEST_F(PageoutTest, FallbackLockFindsThePageFreedMeanwhile) {
  Object* o = nullptr;
  Page* m = inactive_clean_page(&o);
  Object* hog = hog_memory();
  PageoutStats st = scan_with_object_held(o, [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
    MutexLock pq(vm().page_queues);
    page_free(m);  // e.g. munmap of a one-mapping object
  });
  EXPECT_EQ(cnt().pageout_fallbacks.load(), 1u);
  EXPECT_EQ(cnt().pageout_fallback_lost.load(), 1u);
  EXPECT_EQ(st.cached + st.freed, 0u);
  EXPECT_EQ(m->queue, PageQueue::kFree);
  release_hog(hog);
}

// ... and meanwhile the page moves to the active queue (a fault used it):
// not cached.
TEST_F(PageoutTest, FallbackLockFindsThePageMovedMeanwhile) {
  Object* o = nullptr;
  Page* m = inactive_clean_page(&o);
  Object* hog = hog_memory();
  PageoutStats st = scan_with_object_held(o, [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
    MutexLock pq(vm().page_queues);
    page_activate(m);
  });
  EXPECT_EQ(cnt().pageout_fallback_lost.load(), 1u);
  EXPECT_EQ(st.cached, 0u);
  EXPECT_EQ(m->queue, PageQueue::kActive);
  release_hog(hog);
}

// ... and meanwhile a fault busies it: the revalidation passes (same queue,
// object and place) and the busy check after it leaves the page (778-782).
TEST_F(PageoutTest, FallbackLockFindsThePageBusiedMeanwhile) {
  Object* o = nullptr;
  Page* m = inactive_clean_page(&o);
  Object* hog = hog_memory();
  PageoutStats st = scan_with_object_held(o, [&]() FL_NO_THREAD_SAFETY_ANALYSIS { page_busy(m); });
  EXPECT_EQ(cnt().pageout_fallbacks.load(), 1u);
  EXPECT_EQ(cnt().pageout_fallback_lost.load(), 0u);
  EXPECT_EQ(st.cached, 0u);
  EXPECT_EQ(st.skipped, 1u);
  EXPECT_EQ(m->queue, PageQueue::kInactive);
  {
    MutexLock l(o->mtx);
    page_wakeup(m);
  }
  release_hog(hog);
}

// With nothing in the way the fallback's page is cached as usual.
TEST_F(PageoutTest, FallbackLockThenCachesAnUnchangedPage) {
  Object* o = nullptr;
  Page* m = inactive_clean_page(&o);
  Object* hog = hog_memory();
  PageoutStats st = scan_with_object_held(o, [] {});
  EXPECT_EQ(cnt().pageout_fallbacks.load(), 1u);
  EXPECT_EQ(cnt().pageout_fallback_lost.load(), 0u);
  EXPECT_EQ(st.cached, 1u);
  EXPECT_EQ(m->queue, PageQueue::kCache);
  release_hog(hog);
}

// A dirty page goes round the inactive queue once more on the daemon's first
// pass (PG_WINATCFLS, 864-878) and is laundered on the next.
TEST_F(PageoutTest, ADirtyPageGetsASecondChanceOnTheFirstPass) {
  std::uint64_t va = mmap_anon(1);
  ASSERT_EQ(store(va, 0xd1), Kern::kSuccess);
  Object* o = pmap_extract(map().pmap, va)->object;
  age(o);
  Object* hog = hog_memory();
  PageoutStats st = pageout_scan(vm(), 0);
  EXPECT_EQ(st.second_chance, 1u);
  EXPECT_EQ(st.laundered, 0u);
  st = pageout_scan(vm(), 0);
  EXPECT_EQ(st.laundered, 1u) << "the second time round it is laundered, even on a first pass";
  EXPECT_EQ(cnt().pageout_second_chance.load(), 1u);
  release_hog(hog);
}

class VnodePageoutTest : public PageoutTest {
 protected:
  // A file of one page mapped shared and written (dirty), inactive, and
  // memory short.
  void SetUp() override {
    PageoutTest::SetUp();
    vp_ = &new_vnode(ps());
    o_ = vnode_pager_alloc(*vp_);
    va_ = mmap_object(o_, 1, kProtRead | kProtWrite);
    ASSERT_EQ(store(va_, 0xf11e), Kern::kSuccess);
    {
      MutexLock l(o_->mtx);
      m_ = page_lookup(*o_, 0);
    }
    ASSERT_NE(m_, nullptr);
    ASSERT_TRUE(m_->is_dirty() || [&] {
      MutexLock pq(vm().page_queues);
      return pmap_is_modified(m_);
    }());
    age(o_);
    hog_ = hog_memory();
  }
  void TearDown() override {
    release_hog(hog_);
    PageoutTest::TearDown();
  }
  std::uint64_t file_word() {
    locking::SxSharedLock l(vp_->lock);
    std::uint64_t v = 0;
    std::memcpy(&v, vp_->contents.data(), sizeof v);
    return v;
  }
  PageoutStats scan_with_vnode_held(std::function<void()> meanwhile) {
    return scan_while_held(
        vm(), 1, [this]() FL_NO_THREAD_SAFETY_ANALYSIS { vp_->lock.slock(); },
        [this]() FL_NO_THREAD_SAFETY_ANALYSIS { vp_->lock.sunlock(); }, locking::Point::kPause, vp_,
        std::move(meanwhile));
  }
  Vnode* vp_ = nullptr;
  Object* o_ = nullptr;
  std::uint64_t va_ = 0;
  Page* m_ = nullptr;
  Object* hog_ = nullptr;
};

// A dirty file page: the daemon takes a reference on the object, drops the
// page queues and the object, waits for the vnode (held shared by someone,
// e.g. a fault), relocks, revalidates and launders (943-1016).
TEST_F(VnodePageoutTest, LaundersAfterWaitingForTheVnode) {
  PageoutStats st = scan_with_vnode_held([] {});
  EXPECT_EQ(st.laundered, 1u);
  EXPECT_EQ(cnt().pageout_vnode_launders.load(), 1u);
  EXPECT_EQ(file_word(), 0xf11eu);
  MutexLock l(o_->mtx);
  EXPECT_EQ(o_->ref_count, 2) << "the daemon's reference is gone again (the vnode's and the mapping's remain)";
  EXPECT_FALSE(m_->is_dirty());
}

// ... and while it waits the page is referenced and reactivated: the
// revalidation after vget (976-981) leaves it alone.
TEST_F(VnodePageoutTest, PageMovedWhileTheDaemonWaitedForTheVnodeIsLeft) {
  PageoutStats st = scan_with_vnode_held([&]() FL_NO_THREAD_SAFETY_ANALYSIS {
    MutexLock l(o_->mtx);
    MutexLock pq(vm().page_queues);
    page_activate(m_);
  });
  EXPECT_EQ(st.laundered, 0u);
  EXPECT_EQ(cnt().pageout_vnode_lost.load(), 1u);
  EXPECT_EQ(file_word(), 0u) << "nothing written";
  EXPECT_EQ(m_->queue, PageQueue::kActive);
}

// ... and while it waits a fault busies the page: left (990-991).
TEST_F(VnodePageoutTest, PageBusiedWhileTheDaemonWaitedForTheVnodeIsLeft) {
  PageoutStats st = scan_with_vnode_held([&]() FL_NO_THREAD_SAFETY_ANALYSIS {
    MutexLock l(o_->mtx);
    page_busy(m_);
  });
  EXPECT_EQ(st.laundered, 0u);
  EXPECT_EQ(cnt().pageout_vnode_lost.load(), 1u);
  MutexLock l(o_->mtx);
  page_wakeup(m_);
}

// The vnode stays locked past VLKTIMEOUT: vget gives up and the page waits
// for another scan.
TEST_F(VnodePageoutTest, VgetGivesUpAfterTheTimeout) {
  std::atomic<bool> release{false}, held{false};
  std::thread holder([&]() FL_NO_THREAD_SAFETY_ANALYSIS {
    vp_->lock.slock();
    held = true;
    while (!release.load()) std::this_thread::yield();
    vp_->lock.sunlock();
  });
  while (!held.load()) std::this_thread::yield();
  PageoutStats st = pageout_scan(vm(), 1);
  release = true;
  holder.join();
  EXPECT_EQ(st.laundered, 0u);
  EXPECT_EQ(st.skipped, 1u);
  EXPECT_EQ(file_word(), 0u);
  EXPECT_EQ(m_->queue, PageQueue::kInactive);
}

TEST_F(OpsTest, PageoutWritesADirtyDevicePageBackToTheDevice) {
  Device& dev = new_device(2);
  Object* o = dev_pager_alloc(dev);
  std::uint64_t va = 0;
  ASSERT_EQ(map_mmap(map(), &va, 2 * ps(), o, 0, kProtRead | kProtWrite, kProtAll, 0, Inherit::kShare),
            Kern::kSuccess);
  ASSERT_EQ(store(va + ps(), 0xde71ce), Kern::kSuccess);
  age(o, pmap_extract(map().pmap, va + ps()));
  Object* hog = hog_memory();
  EXPECT_EQ(pageout_scan(vm(), 1).laundered, 1u);
  {
    MutexLock dl(dev.lock);
    std::uint64_t v = 0;
    std::memcpy(&v, dev.memory.data() + ps(), sizeof v);
    EXPECT_EQ(v, 0xde71ceu);
  }
  {
    MutexLock l(o->mtx);
    EXPECT_EQ(o->type, ObjectType::kDevice);  // not turned into swap
    EXPECT_TRUE(o->swap.empty());
  }
  release_hog(hog);
}

TEST_F(OpsTest, TruncationMakesFaultsPastEofFailAndRegrowthReadsZeros) {
  Vnode& vp = new_vnode_filled(4 * ps(), std::byte{0x11});
  Object* o = vnode_pager_alloc(vp);
  std::uint64_t va = mmap_object(o, 4, kProtRead | kProtWrite);
  std::uint64_t v = 0;
  ASSERT_EQ(load(va + 3 * ps(), &v), Kern::kSuccess);
  EXPECT_EQ(v, 0x1111111111111111u);
  ASSERT_EQ(load(va + 1 * ps(), &v), Kern::kSuccess);
  // Truncate to one and a half pages: pages 2 and 3 go, page 1 is cut.
  {
    locking::SxExclusiveLock vl(vp.lock);
    vnode_pager_setsize(vp, ps() + ps() / 2);
  }
  EXPECT_EQ(vm_fault(map(), va + 3 * ps(), kProtRead, kFaultNormal), Kern::kProtectionFailure);  // SIGBUS
  EXPECT_EQ(vm_fault(map(), va + 2 * ps(), kProtRead, kFaultNormal), Kern::kProtectionFailure);
  ASSERT_EQ(load(va + ps(), &v), Kern::kSuccess);
  EXPECT_EQ(v, 0x1111111111111111u);  // before the cut
  ASSERT_EQ(load(va + ps() + ps() / 2, &v), Kern::kSuccess);
  EXPECT_EQ(v, 0u);  // the tail past the new end reads zero
  // Grow back: the regrown range reads zeros, not the old bytes.
  {
    locking::SxExclusiveLock vl(vp.lock);
    vnode_pager_setsize(vp, 4 * ps());
  }
  ASSERT_EQ(load(va + 3 * ps(), &v), Kern::kSuccess);
  EXPECT_EQ(v, 0u);
  ASSERT_EQ(load(va + 2 * ps() + 8, &v), Kern::kSuccess);
  EXPECT_EQ(v, 0u);
}

TEST_F(OpsTest, TruncationWaitsForABusyPage) {
  Vnode& vp = new_vnode(4 * ps());
  Object* o = vnode_pager_alloc(vp);
  std::uint64_t va = mmap_object(o, 4, kProtRead);
  std::uint64_t v = 0;
  ASSERT_EQ(load(va + 3 * ps(), &v), Kern::kSuccess);
  Page* m = pmap_extract(map().pmap, va + 3 * ps());
  {
    MutexLock l(o->mtx);
    page_busy(m);
  }
  std::atomic<bool> done{false};
  std::thread truncator([&] {
    locking::SxExclusiveLock vl(vp.lock);
    vnode_pager_setsize(vp, 2 * ps());
    done = true;
  });
  while (locking::sleepers(m) == 0) std::this_thread::yield();
  EXPECT_FALSE(done.load());  // "vmopar": waits for the busy page
  {
    MutexLock l(o->mtx);
    // ... with paging in progress held across the sleep (7.0 vm_object.c
    // 1814), so a deallocate or a collapse meanwhile leaves the object be.
    EXPECT_EQ(o->pip, 1);
    page_wakeup(m);
  }
  truncator.join();
  MutexLock l(o->mtx);
  EXPECT_EQ(page_lookup(*o, 3), nullptr);
  EXPECT_EQ(o->size, 2u);
  EXPECT_EQ(o->pip, 0);
  EXPECT_EQ(cnt().page_remove_sleeps.load(), 1u);
}

// 7.0 vm_object_page_remove leaves a wired page in its object: it removes
// its mappings and, truncating (not clean_only), makes it invalid.  The
// pages around it are freed.
TEST_F(OpsTest, TruncationUnmapsAndInvalidatesAWiredPageButLeavesIt) {
  Vnode& vp = new_vnode(4 * ps());
  Object* o = vnode_pager_alloc(vp);
  const std::uint64_t va = mmap_object(o, 4, kProtRead);
  ASSERT_EQ(map_wire(map(), va + 3 * ps(), va + 4 * ps(), true), Kern::kSuccess);
  std::uint64_t v = 0;
  ASSERT_EQ(load(va + 2 * ps(), &v), Kern::kSuccess);
  Page* wired = pmap_extract(map().pmap, va + 3 * ps());
  ASSERT_NE(wired, nullptr);
  {
    locking::SxExclusiveLock vl(vp.lock);
    vnode_pager_setsize(vp, ps());
  }
  MutexLock l(o->mtx);
  EXPECT_EQ(page_lookup(*o, 2), nullptr) << "an unwired page past the end is freed";
  ASSERT_EQ(page_lookup(*o, 3), wired) << "a wired page stays in its object";
  EXPECT_EQ(wired->valid, 0) << "... invalid";
  MutexLock pq(vm().page_queues);
  EXPECT_TRUE(wired->pv.empty()) << "... and unmapped";
  EXPECT_EQ(wired->wire_count, 1);
}

// The wired page a truncation left in its object, invalid, past the new
// end: a fault there finds it resident, so the end-of-file test (seed L423,
// for pages not resident) is not made; the vnode pager does not have the
// page (vnode_pager_haspage: past the end), so vm_fault_additional_pages
// gives nothing to read and the fault zero-fills the page and maps it
// (L646-672).  7.0 reads zeros there and takes stores, no SIGBUS; the page
// next to it, not wired, is refused.
TEST_F(OpsTest, AFaultPastTheEndZeroFillsAWiredPageTruncationLeft) {
  Vnode& vp = new_vnode_filled(4 * ps(), std::byte{0x11});
  Object* o = vnode_pager_alloc(vp);
  const std::uint64_t va = mmap_object(o, 4, kProtRead | kProtWrite);
  ASSERT_EQ(map_wire(map(), va + 3 * ps(), va + 4 * ps(), true), Kern::kSuccess);
  {
    locking::SxExclusiveLock vl(vp.lock);
    vnode_pager_setsize(vp, ps());
  }
  const std::uint64_t zero_fills = cnt().fault_past_eof_zero_fill.load();
  std::uint64_t v = 1;
  EXPECT_EQ(load(va + 2 * ps(), &v), Kern::kProtectionFailure) << "not resident: SIGBUS";
  ASSERT_EQ(load(va + 3 * ps() + 8, &v), Kern::kSuccess) << "resident, wired: no SIGBUS (7.0)";
  EXPECT_EQ(v, 0u) << "zero-filled, not the file's bytes";
  EXPECT_EQ(cnt().fault_past_eof_zero_fill.load(), zero_fills + 1);
  EXPECT_EQ(store(va + 3 * ps(), 0x5707e), Kern::kSuccess);
  // It is the wired page, still wired, and mapped again: munlock unwires it.
  Page* m = pmap_extract(map().pmap, va + 3 * ps());
  ASSERT_NE(m, nullptr);
  {
    MutexLock l(o->mtx);
    EXPECT_EQ(page_lookup(*o, 3), m);
  }
  EXPECT_EQ(m->wire_count, 1);
  ASSERT_EQ(map_unwire(map(), va + 3 * ps(), va + 4 * ps(), true), Kern::kSuccess);
  EXPECT_EQ(m->wire_count, 0);
}

// Seed L309-310: a fault on a wired entry sets fault_type to the entry's
// protection, and the re-lookup after the pager (L802) uses it.  A read
// fault on an mlocked read/write mapping whose page a truncation unmapped
// (left wired, invalid) reads it in with the map unlocked; an mprotect to
// read-only meanwhile makes the re-lookup, for write, fail: 7.0 refuses
// the read (SIGSEGV).  The same read, not raced, succeeds.
TEST_F(OpsTest, AReadOfAWiredEntryMprotectedReadOnlyDuringItsPagerCallIsRefused) {
  Vnode& vp = new_vnode_filled(4 * ps(), std::byte{0x11});
  Object* o = vnode_pager_alloc(vp);
  const std::uint64_t va = mmap_object(o, 4, kProtRead | kProtWrite);
  ASSERT_EQ(map_wire(map(), va + 3 * ps(), va + 4 * ps(), true), Kern::kSuccess);
  {
    locking::SxExclusiveLock vl(vp.lock);
    vnode_pager_setsize(vp, ps());
    vnode_pager_setsize(vp, 4 * ps());
  }
  ASSERT_EQ(pte_at(va + 3 * ps()).page, nullptr) << "the cut unmapped the wired page";
  const std::uint64_t refused = cnt().fault_wired_type_refused.load();
  bool protected_meanwhile = false;
  at_first_io([&] {
    std::thread([&] { protected_meanwhile = map_protect(map(), va, va + 4 * ps(), kProtRead) == Kern::kSuccess; })
        .join();
  });
  std::uint64_t v = 1;
  EXPECT_EQ(load(va + 3 * ps(), &v), Kern::kProtectionFailure) << "a read, refused for want of write (7.0)";
  ASSERT_TRUE(protected_meanwhile);
  EXPECT_EQ(cnt().fault_wired_type_refused.load(), refused + 1);
  EXPECT_EQ(load(va + 3 * ps(), &v), Kern::kSuccess) << "not raced: the entry's protection is read-only now";
  EXPECT_EQ(cnt().fault_wired_type_refused.load(), refused + 1);
}

// munlock's vm_fault_unwire finds the pages to unwire through the pmap
// (seed L1065-1075): a wired page a truncation unmapped, and no fault
// mapped again, is not found, and stays wired in its object for good.  A
// later mlock and munlock of it, mapped meanwhile, leaves it as wired.
TEST_F(OpsTest, MunlockLeavesWiredAPageATruncationUnmapped) {
  Vnode& vp = new_vnode(4 * ps());
  Object* o = vnode_pager_alloc(vp);
  const std::uint64_t va = mmap_object(o, 4, kProtRead | kProtWrite);
  ASSERT_EQ(map_wire(map(), va + 3 * ps(), va + 4 * ps(), true), Kern::kSuccess);
  Page* m = pmap_extract(map().pmap, va + 3 * ps());
  ASSERT_NE(m, nullptr);
  {
    locking::SxExclusiveLock vl(vp.lock);
    vnode_pager_setsize(vp, ps());
    vnode_pager_setsize(vp, 4 * ps());
  }
  const std::uint64_t skipped = cnt().unwire_unmapped.load();
  ASSERT_EQ(map_unwire(map(), va + 3 * ps(), va + 4 * ps(), true), Kern::kSuccess);
  EXPECT_EQ(cnt().unwire_unmapped.load(), skipped + 1);
  EXPECT_EQ(m->wire_count, 1) << "not found unmapped: still wired";
  {
    MutexLock l(o->mtx);
    EXPECT_EQ(page_lookup(*o, 3), m);
  }
  ASSERT_EQ(map_wire(map(), va + 3 * ps(), va + 4 * ps(), true), Kern::kSuccess);
  EXPECT_EQ(m->wire_count, 2) << "the next mlock wires that same page again";
  EXPECT_EQ(pmap_extract(map().pmap, va + 3 * ps()), m);
  ASSERT_EQ(map_unwire(map(), va + 3 * ps(), va + 4 * ps(), true), Kern::kSuccess);
  EXPECT_EQ(m->wire_count, 1);
}

// The same page met through a private mapping whose shadow exists: the
// fault reaches the vnode object as a backing object, finds the wired page
// invalid, the pager does not have it (past the end), and a page found
// below the first object is freed (L621-625).  7.0's vm_page_free_toq
// panics on a wired page ("vm_page_free: freeing wired page"), and so does
// the model with fix fault-keeps-wired off.  With it on, the page stays in
// its object, unbusied and wired, and the fault goes on to zero-fill the
// shadow's page (as for any page the file does not have).
TEST_F(OpsTest, APrivateMappingsFaultPastTheEndFreesAWiredPageTruncationLeftUnlessFixed) {
  Vnode& vp = new_vnode(4 * ps());
  Object* o = vnode_pager_alloc(vp);
  const std::uint64_t va = mmap_object(o, 4, kProtRead | kProtWrite);
  ASSERT_EQ(map_wire(map(), va + 3 * ps(), va + 4 * ps(), true), Kern::kSuccess);
  Page* wired = pmap_extract(map().pmap, va + 3 * ps());
  Object* po = vnode_pager_alloc(vp);
  const std::uint64_t pva = mmap_object(po, 4, kProtRead | kProtWrite, kEntryCow | kEntryNeedsCopy);
  ASSERT_EQ(store(pva, 1), Kern::kSuccess) << "the private mapping's shadow";
  {
    locking::SxExclusiveLock vl(vp.lock);
    vnode_pager_setsize(vp, ps());
  }
  std::uint64_t v = 1;
  EXPECT_EQ(load(pva + 2 * ps(), &v), Kern::kProtectionFailure) << "not resident below: SIGBUS";
  vm().set_fix(Fix::kFaultKeepsWired, false);
  EXPECT_DEATH(load(pva + 3 * ps(), &v), "freeing a wired page");
  vm().set_fix(Fix::kFaultKeepsWired, true);
  const std::uint64_t kept = cnt().fault_kept_wired.load();
  ASSERT_EQ(load(pva + 3 * ps(), &v), Kern::kSuccess);
  EXPECT_EQ(v, 0u);
  EXPECT_EQ(cnt().fault_kept_wired.load(), kept + 1);
  MutexLock l(o->mtx);
  EXPECT_EQ(page_lookup(*o, 3), wired) << "left in its object";
  EXPECT_FALSE(wired->any_busy());
  EXPECT_EQ(wired->wire_count, 1);
}

// Fix wired-fault-wires.  An mlock of a read-only private mapping whose
// first object is a shadow wires the file's page 3 itself (a wired entry's
// fault takes its protection, read: no copy, L309-310).  A truncation
// unmaps it and leaves it wired, invalid.  A read past the end through the
// wired entry goes on below it (fix fault-keeps-wired) and zero-fills page
// 3 of the shadow, which the seed maps wired (the entry is, L891) without
// wiring it (only a wiring fault does, L903-910); the munlock unwires every
// page it finds mapped (L1065-1073), and 7.0 panics on that one.
class WiredPastEofTest : public OpsTest {
 protected:
  void read_past_the_end_through_a_wired_private_mapping(bool fixed);
};

void WiredPastEofTest::read_past_the_end_through_a_wired_private_mapping(bool fixed) {
  WiredPastEofTest& t = *this;
  const std::uint64_t ps = t.ps();
  t.vm().set_fix(Fix::kWiredFaultWires, fixed);
  Vnode& vp = t.new_vnode_filled(4 * ps, std::byte{0x33});
  Object* o = vnode_pager_alloc(vp);
  const std::uint64_t va = t.mmap_object(o, 4, kProtRead | kProtWrite, kEntryCow | kEntryNeedsCopy);
  ASSERT_EQ(t.store(va, 1), Kern::kSuccess) << "the shadow";
  ASSERT_EQ(map_protect(t.map(), va, va + 4 * ps, kProtRead), Kern::kSuccess);
  ASSERT_EQ(map_wire(t.map(), va + 3 * ps, va + 4 * ps, true), Kern::kSuccess);
  Page* file_page = pmap_extract(t.map().pmap, va + 3 * ps);
  ASSERT_NE(file_page, nullptr);
  ASSERT_EQ(file_page->object, o) << "the file's own page, wired";
  {
    locking::SxExclusiveLock vl(vp.lock);
    vnode_pager_setsize(vp, ps);
  }
  EXPECT_EQ(pmap_extract(t.map().pmap, va + 3 * ps), nullptr) << "the cut unmapped it";
  std::uint64_t v = 1;
  ASSERT_EQ(t.load(va + 3 * ps, &v), Kern::kSuccess) << "zero-filled in the shadow: no SIGBUS";
  EXPECT_EQ(v, 0u);
  Page* zero = pmap_extract(t.map().pmap, va + 3 * ps);
  ASSERT_NE(zero, nullptr);
  EXPECT_NE(zero->object, o);
  EXPECT_EQ(zero->wire_count, 1) << "wired for the entry";
  EXPECT_EQ(t.cnt().fault_wired_entry_wires.load(), 1u);
  ASSERT_EQ(map_unwire(t.map(), va + 3 * ps, va + 4 * ps, true), Kern::kSuccess);
  EXPECT_EQ(zero->wire_count, 0);
  EXPECT_EQ(file_page->wire_count, 1) << "the file's page stays wired, as one an unwire finds unmapped does";
}

TEST_F(WiredPastEofTest, WithoutTheFixAReadPastTheEndThroughAWiredPrivateMappingMapsAnUnwiredPageWired) {
  EXPECT_DEATH(read_past_the_end_through_a_wired_private_mapping(false), "panic: unwiring an unwired page");
  vm().set_fix(Fix::kWiredFaultWires, true);
}

TEST_F(WiredPastEofTest, AReadPastTheEndThroughAWiredPrivateMappingWiresTheZeroFill) {
  read_past_the_end_through_a_wired_private_mapping(true);
}

// After the regrow the wired page is inside the file again, invalid, and a
// fault reads it; when that read fails (L612-619) the seed frees the page,
// and 7.0 panics on it being wired.  Fixed, the fault fails (SIGBUS) and the
// page stays, wired, for the next fault to read.
TEST_F(OpsTest, APagerErrorOnAWiredPageTruncationLeftFreesItUnlessFixed) {
  Vnode& vp = new_vnode_filled(4 * ps(), std::byte{0x22});
  Object* o = vnode_pager_alloc(vp);
  const std::uint64_t va = mmap_object(o, 4, kProtRead | kProtWrite);
  ASSERT_EQ(map_wire(map(), va + 3 * ps(), va + 4 * ps(), true), Kern::kSuccess);
  Page* wired = pmap_extract(map().pmap, va + 3 * ps());
  {
    locking::SxExclusiveLock vl(vp.lock);
    vnode_pager_setsize(vp, ps());
    vnode_pager_setsize(vp, 4 * ps());
  }
  std::uint64_t v = 1;
  vm().set_io_error_ppm(1000000);  // every I/O fails
  vm().set_fix(Fix::kFaultKeepsWired, false);
  EXPECT_DEATH(load(va + 3 * ps(), &v), "freeing a wired page");
  vm().set_fix(Fix::kFaultKeepsWired, true);
  EXPECT_EQ(load(va + 3 * ps(), &v), Kern::kFailure);
  vm().set_io_error_ppm(0);
  ASSERT_EQ(load(va + 3 * ps(), &v), Kern::kSuccess);
  EXPECT_EQ(pmap_extract(map().pmap, va + 3 * ps()), wired) << "the same page, read again";
  EXPECT_EQ(wired->wire_count, 1);
  ASSERT_EQ(map_unwire(map(), va + 3 * ps(), va + 4 * ps(), true), Kern::kSuccess);
  EXPECT_EQ(wired->wire_count, 0);
}

// Shortening a file to inside a block, 7.0's ffs_truncate writes that block
// (UFS_BALLOC, then bwrite/bawrite), and allocbuf builds the buffer from
// the object's pages, sleeping on a busy one ("pgtblk", vfs_bio.c) and
// looking again.  The model's vnode_write_last_page does the same before
// vnode_pager_setsize: the bytes below the cut, as they are once the page
// is no longer busy (a store made meanwhile included), reach the file.
TEST_F(OpsTest, TruncationWritesTheLastBlockAfterWaitingForItsBusyPage) {
  Vnode& vp = new_vnode_filled(4 * ps(), std::byte{0x11});
  Object* o = vnode_pager_alloc(vp);
  const std::uint64_t va = mmap_object(o, 4, kProtRead | kProtWrite);  // shared, writable
  ASSERT_EQ(store(va + ps(), 0x2222u), Kern::kSuccess);
  Page* m = pmap_extract(map().pmap, va + ps());
  ASSERT_NE(m, nullptr);
  {
    MutexLock l(o->mtx);
    page_busy(m);
  }
  const std::uint64_t cut = ps() + ps() / 2;
  std::atomic<bool> done{false};
  std::thread truncator([&] {
    locking::SxExclusiveLock vl(vp.lock);
    vnode_write_last_page(vp, cut);
    done = true;
  });
  while (locking::sleepers(m) == 0 && !done.load()) std::this_thread::yield();
  EXPECT_FALSE(done.load()) << "\"pgtblk\": waits for the busy page";
  // (Read without the vnode lock, which the truncator holds while it
  // sleeps: its writes come after page_wakeup below, ordered by the lock
  // of the page's object.)
  const auto file_word = [&](std::uint64_t off) FL_NO_THREAD_SAFETY_ANALYSIS {
    std::uint64_t w = 0;
    std::memcpy(&w, vp.contents.data() + off, sizeof w);
    return w;
  };
  EXPECT_EQ(file_word(ps()), 0x1111111111111111u) << "nothing written while the page is busy";
  // The page stays mapped while busy: a store lands meanwhile.
  ASSERT_EQ(store(va + ps() + 16, 0x4444u), Kern::kSuccess);
  {
    MutexLock l(o->mtx);
    page_wakeup(m);
  }
  truncator.join();
  EXPECT_EQ(file_word(ps()), 0x2222u);
  EXPECT_EQ(file_word(ps() + 16), 0x4444u) << "the store made while the truncation slept is written";
  EXPECT_EQ(file_word(cut), 0x1111111111111111u) << "nothing past the cut is written";
  EXPECT_EQ(cnt().last_page_busy_waits.load(), 1u);
  EXPECT_EQ(pmap_extract(map().pmap, va + ps()), m) << "the page stays mapped (see core/README.md)";
}

// 7.0 vnode_pager_setsize zeroes the tail of the partial last page in place,
// mapped, and only then removes its mappings (vnode_pager.c 395, 409-410).
// A store through a mapping between the two is not lost: it stays in the
// page past the new end of the file, valid and clean, and a process reads it
// there after the truncation.
TEST_F(OpsTest, TruncationZeroesThePartialPageInPlaceAndAStoreInTheWindowSurvivesPastTheEnd) {
  Vnode& vp = new_vnode_filled(4 * ps(), std::byte{0x11});
  Object* o = vnode_pager_alloc(vp);
  const std::uint64_t va = mmap_object(o, 4, kProtRead | kProtWrite);  // shared, writable
  ASSERT_EQ(store(va + ps(), 0x2222u), Kern::kSuccess);
  Page* m = pmap_extract(map().pmap, va + ps());
  ASSERT_NE(m, nullptr);
  const std::uint64_t cut = ps() + ps() / 2, late = cut + 8;
  bool stored = false;
  std::uint64_t tail_seen = ~0ull;
  // Another CPU stores when the setsize next takes the page queues after
  // the tail reads zero: that is, to unmap the page.
  at_first_point(
      [&](const locking::PointInfo& info) {
        if (info.point != locking::Point::kLock || info.object != &vm().page_queues) return false;
        std::memcpy(&tail_seen, m->data + ps() / 2, sizeof tail_seen);  // (this thread zeroes it)
        return tail_seen == 0;
      },
      [&] {
        std::thread([&] {
          std::uint64_t v = 0x5555;
          stored = pmap_access(map().pmap, va + late, true, &v);
        }).join();
      });
  {
    locking::SxExclusiveLock vl(vp.lock);
    vnode_pager_setsize(vp, cut);
  }
  locking::set_point_hook(nullptr, nullptr);
  ASSERT_TRUE(stored) << "the page must still be mapped, writable, when its tail is zeroed";
  EXPECT_EQ(pmap_extract(map().pmap, va + ps()), nullptr) << "unmapped after the zeroing";
  EXPECT_EQ(cnt().setsize_zeroed_mapped.load(), 1u);
  {
    MutexLock l(o->mtx);
    ASSERT_EQ(page_lookup(*o, 1), m);
    EXPECT_TRUE(m->fully_valid());
    EXPECT_EQ(m->dirty.load(), kPageBitsAll) << "still partly dirty: wholly dirty (vnode_pager.c 426-427)";
  }
  std::uint64_t v = 0;
  ASSERT_EQ(load(va + ps(), &v), Kern::kSuccess);
  EXPECT_EQ(v, 0x2222u);
  ASSERT_EQ(load(va + cut, &v), Kern::kSuccess);
  EXPECT_EQ(v, 0u);
  ASSERT_EQ(load(va + late, &v), Kern::kSuccess);
  EXPECT_EQ(v, 0x5555u) << "7.x: the store in the window is still there past the end of the file";
}

// 7.0 vm_object_page_remove with clean_only write-protects a page before it
// looks at its dirty bits (vm_object.c 1842-1846): a store after that faults,
// so a page found clean cannot be dirtied between the test and its freeing.
TEST_F(OpsTest, CleanOnlyPageRemoveWriteProtectsBeforeItTestsDirtiness) {
  Vnode& vp = new_vnode(2 * ps());
  Object* o = vnode_pager_alloc(vp);
  const std::uint64_t va = mmap_object(o, 2, kProtRead | kProtWrite);
  std::uint64_t v = 0;
  ASSERT_EQ(load(va, &v), Kern::kSuccess);  // clean, mapped read/write
  ASSERT_EQ(store(va + ps(), 7u), Kern::kSuccess);  // dirty (modified in the pmap)
  Page* clean = pmap_extract(map().pmap, va);
  Page* dirty = pmap_extract(map().pmap, va + ps());
  ASSERT_NE(clean, nullptr);
  ASSERT_NE(dirty, nullptr);
  {
    MutexLock g(map().pmap.mtx);
    ASSERT_NE(map().pmap.find(va), nullptr);
    ASSERT_NE(map().pmap.find(va)->prot() & kProtWrite, 0) << "the clean page must be mapped writable for this test";
  }
  // The clean page's pmap is locked twice: to write-protect it, then to
  // unmap it.  A store in between must fault rather than land in a page
  // about to be freed.
  bool stored = true;
  on_lock_of(map().pmap.mtx, 2, [&] {
    std::uint64_t x = 9;
    stored = pmap_access(map().pmap, va, true, &x);
  });
  {
    MutexLock l(o->mtx);
    object_page_remove(*o, 0, 0, true);
  }
  locking::set_point_hook(nullptr, nullptr);
  EXPECT_FALSE(stored) << "a store after the write-protect must fault";
  MutexLock l(o->mtx);
  EXPECT_EQ(page_lookup(*o, 0), nullptr) << "the clean page is freed";
  EXPECT_EQ(page_lookup(*o, 1), dirty) << "the dirty page is kept";
  EXPECT_EQ(o->pip, 0);
}

TEST_F(OpsTest, ForkIsolatesParentAndChild) {
  std::uint64_t va = mmap_anon(3);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(store(va + i * ps(), 100u + static_cast<unsigned>(i)), Kern::kSuccess);
  Map& child = adopt(vmspace_fork(map()));
  std::uint64_t v = 0;
  // Both see the pre-fork bytes.
  ASSERT_EQ(load_in(child, va, &v), Kern::kSuccess);
  EXPECT_EQ(v, 100u);
  // Later writes stay on their side, whichever writes first.
  ASSERT_EQ(store(va, 200), Kern::kSuccess);
  ASSERT_EQ(store_in(child, va + ps(), 301), Kern::kSuccess);
  ASSERT_EQ(load_in(child, va, &v), Kern::kSuccess);
  EXPECT_EQ(v, 100u);
  ASSERT_EQ(load(va + ps(), &v), Kern::kSuccess);
  EXPECT_EQ(v, 101u);
  ASSERT_EQ(load(va, &v), Kern::kSuccess);
  EXPECT_EQ(v, 200u);
  ASSERT_EQ(load_in(child, va + ps(), &v), Kern::kSuccess);
  EXPECT_EQ(v, 301u);
  EXPECT_GE(cnt().v_cow_faults.load(), 2u);
  // A grandchild of the child sees the child's memory as of its fork.
  Map& grandchild = adopt(vmspace_fork(child));
  ASSERT_EQ(store_in(child, va + ps(), 302), Kern::kSuccess);
  ASSERT_EQ(load_in(grandchild, va + ps(), &v), Kern::kSuccess);
  EXPECT_EQ(v, 301u);
  ASSERT_EQ(load_in(grandchild, va + 2 * ps(), &v), Kern::kSuccess);
  EXPECT_EQ(v, 102u);
}

TEST_F(OpsTest, ForkSharesInheritShareEntries) {
  std::uint64_t va = 0;
  ASSERT_EQ(map_mmap(map(), &va, ps(), nullptr, 0, kProtRead | kProtWrite, kProtAll, 0, Inherit::kShare),
            Kern::kSuccess);
  ASSERT_EQ(store(va, 1), Kern::kSuccess);
  Map& child = adopt(vmspace_fork(map()));
  ASSERT_EQ(store_in(child, va, 2), Kern::kSuccess);
  std::uint64_t v = 0;
  ASSERT_EQ(load(va, &v), Kern::kSuccess);
  EXPECT_EQ(v, 2u);  // shared memory: the parent sees the child's write
  EXPECT_EQ(cnt().v_cow_faults.load(), 0u);
}

TEST_F(OpsTest, ForkCopiesAWiredEntryAtOnce) {
  std::uint64_t va = mmap_anon(2);
  ASSERT_EQ(store(va, 5), Kern::kSuccess);
  ASSERT_EQ(map_wire(map(), va, va + 2 * ps(), true), Kern::kSuccess);
  Map& child = adopt(vmspace_fork(map()));
  // The child's pages exist and are mapped already: vm_fault_copy_entry.
  EXPECT_NE(pmap_extract(child.pmap, va), nullptr);
  EXPECT_NE(pmap_extract(child.pmap, va + ps()), pmap_extract(map().pmap, va + ps()));
  std::uint64_t v = 0;
  EXPECT_TRUE(pmap_access(child.pmap, va, false, &v));
  EXPECT_EQ(v, 5u);
  ASSERT_EQ(store(va, 6), Kern::kSuccess);
  ASSERT_EQ(load_in(child, va, &v), Kern::kSuccess);
  EXPECT_EQ(v, 5u);
  ASSERT_EQ(map_unwire(map(), va, va + 2 * ps(), true), Kern::kSuccess);
}

TEST_F(OpsTest, ExitOfTheLastReferenceFreesEverything) {
  const std::uint32_t before = free_pages();
  std::uint64_t va = mmap_anon(8);
  for (int i = 0; i < 8; ++i) ASSERT_EQ(store(va + i * ps(), 1), Kern::kSuccess);
  Map& child = adopt(vmspace_fork(map()));
  for (int i = 0; i < 4; ++i) ASSERT_EQ(store_in(child, va + i * ps(), 2), Kern::kSuccess);
  EXPECT_LT(free_pages(), before - 8);
  map_remove_all(child);  // the child exits
  map_remove_all(map());  // and the parent
  EXPECT_EQ(free_pages(), before);
  EXPECT_EQ(vm().live_objects.load(), 0);
}

TEST_F(OpsTest, MprotectReadOnlyMakesWritesFail) {
  std::uint64_t va = mmap_anon(2);
  ASSERT_EQ(store(va, 9), Kern::kSuccess);
  ASSERT_EQ(map_protect(map(), va, va + 2 * ps(), kProtRead), Kern::kSuccess);
  std::uint64_t v = 10;
  EXPECT_FALSE(pmap_access(map().pmap, va, true, &v));  // the translation lost write
  EXPECT_EQ(vm_fault(map(), va, kProtWrite, kFaultNormal), Kern::kProtectionFailure);
  EXPECT_EQ(store(va + ps(), 1), Kern::kProtectionFailure);
  ASSERT_EQ(load(va, &v), Kern::kSuccess);
  EXPECT_EQ(v, 9u);
  // Beyond max_protection is refused outright.
  std::uint64_t ro = 0;
  ASSERT_EQ(map_mmap(map(), &ro, ps(), nullptr, 0, kProtRead, kProtRead, 0, Inherit::kCopy), Kern::kSuccess);
  EXPECT_EQ(map_protect(map(), ro, ro + ps(), kProtRead | kProtWrite), Kern::kProtectionFailure);
}

TEST_F(OpsTest, MlockWiresAndMunlockReleases) {
  std::uint64_t va = mmap_anon(4);
  ASSERT_EQ(map_wire(map(), va, va + 4 * ps(), true), Kern::kSuccess);
  EXPECT_EQ(vm().wired_count.load(), 4u + 1);  // and the page-table page of their translations
  // Wired pages are never candidates for pageout.
  PageoutStats st = pageout_scan(vm());
  EXPECT_EQ(st.laundered + st.cached, 0u);
  ASSERT_EQ(map_wire(map(), va, va + 4 * ps(), true), Kern::kSuccess);  // mlock twice is once
  EXPECT_EQ(vm().wired_count.load(), 4u + 1);
  ASSERT_EQ(map_unwire(map(), va, va + 4 * ps(), true), Kern::kSuccess);
  EXPECT_EQ(vm().wired_count.load(), 1u);  // the translations stay, so does their page-table page
  // munmap of mlocked memory unwires first.
  ASSERT_EQ(map_wire(map(), va, va + 2 * ps(), true), Kern::kSuccess);
  ASSERT_EQ(map_munmap(map(), va, va + 4 * ps()), Kern::kSuccess);
  EXPECT_EQ(vm().wired_count.load(), 0u);
  EXPECT_EQ(map_wire(map(), va, va + ps(), true), Kern::kInvalidAddress);
}

// The entries of [lo, hi) as (start, end) pairs, read under the map lock.
std::vector<std::pair<std::uint64_t, std::uint64_t>> entries_of(Map& m, std::uint64_t lo, std::uint64_t hi) {
  locking::SxSharedLock l(m.lock);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  for (auto it = m.entries.lower_bound(lo); it != m.entries.end() && it->first < hi; ++it)
    out.emplace_back(it->second.start, it->second.end);
  return out;
}

int ref_count(Object* o) {
  MutexLock l(o->mtx);
  return o->ref_count;
}

// 7.0 vm_map_simplify_entry: an mprotect, madvise or mlock over part of an
// entry clips it, and putting the part back as it was joins the pieces
// again, dropping the references the clips took.
TEST_F(OpsTest, EntriesSplitByMprotectMadviseAndMlockAreJoinedWhenAlikeAgain) {
  const std::uint64_t va = mmap_anon(8), end = va + 8 * ps();
  ASSERT_EQ(store(va, 1), Kern::kSuccess);  // the entry gets its object
  Object* o = nullptr;
  {
    locking::SxSharedLock l(map().lock);
    o = map().lookup_entry(va)->object;
  }
  ASSERT_NE(o, nullptr);
  const std::uint64_t merges = cnt().entry_merges.load();

  ASSERT_EQ(map_protect(map(), va + 2 * ps(), va + 5 * ps(), kProtRead), Kern::kSuccess);
  EXPECT_EQ(entries_of(map(), va, end).size(), 3u);
  EXPECT_EQ(ref_count(o), 3);
  ASSERT_EQ(map_protect(map(), va + 2 * ps(), va + 5 * ps(), kProtRead | kProtWrite), Kern::kSuccess);
  EXPECT_EQ(entries_of(map(), va, end), (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{va, end}}));
  EXPECT_EQ(ref_count(o), 1);
  EXPECT_EQ(cnt().entry_merges.load(), merges + 2);

  ASSERT_EQ(map_madvise(map(), va + ps(), va + 3 * ps(), Behavior::kRandom), Kern::kSuccess);
  EXPECT_EQ(entries_of(map(), va, end).size(), 3u);
  ASSERT_EQ(map_madvise(map(), va, end, Behavior::kNormal), Kern::kSuccess);
  EXPECT_EQ(entries_of(map(), va, end).size(), 1u);

  ASSERT_EQ(map_wire(map(), va + 6 * ps(), end, true), Kern::kSuccess);
  EXPECT_EQ(entries_of(map(), va, end).size(), 2u);
  ASSERT_EQ(map_unwire(map(), va + 6 * ps(), end, true), Kern::kSuccess);
  EXPECT_EQ(entries_of(map(), va, end).size(), 1u);
  EXPECT_EQ(ref_count(o), 1);
  // Changing part of an entry to what it already is clips and joins back.
  ASSERT_EQ(map_protect(map(), va + ps(), va + 2 * ps(), kProtRead | kProtWrite), Kern::kSuccess);
  EXPECT_EQ(entries_of(map(), va, end).size(), 1u);
  EXPECT_EQ(ref_count(o), 1);
  std::uint64_t v = 0;
  ASSERT_EQ(load(va, &v), Kern::kSuccess);
  EXPECT_EQ(v, 1u);
}

// Entries are joined only when alike: two mappings side by side have
// different objects; pieces of one object stay apart while their
// protections, wire counts or transitions differ.
TEST_F(OpsTest, EntriesOfOtherObjectsOrOtherAttributesStayApart) {
  const std::uint64_t a = mmap_anon(2), b = mmap_anon(2);
  ASSERT_EQ(b, a + 2 * ps());  // first fit: right above
  ASSERT_EQ(store(a, 1), Kern::kSuccess);
  ASSERT_EQ(store(b, 2), Kern::kSuccess);
  ASSERT_EQ(map_protect(map(), a, b + 2 * ps(), kProtRead), Kern::kSuccess);
  ASSERT_EQ(map_protect(map(), a, b + 2 * ps(), kProtRead | kProtWrite), Kern::kSuccess);
  EXPECT_EQ(entries_of(map(), a, b + 2 * ps()).size(), 2u);

  ASSERT_EQ(map_wire(map(), a, a + ps(), true), Kern::kSuccess);
  ASSERT_EQ(map_wire(map(), a + ps(), a + 2 * ps(), true), Kern::kSuccess);
  // Both pieces wired once and user-wired: alike, so one again.
  EXPECT_EQ(entries_of(map(), a, b).size(), 1u);
  ASSERT_EQ(map_unwire(map(), a, a + ps(), true), Kern::kSuccess);
  EXPECT_EQ(entries_of(map(), a, b).size(), 2u);
  ASSERT_EQ(map_unwire(map(), a + ps(), a + 2 * ps(), true), Kern::kSuccess);
  EXPECT_EQ(entries_of(map(), a, b).size(), 1u);

  // Not an entry in transition, nor into one.
  map_lock(map());
  map_clip_end(map(), a + ps());
  auto& low = map().entries.at(a);
  low.eflags |= kEntryInTransition;
  EXPECT_EQ(map_simplify_entry(map(), &low), &low);
  EXPECT_EQ(map_simplify_entry(map(), &map().entries.at(a + ps())), &map().entries.at(a + ps()));
  EXPECT_EQ(map().entries.count(a + ps()), 1u);
  low.eflags &= static_cast<std::uint16_t>(~kEntryInTransition);
  map_unlock(map());

  // The start of a range joins what is alike before it clips; its end does
  // not, and a join takes the neighbours only, not theirs (7.0 likewise).
  const std::uint64_t c = mmap_anon(4);
  ASSERT_EQ(store(c, 3), Kern::kSuccess);
  Object* o = nullptr;
  map_lock(map());
  o = map().lookup_entry(c)->object;
  map_clip_end(map(), c + ps());
  map_clip_end(map(), c + 2 * ps());  // clip_end never joins
  map_unlock(map());
  EXPECT_EQ(entries_of(map(), c, c + 4 * ps()).size(), 3u);
  EXPECT_EQ(ref_count(o), 3);
  map_lock(map());
  map_clip_start(map(), c + 3 * ps());
  map_unlock(map());
  // In pages: [c, c+1) [c+1, c+2) [c+2, c+4); the entry containing c+3
  // joins the one below it (not [c, c+1)), then is cut at c+3.
  EXPECT_EQ(entries_of(map(), c, c + 4 * ps()),
            (std::vector<std::pair<std::uint64_t, std::uint64_t>>{
                {c, c + ps()}, {c + ps(), c + 3 * ps()}, {c + 3 * ps(), c + 4 * ps()}}));
  EXPECT_EQ(ref_count(o), 3);  // one joined away, one clipped in
}

}  // namespace
}  // namespace faultline::vm
