#include "core/pmap.h"

#include <algorithm>
#include <cassert>
#include <cstring>

#include "core/vm.h"

namespace faultline::vm {

using locking::MutexLock;

Pmap::Pmap(Vm& v) : vm(v) {}

Pmap::~Pmap() {
  MutexLock l(mtx);
  assert(entries.empty() && "destroying a pmap with mappings");
}

std::size_t Pmap::resident() const {
  MutexLock l(const_cast<locking::Mutex&>(mtx));
  return entries.size();
}

namespace {

void pv_remove(Page* m, Pmap* pmap, std::uint64_t va) {
  auto& pv = m->pv;
  auto it = std::find_if(pv.begin(), pv.end(),
                         [&](const PvEntry& e) { return e.pmap == pmap && e.va == va; });
  assert(it != pv.end() && "mapping without a pv entry");
  pv.erase(it);
  if (pv.empty()) m->flags &= static_cast<std::uint8_t>(~kPgWriteable);
}

// Collects a removed or write-protected mapping's MMU bits into the page.
void collect_bits(Page* m, const PmapEntry& e) {
  if (e.modified) m->dirty.store(kPageBitsAll, std::memory_order_relaxed);
  if (e.referenced) m->flags |= kPgReferenced;
}

// Removes the mapping at `it`.  Requires: page queues and pmap mutex.
void remove_entry(Pmap& pmap, std::map<std::uint64_t, PmapEntry>::iterator it)
    FL_REQUIRES(pmap.mtx) {
  pmap.mtx.assert_owned();
  pmap.vm.page_queues.assert_owned();
  Page* m = it->second.page;
  collect_bits(m, it->second);
  pv_remove(m, &pmap, it->first);
  pmap.entries.erase(it);
}

}  // namespace

void pmap_enter(Pmap& pmap, std::uint64_t va, Page* m, std::uint8_t prot, bool wired) {
  Vm& vm = pmap.vm;
  MutexLock pq(vm.page_queues);
  MutexLock l(pmap.mtx);
  auto it = pmap.entries.find(va);
  if (it != pmap.entries.end()) {
    if (it->second.page == m) {
      // Same page: update protection and wiring in place.
      it->second.prot = prot;
      it->second.wired = wired;
      if ((prot & kProtWrite) != 0) m->flags |= kPgWriteable;
      return;
    }
    remove_entry(pmap, it);
  }
  pmap.entries.emplace(va, PmapEntry{m, prot, wired, true, false});
  m->pv.push_back(PvEntry{&pmap, va});
  if ((prot & kProtWrite) != 0) m->flags |= kPgWriteable;
}

void pmap_enter_quick(Pmap& pmap, std::uint64_t va, Page* m, std::uint8_t prot) {
  pmap.vm.page_queues.assert_owned();
  MutexLock l(pmap.mtx);
  if (pmap.entries.count(va) != 0) return;
  const std::uint8_t p = static_cast<std::uint8_t>(prot & (kProtRead | kProtExecute));
  pmap.entries.emplace(va, PmapEntry{m, p, false, false, false});
  m->pv.push_back(PvEntry{&pmap, va});
}

void pmap_remove(Pmap& pmap, std::uint64_t sva, std::uint64_t eva) {
  MutexLock pq(pmap.vm.page_queues);
  MutexLock l(pmap.mtx);
  for (auto it = pmap.entries.lower_bound(sva); it != pmap.entries.end() && it->first < eva;) {
    auto next = std::next(it);
    remove_entry(pmap, it);
    it = next;
  }
}

void pmap_protect(Pmap& pmap, std::uint64_t sva, std::uint64_t eva, std::uint8_t prot) {
  if ((prot & kProtRead) == 0) {
    pmap_remove(pmap, sva, eva);
    return;
  }
  MutexLock pq(pmap.vm.page_queues);
  MutexLock l(pmap.mtx);
  for (auto it = pmap.entries.lower_bound(sva); it != pmap.entries.end() && it->first < eva; ++it) {
    PmapEntry& e = it->second;
    if ((e.prot & kProtWrite) != 0 && (prot & kProtWrite) == 0) {
      collect_bits(e.page, e);
      e.modified = false;
    }
    e.prot = static_cast<std::uint8_t>(e.prot & prot);
  }
}

void pmap_remove_all(Page* m) FL_NO_THREAD_SAFETY_ANALYSIS {
  m->vm->page_queues.assert_owned();
  while (!m->pv.empty()) {
    PvEntry pv = m->pv.back();
    MutexLock l(pv.pmap->mtx);
    auto it = pv.pmap->entries.find(pv.va);
    assert(it != pv.pmap->entries.end() && it->second.page == m);
    remove_entry(*pv.pmap, it);
  }
}

void pmap_remove_write(Page* m) FL_NO_THREAD_SAFETY_ANALYSIS {
  m->vm->page_queues.assert_owned();
  for (const PvEntry& pv : m->pv) {
    MutexLock l(pv.pmap->mtx);
    PmapEntry& e = pv.pmap->entries.at(pv.va);
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
    if (pv.pmap->entries.at(pv.va).modified) return true;
  }
  return false;
}

int pmap_ts_referenced(Page* m) FL_NO_THREAD_SAFETY_ANALYSIS {
  m->vm->page_queues.assert_owned();
  int n = 0;
  for (const PvEntry& pv : m->pv) {
    MutexLock l(pv.pmap->mtx);
    PmapEntry& e = pv.pmap->entries.at(pv.va);
    if (e.referenced) {
      ++n;
      e.referenced = false;
    }
  }
  return n;
}

Page* pmap_extract(Pmap& pmap, std::uint64_t va) {
  MutexLock l(pmap.mtx);
  auto it = pmap.entries.find(va);
  return it != pmap.entries.end() ? it->second.page : nullptr;
}

bool pmap_is_prefaultable(Pmap& pmap, std::uint64_t va) {
  MutexLock l(pmap.mtx);
  return pmap.entries.count(va) == 0;
}

void pmap_change_wiring(Pmap& pmap, std::uint64_t va, bool wired) {
  MutexLock l(pmap.mtx);
  auto it = pmap.entries.find(va);
  if (it != pmap.entries.end()) it->second.wired = wired;
}

bool pmap_access(Pmap& pmap, std::uint64_t va, bool write, std::uint64_t* value) {
  const std::uint64_t ps = pmap.vm.page_size();
  const std::uint64_t page_va = va & ~(ps - 1);
  MutexLock l(pmap.mtx);
  auto it = pmap.entries.find(page_va);
  if (it == pmap.entries.end()) return false;
  PmapEntry& e = it->second;
  if ((e.prot & (write ? kProtWrite : kProtRead)) == 0) return false;
  std::byte* p = e.page->data + (va - page_va);
  if (write) {
    std::memcpy(p, value, sizeof *value);
    e.modified = true;
  } else {
    std::memcpy(value, p, sizeof *value);
  }
  e.referenced = true;
  return true;
}

}  // namespace faultline::vm
