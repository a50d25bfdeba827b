// The physical map of one address space (FreeBSD pmap), and the MMU.
//
// A pmap maps page-aligned virtual addresses to pages with a protection, a
// wired bit and the referenced/modified bits an MMU would set.  Each page
// keeps the list of its mappings (pv entries) so that all of them can be
// found and removed or write-protected (pmap_remove_all, pmap_remove_write).
//
// Locks: a pmap's entries are under its mutex; a page's pv list is under the
// page queues.  Functions that touch both take the page queues first, then
// the pmap (the declared order).
//
// The MMU (pmap_access) is not a critical section.  It walks the table under
// the pmap mutex (the page walk and TLB fill; the model's directory is not a
// lock-free structure), lets go of it, and then does the load or store and
// sets the translation's referenced/modified bits with a compare-and-swap on
// the PTE word, as hardware does, failing (a fault) if the PTE lost its
// validity or write permission meanwhile.  A store through a translation
// whose modified bit is already set does not touch the PTE (a TLB entry
// with D set).  So removal and write-protection clear the PTE atomically,
// collect its bits, and then shoot down: wait, holding the pmap mutex (no new
// walk can start), until every access in flight on the pmap has completed
// (pmap_invalidate_page's IPI and acknowledgement), before the page may be
// reused, copied or written back.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/locks.h"
#include "core/page.h"
#include "locking/locking.h"

namespace faultline::vm {

class Vm;

// Protections (VM_PROT_*).
enum : std::uint8_t {
  kProtNone = 0,
  kProtRead = 1,
  kProtWrite = 2,
  kProtExecute = 4,
  kProtAll = kProtRead | kProtWrite | kProtExecute,
  kProtOverrideWrite = 8,  // vm_map_lookup only: COW a read-only entry for a user wire
};

// The PTE word: valid, protection, wired, and the MMU's referenced (A) and
// modified (M) bits.
enum : std::uint32_t {
  kPteValid = 1,
  kPteProtShift = 1,  // kProtRead/Write/Execute << 1
  kPteWired = 16,
  kPteA = 32,
  kPteM = 64,
};

// A translation as read at one moment.
struct Translation {
  Page* page = nullptr;
  std::uint8_t prot = 0;
  bool wired = false;
  bool referenced = false;
  bool modified = false;
};

struct PmapEntry {
  Page* page = nullptr;             // nullptr: no translation; under the pmap mutex
  std::atomic<std::uint32_t> pte{0};  // written under the pmap mutex, and by the MMU without it

  std::uint32_t bits() const noexcept { return pte.load(std::memory_order_acquire); }
  std::uint8_t prot() const noexcept { return static_cast<std::uint8_t>((bits() >> kPteProtShift) & kProtAll); }
  bool wired() const noexcept { return (bits() & kPteWired) != 0; }
  bool referenced() const noexcept { return (bits() & kPteA) != 0; }
  bool modified() const noexcept { return (bits() & kPteM) != 0; }
  Translation view() const noexcept {
    const std::uint32_t b = bits();
    return {page, static_cast<std::uint8_t>((b >> kPteProtShift) & kProtAll), (b & kPteWired) != 0,
            (b & kPteA) != 0, (b & kPteM) != 0};
  }
};
constexpr std::uint32_t pte_bits(std::uint8_t prot, bool wired, bool referenced, bool modified) {
  return kPteValid | (std::uint32_t{prot} << kPteProtShift) | (wired ? kPteWired : 0u) | (referenced ? kPteA : 0u) |
         (modified ? kPteM : 0u);
}

// A pmap's translations as a page table holds them: leaf tables of 512
// entries indexed by virtual page number, found through a directory, so a
// lookup costs no search (a one-leaf cache serves neighbouring pages).
// Empty leaves are freed.  Not thread-safe: the owning pmap's mutex guards it.
class PageTable {
 public:
  static constexpr unsigned kLeafBits = 9;
  static constexpr std::uint64_t kLeafSize = 1u << kLeafBits;

  PmapEntry* find(std::uint64_t vpn) {
    Leaf* leaf = leaf_of(vpn >> kLeafBits);
    if (leaf == nullptr) return nullptr;
    PmapEntry& e = leaf->e[vpn & (kLeafSize - 1)];
    return e.page != nullptr ? &e : nullptr;
  }
  // Whether vpn's leaf (page-table page) exists.
  bool has_leaf(std::uint64_t vpn) { return leaf_of(vpn >> kLeafBits) != nullptr; }
  // Adds vpn's leaf, backed by page-table page `ptp`.  Requires: none yet.
  void add_leaf(std::uint64_t vpn, Page* ptp);
  // Requires: no translation at vpn, its leaf present.
  PmapEntry& insert(std::uint64_t vpn, Page* page, std::uint32_t pte);
  // Requires: a translation at vpn.  Returns the page-table page of a leaf
  // this left empty (now gone; the caller frees the page), else nullptr.
  Page* erase(std::uint64_t vpn);
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // Calls f(vpn, entry) for each translation in [svpn, evpn), in address
  // order.  f may erase the entry it is given (and nothing else).
  template <class F>
  void for_each(std::uint64_t svpn, std::uint64_t evpn, F f) {
    for (std::uint64_t key : leaves_in(svpn, evpn)) {
      const std::uint64_t lo = std::max(svpn, key << kLeafBits);
      const std::uint64_t hi = std::min(evpn, (key + 1) << kLeafBits);
      for (std::uint64_t vpn = lo; vpn < hi; ++vpn) {
        Leaf* leaf = leaf_of(key);  // f may have freed it
        if (leaf == nullptr) break;
        PmapEntry& e = leaf->e[vpn & (kLeafSize - 1)];
        if (e.page != nullptr) f(vpn, e);
      }
    }
  }

 private:
  struct Leaf {
    std::array<PmapEntry, kLeafSize> e{};
    unsigned count = 0;
    Page* ptp = nullptr;  // the page-table page it stands for
  };
  Leaf* leaf_of(std::uint64_t key) {
    if (key == cached_key_) return cached_;
    auto it = dir_.find(key);
    if (it == dir_.end()) return nullptr;
    cached_key_ = key;
    cached_ = it->second.get();
    return cached_;
  }
  // The keys of the existing leaves overlapping [svpn, evpn), sorted.
  std::vector<std::uint64_t> leaves_in(std::uint64_t svpn, std::uint64_t evpn) const;

  std::unordered_map<std::uint64_t, std::unique_ptr<Leaf>> dir_;
  std::uint64_t cached_key_ = ~std::uint64_t{0};
  Leaf* cached_ = nullptr;
  std::size_t size_ = 0;
};

class Pmap {
 public:
  explicit Pmap(Vm& vm);
  ~Pmap();
  Pmap(const Pmap&) = delete;
  Pmap& operator=(const Pmap&) = delete;

  Vm& vm;
  const unsigned page_shift;
  locking::Mutex mtx{pmap_lock_class, "pmap"};
  PageTable table FL_GUARDED_BY(mtx);
  // User accesses between their page walk and their completion (the CPUs a
  // shootdown must wait for).  Incremented under mtx.
  std::atomic<int> inflight{0};

  std::size_t resident() const;  // number of mappings (takes the mutex)
  // Every translation, in address order (takes the mutex).
  std::vector<std::pair<std::uint64_t, Translation>> snapshot();
  PmapEntry* find(std::uint64_t va) FL_REQUIRES(mtx) { return table.find(va >> page_shift); }
};

// pmap_enter: maps m at va with `prot` (replacing what was there).  A leaf
// the translation needs is a page-table page from the page pool
// (_pmap_allocpte, 7.0 amd64 pmap.c 1255-1279): when none is free it drops
// the pmap and the page queues, waits for memory (VM_WAIT) and looks again,
// which is why the seed unlocks the object first (L883).
// Requires: m busy, no page queues held (takes them, then the pmap).
void pmap_enter(Pmap& pmap, std::uint64_t va, Page* m, std::uint8_t prot, bool wired);
// pmap_enter_quick: maps m read-only (and executable) at va if nothing is
// mapped there; never sleeps (no page-table page free: nothing mapped).
// Requires: the page queues held.
void pmap_enter_quick(Pmap& pmap, std::uint64_t va, Page* m, std::uint8_t prot);
// pmap_remove: removes every mapping in [sva, eva); modified bits go to the
// pages' dirty bits.  Requires: no page queues held.
void pmap_remove(Pmap& pmap, std::uint64_t sva, std::uint64_t eva);
// pmap_protect: lowers the protection of mappings in [sva, eva) to `prot`.
void pmap_protect(Pmap& pmap, std::uint64_t sva, std::uint64_t eva, std::uint8_t prot);
// pmap_remove_all: removes every mapping of m.  Requires: the page queues.
void pmap_remove_all(Page* m);
// The unwired mappings of m only (a model helper, not a 7.x function);
// returns how many went.  Requires: the page queues.
std::uint64_t pmap_remove_unwired(Page* m);
// pmap_remove_write: write-protects every mapping of m, collecting modified
// bits into m's dirty bits.  Requires: the page queues.
void pmap_remove_write(Page* m);
// pmap_is_modified / pmap_ts_referenced (counts and clears referenced bits) /
// pmap_clear_reference.  Require: the page queues.
bool pmap_is_modified(Page* m);
int pmap_ts_referenced(Page* m);
// pmap_extract: the page mapped at va, or nullptr.
Page* pmap_extract(Pmap& pmap, std::uint64_t va);
// The translation at va as read under the pmap mutex (page nullptr: none).
// For oracles and diagnostics.
Translation pmap_translation(Pmap& pmap, std::uint64_t va);
// pmap_extract_and_hold: the page mapped at va with `prot` allowed, held
// (vm_page_hold), or nullptr.  Requires: no page queues held.
Page* pmap_extract_and_hold(Pmap& pmap, std::uint64_t va, std::uint8_t prot);
// pmap_is_prefaultable: nothing is mapped at va.
bool pmap_is_prefaultable(Pmap& pmap, std::uint64_t va);
// pmap_change_wiring.
void pmap_change_wiring(Pmap& pmap, std::uint64_t va, bool wired);

// The MMU: a user load or store of 8 bytes at va (8-aligned).  Succeeds if a
// mapping with enough permission exists (setting referenced / modified);
// otherwise returns false and the caller faults and tries again.  Between
// the walk and the access it passes a schedule point (kUser on the pmap's
// `inflight`), where removals and write-protections may run.
bool pmap_access(Pmap& pmap, std::uint64_t va, bool write, std::uint64_t* value);

}  // namespace faultline::vm
