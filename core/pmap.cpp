#include "core/pmap.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <thread>

#include "core/vm.h"
#include "locking/kassert.h"

namespace faultline::vm {

using locking::MutexLock;

void PageTable::add_leaf(std::uint64_t vpn, Page* ptp) {
  FL_KASSERT(leaf_of(vpn >> kLeafBits) == nullptr, "adding a leaf that exists");
  auto fresh = std::make_unique<Leaf>();
  Leaf* leaf = fresh.get();
  leaf->ptp = ptp;
  dir_.emplace(vpn >> kLeafBits, std::move(fresh));
  cached_key_ = vpn >> kLeafBits;
  cached_ = leaf;
}

PmapEntry& PageTable::insert(std::uint64_t vpn, Page* page, std::uint32_t pte) {
  Leaf* leaf = leaf_of(vpn >> kLeafBits);
  FL_KASSERT(leaf != nullptr, "entering a translation without its page-table page");
  PmapEntry& e = leaf->e[vpn & (kLeafSize - 1)];
  FL_KASSERT(e.page == nullptr && page != nullptr, "entering a translation over one, or of no page");
  e.page = page;
  e.pte.store(pte, std::memory_order_release);
  ++leaf->count;
  ++size_;
  return e;
}

Page* PageTable::erase(std::uint64_t vpn) {
  const std::uint64_t key = vpn >> kLeafBits;
  Leaf* leaf = leaf_of(key);
  FL_KASSERT(leaf != nullptr && leaf->e[vpn & (kLeafSize - 1)].page != nullptr, "removing a translation that does not exist");
  PmapEntry& e = leaf->e[vpn & (kLeafSize - 1)];
  e.page = nullptr;
  e.pte.store(0, std::memory_order_release);
  --size_;
  if (--leaf->count != 0) return nullptr;
  Page* ptp = leaf->ptp;
  if (cached_key_ == key) {
    cached_key_ = ~std::uint64_t{0};
    cached_ = nullptr;
  }
  dir_.erase(key);
  return ptp;
}

std::vector<std::uint64_t> PageTable::leaves_in(std::uint64_t svpn, std::uint64_t evpn) const {
  std::vector<std::uint64_t> keys;
  if (svpn >= evpn) return keys;
  const std::uint64_t first = svpn >> kLeafBits, last = (evpn - 1) >> kLeafBits;
  if (last - first < dir_.size()) {
    for (std::uint64_t k = first; k <= last; ++k)
      if (dir_.count(k) != 0) keys.push_back(k);
  } else {
    for (const auto& [k, leaf] : dir_)
      if (k >= first && k <= last) keys.push_back(k);
    std::sort(keys.begin(), keys.end());
  }
  return keys;
}

Pmap::Pmap(Vm& v) : vm(v), page_shift(static_cast<unsigned>(std::countr_zero(v.page_size()))) {}

Pmap::~Pmap() {
  MutexLock l(mtx);
  FL_KASSERT(table.empty(), "destroying a pmap with mappings");
}

std::size_t Pmap::resident() const {
  MutexLock l(const_cast<locking::Mutex&>(mtx));
  return table.size();
}

std::vector<std::pair<std::uint64_t, Translation>> Pmap::snapshot() {
  std::vector<std::pair<std::uint64_t, Translation>> out;
  MutexLock l(mtx);
  out.reserve(table.size());
  table.for_each(0, ~std::uint64_t{0} >> page_shift,
                 [&](std::uint64_t vpn, PmapEntry& e) { out.emplace_back(vpn << page_shift, e.view()); });
  return out;
}

namespace {

constexpr std::uint32_t kPteW = std::uint32_t{kProtWrite} << kPteProtShift;

void pv_remove(Page* m, Pmap* pmap, std::uint64_t va) {
  auto& pv = m->pv;
  auto it = std::find_if(pv.begin(), pv.end(),
                         [&](const PvEntry& e) { return e.pmap == pmap && e.va == va; });
  FL_KASSERT(it != pv.end(), "mapping without a pv entry");
  pv.erase(it);
  if (pv.empty()) m->flags &= static_cast<std::uint8_t>(~kPgWriteable);
}

// Collects a removed or write-protected PTE's MMU bits into the page.
void collect_bits(Page* m, std::uint32_t pte) {
  if ((pte & kPteM) != 0) m->dirty.store(kPageBitsAll, std::memory_order_relaxed);
  if ((pte & kPteA) != 0) m->flags |= kPgReferenced;
}

// pmap_invalidate_page: waits until every access that walked the table
// before now has completed (the shootdown's acknowledgements).  The pmap
// mutex is held, so no new walk starts; accesses in flight take no lock.
void shootdown(Pmap& pmap) FL_REQUIRES(pmap.mtx) {
  pmap.mtx.assert_owned();
  if (pmap.inflight.load(std::memory_order_acquire) == 0) return;
  pmap.vm.counters().bump(pmap.vm.counters().shootdown_waits);
  while (pmap.inflight.load(std::memory_order_acquire) != 0) {
    locking::schedule_point(locking::Point::kUser, &pmap.inflight);
    std::this_thread::yield();
  }
}

// A page-table page whose leaf emptied goes back to the pool (unwired and
// freed, as pmap_unwire_pte_hold does).  Requires: the page queues.
void free_ptp(Vm& vm, Page* ptp) FL_NO_THREAD_SAFETY_ANALYSIS {
  vm.page_queues.assert_owned();
  FL_KASSERT(ptp->wire_count == 1 && ptp->object == nullptr, "freeing a page-table page that is not one");
  ptp->wire_count = 0;
  vm.wired_count.fetch_sub(1, std::memory_order_relaxed);
  page_free(ptp);
}

// Removes the mapping `e` at va: the PTE cleared at once (its bits are
// final: the MMU sets bits only by compare-and-swap on a valid PTE), then
// the shootdown, then the bits collected and the slot freed.  Requires:
// page queues and pmap mutex.
void remove_entry(Pmap& pmap, std::uint64_t va, PmapEntry& e) FL_REQUIRES(pmap.mtx) {
  pmap.mtx.assert_owned();
  pmap.vm.page_queues.assert_owned();
  Page* m = e.page;
  const std::uint32_t old = e.pte.exchange(0, std::memory_order_acq_rel);
  shootdown(pmap);
  collect_bits(m, old);
  pv_remove(m, &pmap, va);
  if (Page* ptp = pmap.table.erase(va >> pmap.page_shift); ptp != nullptr) free_ptp(pmap.vm, ptp);
}

// Clears write permission (and M, collected) from a PTE; returns whether it
// was writable.
bool clear_write(Page* m, PmapEntry& e) {
  std::uint32_t b = e.pte.load(std::memory_order_acquire);
  while ((b & kPteW) != 0 && !e.pte.compare_exchange_weak(b, b & ~(kPteW | kPteM), std::memory_order_acq_rel)) {
  }
  if ((b & kPteW) == 0) return false;
  collect_bits(m, b & kPteM);
  return true;
}

// The translation at va, which must exist (a pv entry names it).
PmapEntry& entry_at(Pmap& pmap, std::uint64_t va) FL_REQUIRES(pmap.mtx) {
  PmapEntry* e = pmap.find(va);
  FL_KASSERT(e != nullptr, "pv entry without a mapping");
  return *e;
}

// The first virtual page at or after va.
std::uint64_t first_vpn(const Pmap& pmap, std::uint64_t va) {
  return (va >> pmap.page_shift) + ((va & ((std::uint64_t{1} << pmap.page_shift) - 1)) != 0);
}

}  // namespace

void pmap_enter(Pmap& pmap, std::uint64_t va, Page* m, std::uint8_t prot, bool wired) FL_NO_THREAD_SAFETY_ANALYSIS {
  Vm& vm = pmap.vm;
  const std::uint64_t vpn = va >> pmap.page_shift;
  vm.page_queues.lock();
  // Fix lent-page-read-only: a lent page is never mapped writable.  The
  // seed copies a lent page on a write fault (L343-350) but enters it with
  // the entry's protection on a read fault (L873-891), and a loan may start
  // at any moment before that (socow_setup takes only the page queues), so
  // the process's next store would go into the page a socket is sending.
  // Checked here, under the page queues the loan also takes, so no loan can
  // slip in between the check and the translation.
  const auto lent_read_only = [&] {
    if (m->cow == 0 || (prot & kProtWrite) == 0 || !vm.fix(Fix::kLentPageReadOnly)) return;
    prot &= static_cast<std::uint8_t>(~kProtWrite);
    vm.counters().bump(vm.counters().lent_mapped_read_only);
  };
  lent_read_only();
  pmap.mtx.lock();
  // pmap_allocpte: the leaf's page-table page, waiting for memory if none.
  while (!pmap.table.has_leaf(vpn)) {
    if (Page* ptp = page_alloc_noobj(vm, kAllocZero); ptp != nullptr) {
      pmap.table.add_leaf(vpn, ptp);
      break;
    }
    pmap.mtx.unlock();
    vm.page_queues.unlock();
    vm.counters().bump(vm.counters().pmap_enter_waits);
    vm_wait(vm, "vmwait");
    vm.page_queues.lock();
    pmap.mtx.lock();
  }
  lent_read_only();  // (again after a sleep)
  if (PmapEntry* e = pmap.find(va); e != nullptr) {
    if (e->page == m) {
      // Same page: protection and wiring changed in place, the MMU's bits
      // kept (write permission removed: its M collected, then a shootdown).
      if ((prot & kProtWrite) == 0 && clear_write(m, *e)) shootdown(pmap);
      std::uint32_t b = e->pte.load(std::memory_order_acquire);
      while (!e->pte.compare_exchange_weak(b, pte_bits(prot, wired, (b & kPteA) != 0, (b & kPteM) != 0),
                                           std::memory_order_acq_rel)) {
      }
      if ((prot & kProtWrite) != 0) m->flags |= kPgWriteable;
      pmap.mtx.unlock();
      vm.page_queues.unlock();
      return;
    }
    remove_entry(pmap, va, *e);
    if (!pmap.table.has_leaf(vpn)) {
      // That was the leaf's last translation: start over for a new one.
      pmap.mtx.unlock();
      vm.page_queues.unlock();
      pmap_enter(pmap, va, m, prot, wired);
      return;
    }
  }
  pmap.table.insert(vpn, m, pte_bits(prot, wired, true, false));
  m->pv.push_back(PvEntry{&pmap, va});
  if ((prot & kProtWrite) != 0) m->flags |= kPgWriteable;
  pmap.mtx.unlock();
  vm.page_queues.unlock();
}

void pmap_enter_quick(Pmap& pmap, std::uint64_t va, Page* m, std::uint8_t prot) {
  pmap.vm.page_queues.assert_owned();
  MutexLock l(pmap.mtx);
  if (pmap.find(va) != nullptr) return;
  const std::uint64_t vpn = va >> pmap.page_shift;
  if (!pmap.table.has_leaf(vpn)) {
    Page* ptp = page_alloc_noobj(pmap.vm, kAllocZero);  // M_NOWAIT
    if (ptp == nullptr) return;
    pmap.table.add_leaf(vpn, ptp);
  }
  const std::uint8_t p = static_cast<std::uint8_t>(prot & (kProtRead | kProtExecute));
  pmap.table.insert(vpn, m, pte_bits(p, false, false, false));
  m->pv.push_back(PvEntry{&pmap, va});
}

void pmap_remove(Pmap& pmap, std::uint64_t sva, std::uint64_t eva) {
  MutexLock pq(pmap.vm.page_queues);
  MutexLock l(pmap.mtx);
  pmap.table.for_each(first_vpn(pmap, sva), first_vpn(pmap, eva), [&](std::uint64_t vpn, PmapEntry& e) {
    pmap.mtx.assert_owned();  // (for the analysis: the lambda is checked on its own)
    remove_entry(pmap, vpn << pmap.page_shift, e);
  });
}

void pmap_protect(Pmap& pmap, std::uint64_t sva, std::uint64_t eva, std::uint8_t prot) {
  if ((prot & kProtRead) == 0) {
    pmap_remove(pmap, sva, eva);
    return;
  }
  MutexLock pq(pmap.vm.page_queues);
  MutexLock l(pmap.mtx);
  bool write_removed = false;
  pmap.table.for_each(first_vpn(pmap, sva), first_vpn(pmap, eva), [&](std::uint64_t, PmapEntry& e) {
    if ((prot & kProtWrite) == 0) write_removed |= clear_write(e.page, e);
    const std::uint32_t keep = ~(std::uint32_t{kProtAll} << kPteProtShift) | (std::uint32_t{prot} << kPteProtShift);
    e.pte.fetch_and(keep, std::memory_order_acq_rel);
  });
  if (write_removed) shootdown(pmap);
}

void pmap_remove_all(Page* m) FL_NO_THREAD_SAFETY_ANALYSIS {
  m->vm->page_queues.assert_owned();
  while (!m->pv.empty()) {
    PvEntry pv = m->pv.back();
    MutexLock l(pv.pmap->mtx);
    PmapEntry& e = entry_at(*pv.pmap, pv.va);
    FL_KASSERT(e.page == m, "a pv entry names a translation of another page");
    remove_entry(*pv.pmap, pv.va, e);
  }
}

std::uint64_t pmap_remove_unwired(Page* m) FL_NO_THREAD_SAFETY_ANALYSIS {
  m->vm->page_queues.assert_owned();
  std::uint64_t removed = 0;
  for (std::size_t i = m->pv.size(); i-- > 0;) {
    PvEntry pv = m->pv[i];
    MutexLock l(pv.pmap->mtx);
    PmapEntry& e = entry_at(*pv.pmap, pv.va);
    FL_KASSERT(e.page == m, "a pv entry names a translation of another page");
    if (e.wired()) continue;
    remove_entry(*pv.pmap, pv.va, e);
    ++removed;
  }
  return removed;
}

void pmap_remove_write(Page* m) FL_NO_THREAD_SAFETY_ANALYSIS {
  m->vm->page_queues.assert_owned();
  for (const PvEntry& pv : m->pv) {
    MutexLock l(pv.pmap->mtx);
    if (clear_write(m, entry_at(*pv.pmap, pv.va))) shootdown(*pv.pmap);
  }
  m->flags &= static_cast<std::uint8_t>(~kPgWriteable);
}

bool pmap_is_modified(Page* m) FL_NO_THREAD_SAFETY_ANALYSIS {
  m->vm->page_queues.assert_owned();
  for (const PvEntry& pv : m->pv) {
    MutexLock l(pv.pmap->mtx);
    if (entry_at(*pv.pmap, pv.va).modified()) return true;
  }
  return false;
}

int pmap_ts_referenced(Page* m) FL_NO_THREAD_SAFETY_ANALYSIS {
  m->vm->page_queues.assert_owned();
  int n = 0;
  for (const PvEntry& pv : m->pv) {
    MutexLock l(pv.pmap->mtx);
    PmapEntry& e = entry_at(*pv.pmap, pv.va);
    if ((e.pte.fetch_and(~kPteA, std::memory_order_acq_rel) & kPteA) != 0) {
      ++n;
      shootdown(*pv.pmap);
    }
  }
  return n;
}

Page* pmap_extract(Pmap& pmap, std::uint64_t va) {
  MutexLock l(pmap.mtx);
  PmapEntry* e = pmap.find(va);
  return e != nullptr ? e->page : nullptr;
}

Translation pmap_translation(Pmap& pmap, std::uint64_t va) {
  MutexLock l(pmap.mtx);
  PmapEntry* e = pmap.find(va);
  return e != nullptr ? e->view() : Translation{};
}

Page* pmap_extract_and_hold(Pmap& pmap, std::uint64_t va, std::uint8_t prot) {
  MutexLock pq(pmap.vm.page_queues);
  MutexLock l(pmap.mtx);
  PmapEntry* e = pmap.find(va);
  if (e == nullptr || (e->prot() & prot) != prot) return nullptr;
  page_hold(e->page);
  return e->page;
}

bool pmap_is_prefaultable(Pmap& pmap, std::uint64_t va) {
  MutexLock l(pmap.mtx);
  return pmap.find(va) == nullptr;
}

void pmap_change_wiring(Pmap& pmap, std::uint64_t va, bool wired) {
  MutexLock l(pmap.mtx);
  if (PmapEntry* e = pmap.find(va); e != nullptr) {
    if (wired)
      e->pte.fetch_or(kPteWired, std::memory_order_acq_rel);
    else
      e->pte.fetch_and(~kPteWired, std::memory_order_acq_rel);
  }
}

bool pmap_access(Pmap& pmap, std::uint64_t va, bool write, std::uint64_t* value) {
  const std::uint64_t ps = pmap.vm.page_size();
  const std::uint64_t page_va = va & ~(ps - 1);
  const std::uint32_t need = (write ? kProtWrite : kProtRead) << kPteProtShift;
  FL_KASSERT(va % 8 == 0, "a user access not 8-aligned");
  PmapEntry* e = nullptr;
  Page* page = nullptr;
  std::uint32_t b = 0;
  {
    // The page walk (and TLB fill).
    MutexLock l(pmap.mtx);
    e = pmap.find(page_va);
    if (e == nullptr) return false;
    b = e->bits();
    if ((b & need) == 0) return false;
    page = e->page;
    pmap.inflight.fetch_add(1, std::memory_order_relaxed);
  }
  locking::schedule_point(locking::Point::kUser, &pmap.inflight);
  // The access sets A (and M for a store) if the translation it walked
  // lacks them, which needs the PTE still valid and permitting it; with the
  // bits already there it uses what it walked (a TLB hit).
  const std::uint32_t want = kPteA | (write ? kPteM : 0u);
  bool ok = true;
  while ((b & want) != want) {
    if ((b & kPteValid) == 0 || (b & need) == 0) {
      ok = false;
      break;
    }
    if (e->pte.compare_exchange_weak(b, b | want, std::memory_order_acq_rel)) break;
  }
  if (ok) {
    // One word, as the hardware does it: atomic with respect to a kernel
    // write to a mapped page that is not busy (page_zero_area_mapped).
    std::atomic_ref<std::uint64_t> word(*reinterpret_cast<std::uint64_t*>(page->data + (va - page_va)));
    if (write)
      word.store(*value, std::memory_order_relaxed);
    else
      *value = word.load(std::memory_order_relaxed);
  } else {
    pmap.vm.counters().bump(pmap.vm.counters().mmu_stale_walks);
  }
  pmap.inflight.fetch_sub(1, std::memory_order_release);
  return ok;
}

}  // namespace faultline::vm
