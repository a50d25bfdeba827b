// The physical map of one address space (FreeBSD pmap), and the MMU.
//
// A pmap maps page-aligned virtual addresses to pages with a protection, a
// wired bit and the referenced/modified bits an MMU would set.  Each page
// keeps the list of its mappings (pv entries) so that all of them can be
// found and removed or write-protected (pmap_remove_all, pmap_remove_write).
//
// Locks: a pmap's entries are under its mutex; a page's pv list is under the
// page queues.  Functions that touch both take the page queues first, then
// the pmap (the declared order).  User accesses (pmap_access) take only the
// pmap mutex, and touch the page's bytes while holding it: a mapping cannot be
// removed under an access in progress.
#pragma once

#include <array>
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

struct PmapEntry {
  Page* page = nullptr;  // nullptr: no translation
  std::uint8_t prot = 0;
  bool wired = false;
  bool referenced = false;
  bool modified = false;
};

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
  // Requires: no translation at vpn.
  PmapEntry& insert(std::uint64_t vpn, const PmapEntry& entry);
  // Requires: a translation at vpn.
  void erase(std::uint64_t vpn);
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

  std::size_t resident() const;  // number of mappings (takes the mutex)
  // Every translation, in address order (takes the mutex).
  std::vector<std::pair<std::uint64_t, PmapEntry>> snapshot();
  PmapEntry* find(std::uint64_t va) FL_REQUIRES(mtx) { return table.find(va >> page_shift); }
};

// pmap_enter: maps m at va with `prot` (replacing what was there).
// Requires: m busy, no page queues held (takes them, then the pmap).
void pmap_enter(Pmap& pmap, std::uint64_t va, Page* m, std::uint8_t prot, bool wired);
// pmap_enter_quick: maps m read-only (and executable) at va if nothing is
// mapped there.  Requires: the page queues held.
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
// pmap_is_prefaultable: nothing is mapped at va.
bool pmap_is_prefaultable(Pmap& pmap, std::uint64_t va);
// pmap_change_wiring.
void pmap_change_wiring(Pmap& pmap, std::uint64_t va, bool wired);

// The MMU: a user load or store of 8 bytes at va (8-aligned).  Succeeds if a
// mapping with enough permission exists (setting referenced / modified);
// otherwise returns false and the caller faults and tries again.
bool pmap_access(Pmap& pmap, std::uint64_t va, bool write, std::uint64_t* value);

}  // namespace faultline::vm
