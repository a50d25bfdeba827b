// The machine: physical pages with real bytes, the page queues, the free pool
// with its thresholds and VM_WAIT sleepers, and the counters.  Everything of
// one simulated kernel lives in one Vm, so tests and runs are independent.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/counters.h"
#include "core/locks.h"
#include "core/page.h"
#include "locking/locking.h"

namespace faultline::vm {

// Known protocol faults that can be switched on to show that a harness
// catches them (faultline --mutant, and its self-test).  kNone in any real
// use; each names the rule of the protocol it breaks.
enum class Mutant : std::uint8_t {
  kNone,
  kSkipTimestampRecheck,  // vm_fault: trust the lookup made before the pager ran (seed L801-838)
  kNoWriteProtectAtFork,  // vmspace_fork: leave the parent's translations writable
  kCleanCowCopy,          // vm_fault: leave the COW copy clean (the departure undone)
  kNoEofCheck,            // vm_fault (seed L423-427) and the vnode pager ignore the file's size: no SIGBUS past EOF
  kWireKeepsMaxWrite,     // vm_fault: a user wire of an inaccessible COW entry leaves its max protection (L270-271)
  kVnodeWriteLost,        // vnode pager put_pages: reports the write done without writing the page to the file
  kMprotectPastEnd,       // vm_map_protect without vm_map_clip_end: the protection reaches past the range
  kMunmapKeepsTranslations,  // vm_map_delete: no pmap_remove where the object keeps its pages (shared since a fork)
  kBusyPageTaken,         // vm_fault: a busy page is taken as if idle, no sleep (seed L368-400)
  kNoDeadCheck,           // vm_fault: no OBJ_DEAD test on the objects the fault walks (seed L323)
  kRevalidateKeepsProt,   // vm_fault: the re-lookup does not narrow the protection (seed L837)
  kNoPagerRelookup,       // vm_fault: the page is not looked up again after the pager (seed L579-583)
  kReadMapsBackingWritable,  // vm_fault: a read fault maps a backing object's page with write (seed L781-783)
  kBusyWakeupLost,        // vm_page_wakeup: clears busy without waking the page's sleepers
  kFirstPageLeaked,       // vm_fault: the busy-page retry leaves the first object's placeholder (seed L371-379)
  kLookupDoneMissing,     // vm_fault: the SIGBUS return past EOF keeps the map read-locked (seed L423-427)
  kVmWaitSkipped,         // vm_fault: no VM_WAIT when no page can be had; the fault retries at once (seed L444-447)
  kPagerErrorLeavesBusy,  // vm_fault: the pager's error path leaves its page busy in the object (seed L612-619)
  kUnwireKeepsWiring,     // vm_fault_unwire: the translation is unwired, the page is not (seed L1068-1072)
  kMprotectKeepsTimestamp,  // vm_map_protect: its unlock does not bump the map's timestamp
  kQueueWithoutLock,      // vm_fault: the page leaves its queue without the page-queues lock (seed L401-402)
  kPrefaultTakesBusy,     // vm_fault_prefault: maps a neighbour busy or not valid
  kPageoutNoRevalidate,   // vm_pageout_fallback_object_lock: the page is not checked again after the wait
  kMsleepEarlyRelease,    // msleep: the interlock is released before the sleeper is on the channel
  kMprotectKeepsWrite,    // vm_map_protect: lowers the entry's protection but not its translations' (no pmap_protect)
  kCount
};
const char* mutant_name(Mutant m) noexcept;   // "skip-timestamp-recheck"
const char* mutant_lines(Mutant m) noexcept;  // the seed lines (or the 7.0 function) it breaks
const char* mutant_what(Mutant m) noexcept;   // one line: what it removes and the race it lets through

// Departures from 7.x that fix one of its races (fidelity.md, rule 4): each
// is a named switch, on by default; with every one off the model is 7.x as
// written, and the harness must find each race.  core/README.md lists them.
enum class Fix : std::uint8_t {
  kDeadObjectRetry,  // vm_fault meeting OBJ_DEAD mid-collapse (seed L323): pause and retry
  kCollapseUnmaps,   // vm_object_backing_scan: unmap a backing page before freeing it
  kSwapCopyKeepsResident,  // swap_pager_copy: no source block under a resident page of the destination
  kForkWaitsForWiring,     // vmspace_fork: wait for entries an mlock is faulting in
  kQcollapseSkipsInvalid,  // vm_object_backing_scan (quick): keep a backing page under an invalid shadow page
  kBypassUnmaps,           // vm_object_collapse bypass: unmap the bypassed object's pages the shadow covers
  kLentPageReadOnly,       // pmap_enter: never map a page lent to a send writable
  kCowfaultAfterBusy,      // vm_fault: a write to a lent page waits for the page to be idle before copying it
  kCowfaultLeavesBusy,     // vm_page_cowfault: after its VM_WAIT, leave a page another fault has busied
  kRenameSkipsLent,        // vm_fault: the COW rename shortcut copies a lent page instead of moving it up
  kCopyEntryDirties,       // vm_fault_copy_entry: the child's copies are dirty
  kCowCopyDirty,           // vm_fault: the COW copy is dirty from birth
  kFaultKeepsWired,        // vm_fault: a page the pager cannot fill is freed only if it is not wired
  kUnwireUnderQueues,      // vm_fault_unwire: look the page up under the page queues it unwires it under
  kCowfaultKeepsValidity,  // vm_page_cowfault: the copy of a lent page is only as valid as the page
  kProtectCopiesWired,     // vm_map_protect: write added to a user-wired copy-on-write entry copies its pages now
  kWiredFaultWires,        // vm_fault: a fault (not a wiring one) on a wired entry wires the page it maps if unwired
  kCopyEntrySkipsPlaceholder,  // vm_fault_copy_entry: passes over another fault's placeholder to the page below
  kCount
};
const char* fix_name(Fix f) noexcept;   // "dead-object-retry"
const char* fix_what(Fix f) noexcept;   // one line: the race and what the fix does
inline constexpr std::uint32_t kAllFixes = (1u << static_cast<unsigned>(Fix::kCount)) - 1;

struct VmConfig {
  std::uint32_t page_size = 4096;  // bytes, a power of two >= 512
  std::uint32_t npages = 1024;     // physical pages
  // Thresholds in pages; 0 picks a default from npages.
  std::uint32_t free_reserved = 0;  // normal allocations fail at or below this
  std::uint32_t free_severe = 0;    // the fault waits (VM_WAIT) below this
  std::uint32_t free_min = 0;       // the pageout daemon is woken below this
  std::uint32_t free_target = 0;    // the daemon frees up to this
  std::uint64_t seed = 1;           // I/O error draws derive from it
  std::uint32_t io_latency_us = 0;  // simulated pager latency per operation
  std::uint32_t io_error_ppm = 0;   // pager I/O error rate, parts per million
  Mutant mutant = Mutant::kNone;    // a protocol fault injected on purpose (self-tests only)
  std::uint32_t fixes = kAllFixes;  // bit (1 << Fix) set: that fix is on

  // Empty if valid; otherwise a message naming the bad field and value.
  std::string validate() const;
};

class Vm {
 public:
  explicit Vm(const VmConfig& config);
  ~Vm();
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  const VmConfig& config() const noexcept { return config_; }
  std::uint32_t page_size() const noexcept { return config_.page_size; }
  std::uint32_t npages() const noexcept { return config_.npages; }
  Page& page(std::uint32_t i) noexcept { return pages_[i]; }
  Counters& counters() noexcept { return counters_; }
  const Counters& counters() const noexcept { return counters_; }

  // The page-queues mutex (vm_page_queue_mtx) and the free-queue mutex.
  locking::Mutex page_queues{page_queues_lock_class, "page queues"};
  locking::Mutex free_mtx{free_queue_lock_class, "free queue"};

  // Queues.  active/inactive under page_queues; free and cache under
  // free_mtx (7.0 keeps cached pages in the physical allocator's free lists,
  // in a pool of their own, and allocation takes free ones first).
  PageList active FL_GUARDED_BY(page_queues);
  PageList inactive FL_GUARDED_BY(page_queues);
  PageList cache FL_GUARDED_BY(free_mtx);
  PageList free_list FL_GUARDED_BY(free_mtx);

  // Counts readable without locks (vm_page_count_severe reads them racily in
  // the kernel too); written under the queue's lock.
  std::atomic<std::uint32_t> free_count{0};
  std::atomic<std::uint32_t> cache_count{0};
  std::atomic<std::uint32_t> wired_count{0};
  // Pages freed, VM_WAIT sleepers sleep on &free_count under free_mtx.
  std::uint32_t free_waiters FL_GUARDED_BY(free_mtx) = 0;
  // The pageout daemon sleeps on &pages_needed.
  std::atomic<bool> pages_needed{false};

  bool count_severe() const noexcept {
    return free_count.load(std::memory_order_relaxed) + cache_count.load(std::memory_order_relaxed) <
           config_.free_severe;
  }
  bool count_min() const noexcept {
    return free_count.load(std::memory_order_relaxed) + cache_count.load(std::memory_order_relaxed) <
           config_.free_min;
  }

  // Zeroes up to n free pages and marks them PG_ZERO (vm_page_zero_idle).
  // Requires: no locks held.  Returns how many it zeroed.
  std::uint32_t prezero_free_pages(std::uint32_t n);

  // A deterministic draw in [0, 1e6) from the seed and a sequence number
  // (for injected I/O errors); the sequence follows the schedule, so the same
  // schedule draws the same values.
  std::uint32_t draw_ppm() noexcept;
  // The injected pager I/O error rate, in parts per million (from the
  // config; changeable while running, e.g. by a test).
  std::uint32_t io_error_ppm() const noexcept { return io_error_ppm_.load(std::memory_order_relaxed); }
  void set_io_error_ppm(std::uint32_t ppm) noexcept { io_error_ppm_.store(ppm, std::memory_order_relaxed); }
  // Whether a fix of a 7.x race is on (from the config; a test may switch it).
  bool fix(Fix f) const noexcept {
    return (fixes_.load(std::memory_order_relaxed) >> static_cast<unsigned>(f) & 1u) != 0;
  }
  void set_fix(Fix f, bool on) noexcept {
    const std::uint32_t bit = 1u << static_cast<unsigned>(f);
    if (on)
      fixes_.fetch_or(bit, std::memory_order_relaxed);
    else
      fixes_.fetch_and(~bit, std::memory_order_relaxed);
  }

  // 7.0's objects come from a type-stable UMA zone, and the pageout
  // daemon's fallback locks the object of a page it let go of, which may
  // have been freed meanwhile.  Here an object is deleted only when no
  // scan runs (object_free); one freed during a scan waits for the last
  // scan to end.
  void pageout_scan_begin() noexcept { scans_running_.fetch_add(1); }
  void pageout_scan_end();
  bool scan_running() const noexcept { return scans_running_.load() != 0; }
  void defer_free(Object* o);
  // The daemon's pass number (vm_pageout's `pass`); the daemon's own.
  int pageout_pass = 0;

  // Next object id (stable, deterministic names in reports).
  std::uint64_t next_object_id() noexcept { return next_object_id_.fetch_add(1); }
  // Live objects (for the invariant checker and leak tests).
  std::atomic<std::int64_t> live_objects{0};

 private:
  VmConfig config_;
  std::unique_ptr<std::byte[]> memory_;
  std::unique_ptr<Page[]> pages_;
  Counters counters_;
  std::atomic<std::uint64_t> draw_seq_{0};
  std::atomic<std::uint32_t> io_error_ppm_{0};
  std::atomic<std::uint32_t> fixes_{kAllFixes};
  std::atomic<std::uint64_t> next_object_id_{1};
  std::atomic<int> scans_running_{0};
  std::mutex graveyard_mu_;  // the model's own (UMA's zone lock); never held across a model lock
  std::vector<Object*> graveyard_;
};

// Scoped pageout_scan_begin / end.
class ScanGuard {
 public:
  explicit ScanGuard(Vm& vm) : vm_(vm) { vm_.pageout_scan_begin(); }
  ~ScanGuard() { vm_.pageout_scan_end(); }
  ScanGuard(const ScanGuard&) = delete;
  ScanGuard& operator=(const ScanGuard&) = delete;

 private:
  Vm& vm_;
};

}  // namespace faultline::vm
