// The pageout daemon (FreeBSD vm_pageout.c, 7.x vm_pageout_scan).
#pragma once

#include <atomic>
#include <cstdint>

namespace faultline::vm {

class Vm;

struct PageoutStats {
  std::uint32_t scanned = 0;      // inactive pages looked at
  std::uint32_t skipped = 0;      // busy, held, wired, or object lock not free
  std::uint32_t reactivated = 0;  // referenced since the last scan
  std::uint32_t cached = 0;       // clean pages moved to the cache queue
  std::uint32_t freed = 0;        // invalid pages freed
  std::uint32_t laundered = 0;    // dirty pages written to their pager
  std::uint32_t launder_failed = 0;
  std::uint32_t deactivated = 0;  // active pages moved to inactive
};

// One pass of vm_pageout_scan: walks the inactive queue under the page
// queues, try-locking each page's object (a page whose object is locked
// elsewhere is skipped: the daemon holds the page queues, and waiting for an
// object after them would invert the order); reactivates referenced pages;
// caches clean ones (unmapping them first); launders dirty ones through the
// pager (soft busy, write-protected, locks dropped for the I/O).  Then
// deactivates unreferenced active pages while free + cache is short of the
// target.  Freed and cached pages wake VM_WAIT sleepers.
// Requires: no locks held.
PageoutStats pageout_scan(Vm& vm);

// The daemon's loop body: sleeps on pages_needed until woken (or `timeout_ms`
// passes), then scans if memory is short.  Returns false once `stop` is set.
// Requires: no locks held.
bool pageout_daemon_step(Vm& vm, const std::atomic<bool>& stop, unsigned timeout_ms);

}  // namespace faultline::vm
