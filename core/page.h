// Pages (FreeBSD vm_page.c): real bytes, validity and dirtiness, the two
// kinds of busy, COW loans, wiring and holding, and the page queues.
//
// Who protects what (protocol.md):
//   object, pindex, valid, dirty, oflags (VPO_*), busy   the owning object's mutex
//   queue, flags (PG_*), wire/hold counts, cow, pv list   the page-queues mutex
//   the free and cache lists, a free or cached page's     the free-queue mutex
//   queue field, an object's cache
// A cached page (7.0's PG_CACHED, after the 2007 cache rework the seed is
// from) is on no page queue and in no object's resident set: it sits on the
// cache list and in its object's cache, with its bytes and valid bits, until
// vm_page_alloc either gives it back for the same (object, pindex) or takes
// it for anything else.  page_lookup does not see it.
// The bytes are written only by the page's busy holder (zeroing, copying,
// pager I/O) or by user writes through a writable pmap mapping (pmap lock).
//
// Every function states its locking preconditions and asserts them first.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "locking/locking.h"

namespace faultline::vm {

class Vm;
class Object;
class Pmap;

using Pindex = std::uint64_t;

enum class PageQueue : std::uint8_t { kNone, kFree, kInactive, kActive, kCache };
const char* page_queue_name(PageQueue q) noexcept;

// oflags: under the object lock.
inline constexpr std::uint8_t kVpoBusy = 1;     // exclusively busy (VPO_BUSY)
inline constexpr std::uint8_t kVpoWanted = 2;   // someone sleeps on the busy page
inline constexpr std::uint8_t kVpoNosync = 4;   // dirty data need not be synced
// flags: under the page-queues lock.
inline constexpr std::uint8_t kPgZero = 1;        // known to be all zeros
inline constexpr std::uint8_t kPgReferenced = 2;  // referenced since last scan
inline constexpr std::uint8_t kPgWriteable = 4;   // may be mapped writable
inline constexpr std::uint8_t kPgMarker = 8;      // a scan's place holder, not a page
inline constexpr std::uint8_t kPgWinatcfls = 16;  // dirty, already sent round once by pageout (PG_WINATCFLS)
// valid / dirty: one bit per eighth of a page (DEV_BSIZE blocks for 4 KiB).
inline constexpr std::uint8_t kPageBitsAll = 0xff;

struct PvEntry {
  Pmap* pmap;
  std::uint64_t va;
};

struct Page {
  // Fixed at boot.
  Vm* vm = nullptr;
  std::uint32_t index = 0;
  std::byte* data = nullptr;

  // Under the owning object's mutex.
  Object* object = nullptr;
  Pindex pindex = 0;
  std::uint8_t valid = 0;
  // Written under the object lock, and by the pmap under the page queues when
  // it collects a mapping's modified bit (7.x did both); relaxed atomic so the
  // model has no data race there by construction.
  std::atomic<std::uint8_t> dirty{0};
  std::uint8_t oflags = 0;
  std::uint16_t busy = 0;  // I/O in progress (soft busy)

  // Under the page-queues mutex.
  PageQueue queue = PageQueue::kNone;
  std::uint8_t flags = 0;
  std::uint8_t act_count = 0;
  std::uint16_t wire_count = 0;
  std::uint16_t hold_count = 0;
  std::uint32_t cow = 0;  // COW loans (vm_page_cowsetup; loans arrive with the pmap)
  std::vector<PvEntry> pv;
  Page* q_prev = nullptr;
  Page* q_next = nullptr;

  Page() = default;
  Page(const Page&) = delete;
  Page& operator=(const Page&) = delete;
  Page(Page&&) = delete;

  bool fully_valid() const noexcept { return valid == kPageBitsAll; }
  bool is_dirty() const noexcept { return dirty.load(std::memory_order_relaxed) != 0; }
  bool any_busy() const noexcept { return (oflags & kVpoBusy) != 0 || busy != 0; }
};

// An intrusive FIFO of pages (one per queue).
struct PageList {
  Page* head = nullptr;
  Page* tail = nullptr;
  std::size_t count = 0;
  void push_tail(Page* p) noexcept;
  void push_head(Page* p) noexcept;
  void unlink(Page* p) noexcept;
};

enum AllocFlags : unsigned {
  kAllocNormal = 0,
  kAllocZero = 1,         // prefer a prezeroed page (PG_ZERO is then set)
  kAllocIfNotCached = 2,  // fail if (object, pindex) has a cached page (VM_ALLOC_IFNOTCACHED)
  kAllocSystem = 4,       // may dip into the reserve (pageout, pmap)
};

// ---- allocation (vm_page_alloc / vm_page_free / VM_WAIT) ----

// vm_page_alloc (7.0 vm_page.c 1005-1140): a page for (object, pindex),
// inserted and VPO_BUSY, or nullptr if free + cache is at the reserve.  If
// (object, pindex) has a cached page, that page comes back with its bytes and
// valid bits (a reactivation: the caller must look at m->valid, as the seed
// does at L448), or, with kAllocIfNotCached, nullptr.  Otherwise a free page,
// or failing that the oldest cached page of any object, emptied (no lock of
// its object is needed: the cache is under the free-queue mutex).
// Requires: object locked; the page queues may be held (cowfault).
Page* page_alloc(Object& object, Pindex pindex, unsigned flags);
// vm_page_alloc(NULL, 0, VM_ALLOC_NOOBJ | VM_ALLOC_WIRED | flags): a page of
// no object, wired, not busy, zeroed if kAllocZero (a page-table page).
// Never sleeps; nullptr when free + cache is at the reserve.  Requires:
// free_mtx not held.
Page* page_alloc_noobj(Vm& vm, unsigned flags);
// Frees a page: out of its object and queues, no mappings left.
// Requires: the page's object (if any) locked, and the page queues.
void page_free(Page* m);
// Sleeps until free pages return (VM_WAIT).  Requires: no locks held.
void vm_wait(Vm& vm, const char* wmesg = "vmwait");
// pagedaemon_wakeup: asks the pageout daemon for a pass (it scans only if
// memory is short).  Requires: free_mtx not held (object locks may be).
void wake_pagedaemon(Vm& vm);

// ---- object membership (vm_page_lookup / insert / remove / rename) ----

// Requires: object locked.
Page* page_lookup(Object& object, Pindex pindex);
void page_insert(Page* m, Object& object, Pindex pindex);
// Requires: m's object locked.
void page_remove(Page* m);
// Moves m to (new_object, new_pindex), marking it dirty.  Requires: both
// objects locked and the page queues.
void page_rename(Page* m, Object& new_object, Pindex new_pindex);

// ---- busy (VPO_BUSY and the I/O count) ----

// Requires: m's object locked.
void page_busy(Page* m);
// Clears VPO_BUSY and wakes sleepers if VPO_WANTED (vm_page_wakeup).
void page_wakeup(Page* m);
void page_io_start(Page* m);
void page_io_finish(Page* m);
// If m is busy, sleeps on it until woken (the object lock is dropped while
// asleep and held again on return) and returns true; otherwise returns false
// at once.  `also_soft` includes the I/O count (vm_page_sleep_if_busy).
// After a sleep m may have left the object: callers look it up again.
bool page_sleep_if_busy(Page* m, bool also_soft, const char* wmesg);

// ---- queues (requires: the page queues locked) ----

void pageq_remove(Page* m);
void page_activate(Page* m);
void page_deactivate(Page* m);
// vm_page_cache (7.0 vm_page.c 1508-1603): unmaps a clean, idle page and
// moves it from its object's resident pages to its object's cache, keeping
// bytes and valid bits; a page with nothing to come back to (invalid, of a
// default object, or of a swap object without a swap copy) is freed instead.
// Also requires m's object locked.
void page_cache(Page* m);
// Whether (object, pindex) has a cached page (for counters and tests: the
// model's own code, like 7.0's, never asks).  Requires: object locked.
bool object_has_cached(Object& object, Pindex pindex);
// vm_page_cache_free: frees the cached pages of `object` in [start, end)
// (end 0: to the end).  Requires: object locked.
void page_cache_free(Object& object, Pindex start, Pindex end);
// vm_page_cache_transfer (vm_object_split): the cached pages of `orig` from
// offidxstart on that fall inside `nobj` move to it, rebased.  Requires: nobj
// locked (its cache empty), orig locked.
void page_cache_transfer(Object& orig, Pindex offidxstart, Object& nobj);
void page_wire(Page* m);
// Unwires; at zero wirings the page goes to the active (activate) or inactive
// queue.
void page_unwire(Page* m, bool activate);
void page_hold(Page* m);
void page_unhold(Page* m);

// ---- contents ----

// Requires: m's object locked.
void page_dirty(Page* m);
void page_zero(Page* m);  // pmap_zero_page: all bytes zero (m busy)
void page_copy(const Page* src, Page* dst);  // pmap_copy_page (dst busy)
// Zeroes the invalid blocks and marks the page valid (vm_page_zero_invalid).
void page_zero_invalid(Page* m);
// pmap_zero_page_area on a page that may still be mapped and not busy
// (vnode_pager_setsize's partial last page): user loads and stores through
// pmap_access may run meanwhile, so both sides go a 64-bit word at a time
// through std::atomic_ref (the hardware's word-sized accesses), and a store
// may land before or after the zeroing.  Requires: m's object locked.
void page_zero_area_mapped(Page* m, std::uint32_t base, std::uint32_t size);
// pmap_copy_page from a page that may be mapped writable (a wired page
// vm_fault_copy_entry copies for a fork: the parent's threads go on storing
// to it through their translations, which nothing write-protects; a file
// page a private mapping's write fault copies, which shared mappings of
// the file may be storing to): a 64-bit
// word at a time through std::atomic_ref, each word as it was before or
// after a store made meanwhile.  Requires: src's object locked.
void page_copy_mapped(const Page* src, Page* dst);
// The 64-bit word at byte `off` of a page that may be mapped writable, as
// the MMU's stores leave it (the read side of page_copy_mapped).  Requires:
// m's object locked.
std::uint64_t page_word_mapped(const Page* m, std::uint32_t off);
// vm_page_set_validclean: [base, base+size) valid and clean, by DEV_BSIZE
// chunks, inclusive of the partial chunks the range touches.
// Requires: m's object locked and the page queues.
void page_set_validclean(Page* m, std::uint32_t base, std::uint32_t size);

// ---- page loans: page-based COW (vm_page_cowsetup / cowclear / cowfault) ----

// Lends m read-only (zero-copy send): wires it, counts the loan and
// write-protects every mapping.  Requires: the page queues.
void page_loan(Page* m);
// The loan is over: unwires, and frees m if the object let go of it meanwhile
// (cowfault).  Requires: the page queues.
void page_loan_end(Page* m);
// A write fault hit a loaned page: a private copy replaces m in its object
// and the loaner keeps m.  Requires: m's object and the page queues locked;
// may drop both to wait for memory and returns with both held.
void page_cowfault(Page* m);

}  // namespace faultline::vm
