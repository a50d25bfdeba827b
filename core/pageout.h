// The pageout daemon (FreeBSD vm_pageout.c, 7.x vm_pageout_scan).
#pragma once

#include <atomic>
#include <cstdint>

namespace faultline::vm {

class Vm;

struct PageoutStats {
  std::uint32_t scanned = 0;      // inactive pages looked at
  std::uint32_t skipped = 0;      // held, busy, changed while the daemon waited, or vnode lock timed out
  std::uint32_t reactivated = 0;  // referenced since the last scan
  std::uint32_t cached = 0;       // clean pages cached
  std::uint32_t freed = 0;        // invalid pages freed
  std::uint32_t second_chance = 0;  // dirty pages sent round once more (first pass)
  std::uint32_t laundered = 0;    // dirty pages written to their pager
  std::uint32_t launder_failed = 0;
  std::uint32_t deactivated = 0;  // active pages moved to inactive (or cached)
};

// One vm_pageout_scan (7.0 vm_pageout.c 675-1162), `pass` as 7.0's daemon
// counts them (0: the first scan since memory was last fine).  Under the
// page queues it walks the inactive queue while free + cache is short of
// free_target (page_shortage, decremented per page freed, cached or
// laundered):
//  - held: requeued; busy: left;
//  - the object's lock by try-lock or, failing that, by the fallback
//    (vm_pageout_fallback_object_lock: a marker keeps the place, the page
//    queues are dropped, the object lock waited for, the queues retaken, the
//    page revalidated: same queue, same object, still before the marker);
//  - referenced: reactivated; clean: cached; invalid: freed;
//  - dirty: on pass 0 sent round once more (PG_WINATCFLS), then laundered
//    (at most 32 on pass 0): soft busy, write-protected, the page queues
//    dropped for the pager; a file page first takes an object reference,
//    drops the queues and the object, locks the vnode exclusively (waiting
//    up to VLKTIMEOUT), relocks and revalidates (still inactive, same
//    object, before the marker, not busy, not held).
// Then the active queue while inactive is short of its target, under each
// page's object lock (try-lock or fallback), skipping busy and held pages,
// aging act_count and deactivating pages that reach zero.
// Requires: no locks held.
PageoutStats pageout_scan(Vm& vm, int pass = 0);

// The daemon's loop body: sleeps on pages_needed until woken (or `timeout_ms`
// passes), then scans if memory is short (pass + 1 after a scan that left it
// short, else 0).  Returns false once `stop` is set.
// Requires: no locks held.
bool pageout_daemon_step(Vm& vm, const std::atomic<bool>& stop, unsigned timeout_ms);

}  // namespace faultline::vm
