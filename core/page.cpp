#include "core/page.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>

#include "core/object.h"
#include "core/pager.h"
#include "core/pmap.h"
#include "core/vm.h"
#include "locking/kassert.h"

namespace faultline::vm {

using locking::MutexLock;

const char* page_queue_name(PageQueue q) noexcept {
  switch (q) {
    case PageQueue::kNone: return "none";
    case PageQueue::kFree: return "free";
    case PageQueue::kInactive: return "inactive";
    case PageQueue::kActive: return "active";
    case PageQueue::kCache: return "cache";
  }
  return "?";
}

void PageList::push_tail(Page* p) noexcept {
  p->q_next = nullptr;
  p->q_prev = tail;
  (tail != nullptr ? tail->q_next : head) = p;
  tail = p;
  ++count;
}

void PageList::push_head(Page* p) noexcept {
  p->q_prev = nullptr;
  p->q_next = head;
  (head != nullptr ? head->q_prev : tail) = p;
  head = p;
  ++count;
}

void PageList::unlink(Page* p) noexcept {
  (p->q_prev != nullptr ? p->q_prev->q_next : head) = p->q_next;
  (p->q_next != nullptr ? p->q_next->q_prev : tail) = p->q_prev;
  p->q_prev = p->q_next = nullptr;
  --count;
}

namespace {

// As vm_page_free_wakeup: VM_WAIT sleepers are woken once free + cache is
// back at free_min, not by every freed page, so they do not wake only to
// find memory still short (the hysteresis between severe and min).
void wake_free_waiters(Vm& vm) FL_REQUIRES(vm.free_mtx) {
  vm.free_mtx.assert_owned();
  if (vm.free_waiters != 0 && !vm.count_min()) locking::wakeup(&vm.free_count);
}

// A page no one owns goes to the head of the free list (its contents are
// not known to be zero) and VM_WAIT sleepers are woken.  Requires: the page
// on no queue and in no object; free_mtx not held.
void enqueue_free(Vm& vm, Page* m) {
  m->flags = 0;
  MutexLock f(vm.free_mtx);
  m->queue = PageQueue::kFree;
  vm.free_list.push_head(m);
  vm.free_count.fetch_add(1, std::memory_order_relaxed);
  wake_free_waiters(vm);
}


// vm_page_cache_remove (7.0 vm_page.c 888-914): a cached page leaves its
// object's cache and the cache list, and belongs to no one.  Only the
// free-queue mutex is needed (not the object's lock).
void cache_remove(Vm& vm, Page* m) FL_REQUIRES(vm.free_mtx) {
  vm.free_mtx.assert_owned();
  FL_KASSERT(m->queue == PageQueue::kCache && m->object != nullptr, "vm_page_cache_remove: page not cached");
  [[maybe_unused]] const std::size_t erased = m->object->cache.erase(m->pindex);
  FL_KASSERT(erased == 1, "a cached page missing from its object's cache");
  vm.cache.unlink(m);
  vm.cache_count.fetch_sub(1, std::memory_order_relaxed);
  m->queue = PageQueue::kNone;
  m->object = nullptr;
}

}  // namespace

// The daemon checks pages_needed under free_mtx before it sleeps; setting it
// first and waking under free_mtx cannot be missed.
void wake_pagedaemon(Vm& vm) {
  if (!vm.pages_needed.exchange(true)) {
    vm.counters().bump(vm.counters().v_pdwakeups);
    MutexLock f(vm.free_mtx);
    locking::wakeup(&vm.pages_needed);
  }
}

namespace {

// The allocation proper, under free_mtx: a cached page of (object, pindex)
// if it has one (*reactivated), else a free page, else the oldest cached
// page, emptied; nullptr at the reserve (or, with kAllocIfNotCached, when
// (object, pindex) is cached: *refused).
Page* take_page(Vm& vm, Object* object, Pindex pindex, unsigned flags, bool* reactivated, bool* refused)
    FL_NO_THREAD_SAFETY_ANALYSIS {
  const std::uint32_t reserve = (flags & kAllocSystem) != 0 ? 0 : vm.config().free_reserved;
  MutexLock f(vm.free_mtx);
  // 1031-1035: the reserve is checked first, so even giving a cached page
  // back to its own object can fail.
  if (vm.free_count.load(std::memory_order_relaxed) + vm.cache_count.load(std::memory_order_relaxed) <= reserve)
    return nullptr;
  Page* m = nullptr;
  Page* cached = nullptr;
  // vm_page_cache_lookup (868-879) searches only an object with cached pages.
  if (object != nullptr && !object->cache.empty())
    if (auto c = object->cache.find(pindex); c != object->cache.end()) cached = c->second;
  if (cached != nullptr) {
    // 1040-1047: (object, pindex) has a cached page.
    if ((flags & kAllocIfNotCached) != 0) {
      *refused = true;
      return nullptr;
    }
    m = cached;
    cache_remove(vm, m);
    *reactivated = true;
  } else if (vm.free_list.count != 0) {
    // Prezeroed pages sit at the tail, freed ones at the head.
    m = (flags & kAllocZero) != 0 ? vm.free_list.tail : vm.free_list.head;
    vm.free_list.unlink(m);
    vm.free_count.fetch_sub(1, std::memory_order_relaxed);
    m->queue = PageQueue::kNone;
  } else {
    // vm_phys_alloc_pages takes a cached page when no free one is left:
    // the oldest, whatever object it caches (1072-1083: emptied).
    m = vm.cache.head;
    cache_remove(vm, m);
    m->valid = 0;
  }
  return m;
}

// A page just taken by take_page is on no queue and in no object: nobody
// else can reach it.  Its state starts over (a reactivated page keeps its
// valid bits).
void init_taken(Page* m, bool keep_valid, bool zeroed, bool vpo_busy) {
  FL_KASSERT(m->wire_count == 0 && m->hold_count == 0 && m->cow == 0 && m->pv.empty(),
             "allocating a page that is wired, held, lent or mapped");
  m->flags = zeroed ? kPgZero : 0;
  m->act_count = 0;
  if (!keep_valid) m->valid = 0;
  m->dirty = 0;
  m->busy = 0;
  m->oflags = vpo_busy ? kVpoBusy : 0;
}

}  // namespace

Page* page_alloc(Object& object, Pindex pindex, unsigned flags) FL_NO_THREAD_SAFETY_ANALYSIS {
  object.mtx.assert_owned();
  Vm& vm = object.vm;
  bool reactivated = false, refused = false;
  Page* m = take_page(vm, &object, pindex, flags, &reactivated, &refused);
  if (m == nullptr) {
    if (!refused) wake_pagedaemon(vm);
    return nullptr;
  }
  if (reactivated) {
    vm.counters().bump(vm.counters().v_reactivated);
    vm.counters().bump(vm.counters().cache_reactivations);
  }
  // 1136-1137: vm_paging_needed.
  if (vm.count_min()) wake_pagedaemon(vm);
  // Only a free page can be known to be zero: a cached page holds data.
  init_taken(m, reactivated, (m->flags & kPgZero) != 0 && (flags & kAllocZero) != 0, true);
  page_insert(m, object, pindex);
  return m;
}

Page* page_alloc_noobj(Vm& vm, unsigned flags) {
  bool reactivated = false, refused = false;
  Page* m = take_page(vm, nullptr, 0, flags, &reactivated, &refused);
  if (m == nullptr) {
    wake_pagedaemon(vm);
    return nullptr;
  }
  if (vm.count_min()) wake_pagedaemon(vm);
  if ((flags & kAllocZero) != 0 && (m->flags & kPgZero) == 0) page_zero(m);
  init_taken(m, false, false, false);
  // VM_ALLOC_WIRED: wired from the start, on no queue.
  m->wire_count = 1;
  vm.wired_count.fetch_add(1, std::memory_order_relaxed);
  return m;
}

void page_free(Page* m) {
  Vm& vm = *m->vm;
  vm.page_queues.assert_owned();
  if (m->object != nullptr) m->object->mtx.assert_owned();
  FL_KASSERT(m->busy == 0, "freeing a page with I/O in progress");
  FL_KASSERT(m->wire_count == 0, "freeing a wired page");
  FL_KASSERT(m->pv.empty(), "freeing a mapped page");
  FL_KASSERT(m->queue != PageQueue::kFree && m->queue != PageQueue::kCache, "freeing a free or cached page");
  pageq_remove(m);
  if (m->object != nullptr) page_remove(m);  // also clears VPO_BUSY, waking sleepers
  m->valid = 0;
  m->dirty = 0;
  m->oflags = 0;
  m->act_count = 0;
  vm.counters().bump(vm.counters().v_tfree);
  if (m->hold_count != 0) return;  // freed for real by the last page_unhold
  enqueue_free(vm, m);
}

void vm_wait(Vm& vm, const char* wmesg) {
  wake_pagedaemon(vm);
  MutexLock f(vm.free_mtx);
  // As vm_wait / vm_waitpfault: one sleep, until free + cache is back at
  // free_min (wake_free_waiters wakes under free_mtx, so the check cannot
  // miss it).  An allocation can also fail with memory above free_min (the
  // cached pages' objects were all busy): then there is nothing to wait
  // for and the caller retries at once.
  if (!vm.count_min()) return;
  vm.counters().bump(vm.counters().v_vmwait);
  ++vm.free_waiters;
  locking::msleep(&vm.free_count, vm.free_mtx, wmesg);
  --vm.free_waiters;
}

Page* page_lookup(Object& object, Pindex pindex) {
  object.mtx.assert_owned();
  auto it = object.pages.find(pindex);
  return it != object.pages.end() ? it->second : nullptr;
}

void page_insert(Page* m, Object& object, Pindex pindex) {
  object.mtx.assert_owned();
  FL_KASSERT(m->object == nullptr, "inserting a page that has an object");
  [[maybe_unused]] bool inserted = object.pages.emplace(pindex, m).second;
  FL_KASSERT(inserted, "a page already exists at that pindex");
  m->object = &object;
  m->pindex = pindex;
}

void page_remove(Page* m) {
  Object* o = m->object;
  if (o == nullptr) return;
  o->mtx.assert_owned();
  if ((m->oflags & kVpoBusy) != 0) {
    // vm_page_remove flashes a busy page: its sleepers must look again.
    const bool wanted = (m->oflags & kVpoWanted) != 0;
    m->oflags &= static_cast<std::uint8_t>(~(kVpoBusy | kVpoWanted));
    if (wanted) locking::wakeup(m);
  }
  o->pages.erase(m->pindex);
  m->object = nullptr;
}

void page_rename(Page* m, Object& new_object, Pindex new_pindex) {
  new_object.mtx.assert_owned();
  m->vm->page_queues.assert_owned();
  page_remove(m);
  page_insert(m, new_object, new_pindex);
  page_dirty(m);
}

void page_busy(Page* m) {
  m->object->mtx.assert_owned();
  FL_KASSERT((m->oflags & kVpoBusy) == 0, "page already busy");
  m->oflags |= kVpoBusy;
}

void page_wakeup(Page* m) {
  m->object->mtx.assert_owned();
  FL_KASSERT((m->oflags & kVpoBusy) != 0, "page not busy");
  const bool wanted = (m->oflags & kVpoWanted) != 0;
  m->oflags &= static_cast<std::uint8_t>(~(kVpoBusy | kVpoWanted));
  if (wanted && m->vm->config().mutant != Mutant::kBusyWakeupLost) locking::wakeup(m);
}

void page_io_start(Page* m) {
  m->object->mtx.assert_owned();
  ++m->busy;
}

void page_io_finish(Page* m) {
  m->object->mtx.assert_owned();
  FL_KASSERT(m->busy != 0, "ending I/O on a page with none in progress");
  if (--m->busy == 0 && (m->oflags & kVpoWanted) != 0) {
    m->oflags &= static_cast<std::uint8_t>(~kVpoWanted);
    locking::wakeup(m);
  }
}

bool page_sleep_if_busy(Page* m, bool also_soft, const char* wmesg) FL_NO_THREAD_SAFETY_ANALYSIS {
  Object* o = m->object;
  o->mtx.assert_owned();
  if ((m->oflags & kVpoBusy) == 0 && !(also_soft && m->busy != 0)) return false;
  {
    // Whoever holds it busy is using it: keep it from looking idle.
    MutexLock pq(m->vm->page_queues);
    m->flags |= kPgReferenced;
  }
  m->oflags |= kVpoWanted;
  locking::msleep(m, o->mtx, wmesg);
  return true;
}

void pageq_remove(Page* m) {
  Vm& vm = *m->vm;
  vm.page_queues.assert_owned();
  switch (m->queue) {
    case PageQueue::kActive: vm.active.unlink(m); break;
    case PageQueue::kInactive: vm.inactive.unlink(m); break;
    case PageQueue::kCache: FL_KASSERT(false, "pageq_remove of a cached page"); return;
    case PageQueue::kFree: FL_KASSERT(false, "pageq_remove of a free page"); return;
    case PageQueue::kNone: return;
  }
  m->queue = PageQueue::kNone;
}

void page_activate(Page* m) {
  Vm& vm = *m->vm;
  vm.page_queues.assert_owned();
  if (m->queue == PageQueue::kActive) return;
  pageq_remove(m);
  if (m->wire_count == 0) {
    vm.active.push_tail(m);
    m->queue = PageQueue::kActive;
    if (m->act_count < 5) m->act_count = 5;  // ACT_INIT
  }
}

void page_deactivate(Page* m) {
  Vm& vm = *m->vm;
  vm.page_queues.assert_owned();
  if (m->queue == PageQueue::kInactive) return;
  if (m->wire_count == 0) {
    m->flags &= static_cast<std::uint8_t>(~kPgWinatcfls);
    pageq_remove(m);
    vm.inactive.push_tail(m);
    m->queue = PageQueue::kInactive;
  }
}

void page_cache(Page* m) FL_NO_THREAD_SAFETY_ANALYSIS {
  Vm& vm = *m->vm;
  Object& o = *m->object;
  vm.page_queues.assert_owned();
  o.mtx.assert_owned();
  FL_KASSERT(!m->any_busy() && m->hold_count == 0 && m->wire_count == 0, "vm_page_cache: busy, held or wired page");
  pmap_remove_all(m);
  FL_KASSERT(!m->is_dirty(), "vm_page_cache: caching a dirty page");
  // 1523-1533: nothing would come back from the pager: free it.  (A
  // device's pages are fictitious in 7.0, never on a paging queue; the
  // model's are copies, which are freed here rather than kept.)
  if (m->valid == 0 || o.type == ObjectType::kDefault || o.type == ObjectType::kDevice ||
      (o.type == ObjectType::kSwap && !pager_has_page(o, m->pindex, nullptr, nullptr))) {
    page_free(m);
    return;
  }
  pageq_remove(m);
  o.pages.erase(m->pindex);  // out of the resident set, still m's object
  m->flags &= static_cast<std::uint8_t>(~kPgZero);
  MutexLock f(vm.free_mtx);
  [[maybe_unused]] const bool inserted = o.cache.emplace(m->pindex, m).second;
  FL_KASSERT(inserted, "vm_page_cache: offset already cached");
  vm.cache.push_tail(m);
  m->queue = PageQueue::kCache;
  vm.cache_count.fetch_add(1, std::memory_order_relaxed);
  vm.counters().bump(vm.counters().v_tcached);
  wake_free_waiters(vm);
}

bool object_has_cached(Object& object, Pindex pindex) FL_NO_THREAD_SAFETY_ANALYSIS {
  object.mtx.assert_owned();
  MutexLock f(object.vm.free_mtx);
  return object.cache.count(pindex) != 0;
}

void page_cache_free(Object& object, Pindex start, Pindex end) FL_NO_THREAD_SAFETY_ANALYSIS {
  object.mtx.assert_owned();
  Vm& vm = object.vm;
  MutexLock f(vm.free_mtx);
  // 7.0 vm_page.c 805-860: the pages stay where they are in the physical
  // allocator and become free; free + cache does not change, so no wakeup.
  auto it = object.cache.lower_bound(start);
  while (it != object.cache.end() && (end == 0 || it->first < end)) {
    Page* m = it->second;
    ++it;
    cache_remove(vm, m);
    m->valid = 0;
    m->flags = 0;
    m->queue = PageQueue::kFree;
    vm.free_list.push_head(m);
    vm.free_count.fetch_add(1, std::memory_order_relaxed);
  }
}

void page_cache_transfer(Object& orig, Pindex offidxstart, Object& nobj) FL_NO_THREAD_SAFETY_ANALYSIS {
  orig.mtx.assert_owned();
  nobj.mtx.assert_owned();
  Vm& vm = orig.vm;
  MutexLock f(vm.free_mtx);
  FL_KASSERT(nobj.cache.empty(), "vm_page_cache_transfer: the new object has cached pages");
  auto it = orig.cache.lower_bound(offidxstart);
  while (it != orig.cache.end() && it->first - offidxstart < nobj.size) {
    Page* m = it->second;
    it = orig.cache.erase(it);
    m->object = &nobj;
    m->pindex -= offidxstart;
    nobj.cache.emplace(m->pindex, m);
  }
}

void page_wire(Page* m) {
  Vm& vm = *m->vm;
  vm.page_queues.assert_owned();
  if (m->wire_count == 0) {
    pageq_remove(m);
    vm.wired_count.fetch_add(1, std::memory_order_relaxed);
  }
  ++m->wire_count;
}

void page_unwire(Page* m, bool activate) {
  Vm& vm = *m->vm;
  vm.page_queues.assert_owned();
  FL_KASSERT(m->wire_count != 0, "unwiring an unwired page");
  if (--m->wire_count != 0) return;
  vm.wired_count.fetch_sub(1, std::memory_order_relaxed);
  if (activate) {
    vm.active.push_tail(m);
    m->queue = PageQueue::kActive;
  } else {
    m->flags &= static_cast<std::uint8_t>(~kPgWinatcfls);
    vm.inactive.push_tail(m);
    m->queue = PageQueue::kInactive;
  }
}

void page_hold(Page* m) {
  m->vm->page_queues.assert_owned();
  ++m->hold_count;
}

void page_unhold(Page* m) FL_NO_THREAD_SAFETY_ANALYSIS {
  Vm& vm = *m->vm;
  vm.page_queues.assert_owned();
  FL_KASSERT(m->hold_count != 0, "unholding a page that is not held");
  // A page freed while held waits for its last unhold (7.0's PQ_HOLD).  One
  // wired meanwhile has left that queue (vm_page_wire dequeues it) and is
  // freed by its unwiring instead: socow_setup wires a page it holds, which
  // munmap may have freed under the hold, and socow_iodone frees it.
  if (--m->hold_count != 0 || m->object != nullptr || m->queue != PageQueue::kNone || m->wire_count != 0) return;
  // Freed while held: free it for real now.
  enqueue_free(vm, m);
}

void page_dirty(Page* m) {
  m->object->mtx.assert_owned();
  // 7.0 asserts the page is not cached (PG_CACHED) and not free, reading
  // its flags without the page queues.  The model's cached page is marked
  // by its queue field, which an unwire may change meanwhile (a loan's
  // end; TSan caught it in truncate), so it asks the object instead, under
  // its lock: a cached page has left the resident set.
  FL_KASSERT(page_lookup(*m->object, m->pindex) == m, "dirtying a cached page");
  m->dirty = kPageBitsAll;
}

void page_zero(Page* m) { std::memset(m->data, 0, m->vm->page_size()); }

void page_copy(const Page* src, Page* dst) {
  std::memcpy(dst->data, src->data, src->vm->page_size());
}

void page_zero_invalid(Page* m) {
  m->object->mtx.assert_owned();
  const std::uint32_t block = m->vm->page_size() / 8;
  for (int b = 0; b < 8; ++b)
    if ((m->valid & (1u << b)) == 0) std::memset(m->data + b * block, 0, block);
  m->valid = kPageBitsAll;
}

std::uint64_t page_word_mapped(const Page* m, std::uint32_t off) {
  m->object->mtx.assert_owned();
  FL_KASSERT(off % 8 == 0 && off < m->vm->page_size(), "page_word_mapped: a word outside the page");
  return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(m->data + off))
      .load(std::memory_order_relaxed);
}

void page_copy_mapped(const Page* src, Page* dst) {
  const std::uint32_t size = src->vm->page_size();
  for (std::uint32_t off = 0; off < size; off += 8) {
    const std::uint64_t w = page_word_mapped(src, off);
    std::memcpy(dst->data + off, &w, sizeof w);
  }
}

void page_zero_area_mapped(Page* m, std::uint32_t base, std::uint32_t size) {
  m->object->mtx.assert_owned();
  FL_KASSERT(base + size <= m->vm->page_size(), "zeroing past the end of a page");
  std::uint32_t off = base;
  const std::uint32_t end = base + size;
  while (off < end) {
    const std::uint32_t word = off & ~7u;
    std::atomic_ref<std::uint64_t> w(*reinterpret_cast<std::uint64_t*>(m->data + word));
    if (off == word && end - off >= 8) {
      w.store(0, std::memory_order_relaxed);
      off += 8;
      continue;
    }
    // A part of a word: clear just its bytes in [off, end).
    std::array<std::uint8_t, 8> keep{};
    keep.fill(0xff);
    const std::uint32_t stop = std::min(end, word + 8);
    for (std::uint32_t b = off; b < stop; ++b) keep[b - word] = 0;
    std::uint64_t mask = 0;
    std::memcpy(&mask, keep.data(), sizeof mask);
    std::uint64_t v = w.load(std::memory_order_relaxed);
    while (!w.compare_exchange_weak(v, v & mask, std::memory_order_relaxed)) {
    }
    off = stop;
  }
}

void page_set_validclean(Page* m, std::uint32_t base, std::uint32_t size) {
  m->object->mtx.assert_owned();
  m->vm->page_queues.assert_owned();
  if (size == 0) return;
  const std::uint32_t block = m->vm->page_size() / 8;
  const unsigned first = base / block, last = (base + size - 1) / block;
  const auto bits = static_cast<std::uint8_t>((2u << last) - (1u << first));
  m->valid |= bits;
  m->dirty.store(static_cast<std::uint8_t>(m->dirty.load(std::memory_order_relaxed) & ~bits),
                 std::memory_order_relaxed);
}

void page_loan(Page* m) {
  m->vm->page_queues.assert_owned();
  page_wire(m);
  ++m->cow;
  pmap_remove_write(m);
}

void page_loan_end(Page* m) {
  Vm& vm = *m->vm;
  vm.page_queues.assert_owned();
  FL_KASSERT(m->cow != 0, "ending a loan that was not made");
  --m->cow;
  page_unwire(m, false);
  if (m->wire_count == 0 && m->object == nullptr) {
    // The object replaced it (cowfault): the lender's copy is ours to free.
    pageq_remove(m);
    page_free(m);
  }
}

void page_cowfault(Page* m) FL_NO_THREAD_SAFETY_ANALYSIS {
  Vm& vm = *m->vm;
  Object& object = *m->object;
  const Pindex pindex = m->pindex;
  object.mtx.assert_owned();
  vm.page_queues.assert_owned();
  for (;;) {
    pmap_remove_all(m);
    page_remove(m);
    Page* mnew = page_alloc(object, pindex, kAllocNormal);
    if (mnew == nullptr) {
      page_insert(m, object, pindex);
      vm.page_queues.unlock();
      object.mtx.unlock();
      vm_wait(vm, "cowflt");
      object.mtx.lock();
      vm.page_queues.lock();
      // Fix cowfault-leaves-busy; 7.x starts over whenever the page is still
      // there: a fault may have busied it meanwhile and be mapping it with
      // the object unlocked, and page_remove would clear its busy bit.  The
      // caller retries its fault, which then waits for the page.
      // A page cached meanwhile (its loan ended, then pageout) is gone from
      // the lookup, as in 7.0.
      if (page_lookup(object, pindex) == m && (!m->any_busy() || !vm.fix(Fix::kCowfaultLeavesBusy))) continue;
      return;  // the page went away (or got busy) while we waited
    }
    mnew->oflags &= static_cast<std::uint8_t>(~kVpoBusy);  // VM_ALLOC_NOBUSY
    if (m->cow == 0) {
      // The loan ended while we waited for memory: put things back.
      page_free(mnew);
      page_insert(m, object, pindex);
      return;
    }
    page_copy(m, mnew);
    // 7.0 marks the copy fully valid and dirty whatever the lent page held.
    // A lent file page a truncation left in its object is invalid (7.0
    // vm_object_page_remove: wired pages stay, valid = 0): its copy would
    // bring the bytes from before the cut back as the file's.  Fix
    // cowfault-keeps-validity: the copy is as valid as the page (the
    // fault's retry reads the rest from the pager), dirty where valid.
    if (vm.fix(Fix::kCowfaultKeepsValidity) && !m->fully_valid()) {
      vm.counters().bump(vm.counters().cowfault_invalid_copies);
      mnew->valid = m->valid;
      mnew->dirty = m->valid;
    } else {
      mnew->valid = kPageBitsAll;
      page_dirty(mnew);
    }
    // The object's own wirings move to the copy; the loans stay with m.
    const std::uint16_t object_wirings = static_cast<std::uint16_t>(m->wire_count - m->cow);
    for (std::uint16_t i = 0; i < object_wirings; ++i) page_wire(mnew);
    m->wire_count = static_cast<std::uint16_t>(m->cow);
    if (object_wirings == 0) page_activate(mnew);
    return;
  }
}

}  // namespace faultline::vm
