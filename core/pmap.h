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

#include <cstdint>
#include <map>

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
  Page* page;
  std::uint8_t prot;
  bool wired;
  bool referenced;
  bool modified;
};

class Pmap {
 public:
  explicit Pmap(Vm& vm);
  ~Pmap();
  Pmap(const Pmap&) = delete;
  Pmap& operator=(const Pmap&) = delete;

  Vm& vm;
  locking::Mutex mtx{pmap_lock_class, "pmap"};
  std::map<std::uint64_t, PmapEntry> entries FL_GUARDED_BY(mtx);

  std::size_t resident() const;  // number of mappings (takes the mutex)
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
