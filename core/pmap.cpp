#include "core/pmap.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>

#include "core/vm.h"
#include "locking/kassert.h"

namespace faultline::vm {

using locking::MutexLock;

PmapEntry& PageTable::insert(std::uint64_t vpn, const PmapEntry& entry) {
  Leaf* leaf = leaf_of(vpn >> kLeafBits);
  if (leaf == nullptr) {
    auto fresh = std::make_unique<Leaf>();
    leaf = fresh.get();
    dir_.emplace(vpn >> kLeafBits, std::move(fresh));
    cached_key_ = vpn >> kLeafBits;
    cached_ = leaf;
  }
  PmapEntry& e = leaf->e[vpn & (kLeafSize - 1)];
  FL_KASSERT(e.page == nullptr && entry.page != nullptr, "entering a translation over one, or of no page");
  e = entry;
  ++leaf->count;
  ++size_;
  return e;
}

void PageTable::erase(std::uint64_t vpn) {
  const std::uint64_t key = vpn >> kLeafBits;
  Leaf* leaf = leaf_of(key);
  FL_KASSERT(leaf != nullptr && leaf->e[vpn & (kLeafSize - 1)].page != nullptr, "removing a translation that does not exist");
  leaf->e[vpn & (kLeafSize - 1)] = PmapEntry{};
  --size_;
  if (--leaf->count == 0) {
    if (cached_key_ == key) {
      cached_key_ = ~std::uint64_t{0};
      cached_ = nullptr;
    }
    dir_.erase(key);
  }
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

std::vector<std::pair<std::uint64_t, PmapEntry>> Pmap::snapshot() {
  std::vector<std::pair<std::uint64_t, PmapEntry>> out;
  MutexLock l(mtx);
  out.reserve(table.size());
  table.for_each(0, ~std::uint64_t{0} >> page_shift,
                 [&](std::uint64_t vpn, PmapEntry& e) { out.emplace_back(vpn << page_shift, e); });
  return out;
}

namespace {

void pv_remove(Page* m, Pmap* pmap, std::uint64_t va) {
  auto& pv = m->pv;
  auto it = std::find_if(pv.begin(), pv.end(),
                         [&](const PvEntry& e) { return e.pmap == pmap && e.va == va; });
  FL_KASSERT(it != pv.end(), "mapping without a pv entry");
  pv.erase(it);
  if (pv.empty()) m->flags &= static_cast<std::uint8_t>(~kPgWriteable);
}

// Collects a removed or write-protected mapping's MMU bits into the page.
void collect_bits(Page* m, const PmapEntry& e) {
  if (e.modified) m->dirty.store(kPageBitsAll, std::memory_order_relaxed);
  if (e.referenced) m->flags |= kPgReferenced;
}

// Removes the mapping `e` at va.  Requires: page queues and pmap mutex.
void remove_entry(Pmap& pmap, std::uint64_t va, PmapEntry& e) FL_REQUIRES(pmap.mtx) {
  pmap.mtx.assert_owned();
  pmap.vm.page_queues.assert_owned();
  Page* m = e.page;
  collect_bits(m, e);
  pv_remove(m, &pmap, va);
  pmap.table.erase(va >> pmap.page_shift);
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

void pmap_enter(Pmap& pmap, std::uint64_t va, Page* m, std::uint8_t prot, bool wired) {
  Vm& vm = pmap.vm;
  MutexLock pq(vm.page_queues);
  MutexLock l(pmap.mtx);
  if (PmapEntry* e = pmap.find(va); e != nullptr) {
    if (e->page == m) {
      // Same page: update protection and wiring in place.
      e->prot = prot;
      e->wired = wired;
      if ((prot & kProtWrite) != 0) m->flags |= kPgWriteable;
      return;
    }
    remove_entry(pmap, va, *e);
  }
  pmap.table.insert(va >> pmap.page_shift, PmapEntry{m, prot, wired, true, false});
  m->pv.push_back(PvEntry{&pmap, va});
  if ((prot & kProtWrite) != 0) m->flags |= kPgWriteable;
}

void pmap_enter_quick(Pmap& pmap, std::uint64_t va, Page* m, std::uint8_t prot) {
  pmap.vm.page_queues.assert_owned();
  MutexLock l(pmap.mtx);
  if (pmap.find(va) != nullptr) return;
  const std::uint8_t p = static_cast<std::uint8_t>(prot & (kProtRead | kProtExecute));
  pmap.table.insert(va >> pmap.page_shift, PmapEntry{m, p, false, false, false});
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
  pmap.table.for_each(first_vpn(pmap, sva), first_vpn(pmap, eva), [&](std::uint64_t, PmapEntry& e) {
    if ((e.prot & kProtWrite) != 0 && (prot & kProtWrite) == 0) {
      collect_bits(e.page, e);
      e.modified = false;
    }
    e.prot = static_cast<std::uint8_t>(e.prot & prot);
  });
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
    if (e.wired) continue;
    remove_entry(*pv.pmap, pv.va, e);
    ++removed;
  }
  return removed;
}

void pmap_remove_write(Page* m) FL_NO_THREAD_SAFETY_ANALYSIS {
  m->vm->page_queues.assert_owned();
  for (const PvEntry& pv : m->pv) {
    MutexLock l(pv.pmap->mtx);
    PmapEntry& e = entry_at(*pv.pmap, pv.va);
    if ((e.prot & kProtWrite) != 0) {
      collect_bits(m, e);
      e.modified = false;
      e.prot = static_cast<std::uint8_t>(e.prot & ~kProtWrite);
    }
  }
  m->flags &= static_cast<std::uint8_t>(~kPgWriteable);
}

bool pmap_is_modified(Page* m) FL_NO_THREAD_SAFETY_ANALYSIS {
  m->vm->page_queues.assert_owned();
  for (const PvEntry& pv : m->pv) {
    MutexLock l(pv.pmap->mtx);
    if (entry_at(*pv.pmap, pv.va).modified) return true;
  }
  return false;
}

int pmap_ts_referenced(Page* m) FL_NO_THREAD_SAFETY_ANALYSIS {
  m->vm->page_queues.assert_owned();
  int n = 0;
  for (const PvEntry& pv : m->pv) {
    MutexLock l(pv.pmap->mtx);
    PmapEntry& e = entry_at(*pv.pmap, pv.va);
    if (e.referenced) {
      ++n;
      e.referenced = false;
    }
  }
  return n;
}

Page* pmap_extract(Pmap& pmap, std::uint64_t va) {
  MutexLock l(pmap.mtx);
  PmapEntry* e = pmap.find(va);
  return e != nullptr ? e->page : nullptr;
}

bool pmap_is_prefaultable(Pmap& pmap, std::uint64_t va) {
  MutexLock l(pmap.mtx);
  return pmap.find(va) == nullptr;
}

void pmap_change_wiring(Pmap& pmap, std::uint64_t va, bool wired) {
  MutexLock l(pmap.mtx);
  if (PmapEntry* e = pmap.find(va); e != nullptr) e->wired = wired;
}

bool pmap_access(Pmap& pmap, std::uint64_t va, bool write, std::uint64_t* value) {
  const std::uint64_t ps = pmap.vm.page_size();
  const std::uint64_t page_va = va & ~(ps - 1);
  MutexLock l(pmap.mtx);
  PmapEntry* found = pmap.find(page_va);
  if (found == nullptr) return false;
  PmapEntry& e = *found;
  if ((e.prot & (write ? kProtWrite : kProtRead)) == 0) return false;
  FL_KASSERT(va % 8 == 0, "a user access not 8-aligned");
  // One word, as the hardware does it: atomic with respect to a kernel
  // write to a mapped page that is not busy (page_zero_area_mapped).
  std::atomic_ref<std::uint64_t> word(*reinterpret_cast<std::uint64_t*>(e.page->data + (va - page_va)));
  if (write) {
    word.store(*value, std::memory_order_relaxed);
    e.modified = true;
  } else {
    *value = word.load(std::memory_order_relaxed);
  }
  e.referenced = true;
  return true;
}

}  // namespace faultline::vm
