#include "core/reach.h"

namespace faultline::vm {

namespace {

#define FL_C(field) [](const Counters& c) -> const Counter& { return c.field; }
#define FL_R(reason) [](const Counters& c) -> const Counter& { return c.retries[static_cast<std::size_t>(Retry::reason)]; }

constexpr WindowKind kSeed = WindowKind::kSeedBranch;
constexpr WindowKind kRetryW = WindowKind::kRetry;
constexpr WindowKind kWin = WindowKind::kWindow;

}  // namespace

const std::vector<Window>& reach_catalogue() {
  static const std::vector<Window> all = {
      // vm_fault, in the order of the seed listing.
      {"fault.lookup_error", kSeed, "seed L233-246", "the map lookup failed: no entry, or no permission",
       FL_C(fault_lookup_errors)},
      {"fault.wire_override", kSeed, "seed L249-271", "a user wire of an inaccessible COW entry looks up for write",
       FL_C(fault_wire_override)},
      {"fault.wired_type", kSeed, "seed L309-310",
       "a retried fault on a wired entry looked up for the entry's protection, not its own, and was refused",
       FL_C(fault_wired_type_refused)},
      {"fault.dead_object", kSeed, "seed L323", "the search met an object marked dead by a collapse",
       FL_C(fault_dead_objects)},
      {"retry.cow_loan", kRetryW, "seed L343-350", "a write fault on a lent page: copied, retried", FL_R(kCowLoan)},
      {"retry.busy_page", kRetryW, "seed L368-400", "the page was busy: slept on it, retried", FL_R(kBusyPage)},
      {"fault.resident", kSeed, "seed L401-416", "the page was resident, valid and idle", FL_C(fault_resident)},
      {"fault.readrest", kSeed, "seed L408-414", "the page was resident but not fully valid: the pager reads the rest",
       FL_C(fault_readrest)},
      {"fault.past_eof", kSeed, "seed L423-427", "past the end of the object (a truncated file): the fault fails",
       FL_C(fault_past_eof)},
      {"retry.no_free_page", kRetryW, "seed L433-447", "memory severely short: VM_WAIT, retried", FL_R(kNoFreePage)},
      {"fault.severe_cached", kSeed, "seed L433", "waited for memory for a page its object had cached",
       FL_C(fault_severe_cached)},
      {"fault.alloc_valid", kSeed, "seed L448", "the allocation gave back a cached page, still valid",
       FL_C(fault_alloc_valid)},
      {"fault.cached_behind", kSeed, "seed L483-525", "a sequential fault cached or deactivated the pages behind it",
       FL_C(fault_cached_behind)},
      {"fault.pager_read", kSeed, "seed L545-585", "the pager read the page in (a major fault)", FL_C(v_majflt)},
      {"retry.pager_page_gone", kRetryW, "seed L579-583", "the pager succeeded but the page was gone: retried",
       FL_R(kPagerPageGone)},
      {"fault.pager_error", kSeed, "seed L601-620", "the pager failed (I/O error) or the page is bad",
       FL_C(fault_pager_errors)},
      {"fault.pager_absent", kSeed, "seed L621-630", "the pager had no page: on down the chain",
       FL_C(fault_pager_absent)},
      {"fault.pager_failed_wired", kSeed, "seed L612-625 (fix fault-keeps-wired)",
       "the page the pager could not fill was wired (a truncation left it): kept, not freed (7.0 panics)",
       FL_C(fault_kept_wired)},
      {"fault.chain_step", kSeed, "seed L673-682", "a step down the shadow chain, the next object locked first",
       FL_C(fault_chain_steps)},
      {"fault.zero_fill", kSeed, "seed L646-672", "the end of the chain: the first object's page zero-filled",
       FL_C(v_zfod)},
      {"fault.cow_rename", kSeed, "seed L711-752", "a write fault moved the backing page up (no other user)",
       FL_C(v_cow_optim)},
      {"fault.cow_copy", kSeed, "seed L753-758", "a write fault copied the backing page up", FL_C(fault_cow_copies)},
      {"fault.rename_lent_copied", kSeed, "seed L711-752 (fix rename-skips-lent)",
       "a rename refused because a send had lent the page: copied", FL_C(rename_lent_copied)},
      {"fault.backing_read", kSeed, "seed L781-783", "a read fault maps the backing page read-only",
       FL_C(fault_backing_read)},
      {"retry.map_trylock_failed", kRetryW, "seed L795-799", "the map could not be relocked after the pager: retried",
       FL_R(kMapTryLockFailed)},
      {"fault.wired_meanwhile", kSeed, "seed L802-803", "the entry was wired while the pager ran",
       FL_C(fault_wired_meanwhile)},
      {"retry.map_lookup_failed", kRetryW, "seed L818-819", "the re-lookup would have blocked: retried",
       FL_R(kMapLookupFailed)},
      {"fault.relookup_error", kSeed, "seed L820", "the re-lookup failed for good (unmapped, protection)",
       FL_C(fault_relookup_errors)},
      {"retry.map_changed", kRetryW, "seed L822-827", "the re-lookup found another object or offset: retried",
       FL_R(kMapChanged)},
      {"fault.prot_narrowed", kSeed, "seed L837", "the re-lookup took write permission away: mapped read-only",
       FL_C(fault_prot_narrowed)},
      {"fault.zero_invalid", kSeed, "seed L879-881", "the page to map was partly invalid: the rest zeroed",
       FL_C(fault_zero_invalid)},
      {"fault.prefault", kSeed, "seed L891-894", "resident neighbours handed to pmap_enter_quick",
       FL_C(prefault_entered)},
      {"fault.wire", kSeed, "seed L904-905", "a wiring fault wired its page", FL_C(fault_wirings)},
      {"fault.past_eof_resident", kSeed, "seed L411-413, L646-672",
       "a file page past the end, left there wired, zero-filled and mapped: no SIGBUS", FL_C(fault_past_eof_zero_fill)},
      {"retry.dead_object", kRetryW, "seed L323 (fix dead-object-retry)", "an object dead mid-collapse: paused, retried",
       FL_R(kDeadObject)},
      // The windows around the fault.
      {"collapse.merge", kWin, "vm_object_collapse", "a backing object merged into its shadow",
       FL_C(object_collapses)},
      // (A collapse that waits runs only when neither object has paging in
      // progress, and every page the model busies has its object's paging
      // in progress held meanwhile; in 7.x a vm_page_grab caller, which the
      // model has not, busies pages without it.)
      {"collapse.sleep_busy", kWin, "vm_object_backing_scan \"vmocol\"",
       "a collapse slept on a busy page, the objects unlocked", FL_C(collapse_sleeps),
       "CollapseTest.BackingScanSleepsOnABusyPageThenStartsOver"},
      {"collapse.swap_copy_wait", kWin, "swap_pager_copy", "a collapse's swap copy waited for memory, both objects unlocked",
       FL_C(swap_copy_waits)},
      {"collapse.bypass", kWin, "vm_object_collapse", "a shadow pointed past a backing object referenced elsewhere",
       FL_C(object_bypasses)},
      {"collapse.bypass_unmapped", kWin, "vm_object_collapse (fix bypass-unmaps)",
       "mappings of a bypassed object's pages removed", FL_C(bypass_unmapped)},
      {"collapse.qcollapse_kept", kWin, "vm_object_qcollapse (fix qcollapse-skips-invalid)",
       "a quick collapse kept a backing page under a fault's placeholder", FL_C(qcollapse_kept)},
      {"dealloc.pip_sleep", kWin, "vm_object_deallocate \"objde1\"/\"objde2\"",
       "a deallocation slept on paging in progress", FL_C(dealloc_pip_sleeps)},
      {"dealloc.pause", kWin, "vm_object_deallocate \"vmo_de\"", "a deallocation's shadow try-lock failed: paused",
       FL_C(dealloc_pauses)},
      {"truncate.sleep_busy", kWin, "vm_object_page_remove \"vmopar\"", "a truncation slept on a busy page",
       FL_C(page_remove_sleeps)},
      // (The workload cannot enter this one: the truncator holds the vnode
      // lock exclusive, and the only code of the model that busies a file
      // page is the fault, which holds that lock shared from
      // vnode_pager_lock (seed L297) to its end, letting go only to sleep
      // on a busy page (L381-388).  The daemon's vnode pageout holds the
      // lock too and marks pages with the I/O count, which "pgtblk" does
      // not wait for.)
      {"truncate.last_page_busy", kWin, "ffs_truncate, allocbuf \"pgtblk\"",
       "a truncation's write of the last block slept on a busy page", FL_C(last_page_busy_waits),
       "OpsTest.TruncationWritesTheLastBlockAfterWaitingForItsBusyPage"},
      {"truncate.zero_mapped_tail", kWin, "vnode_pager_setsize", "a truncation zeroed a mapped partial last page",
       FL_C(setsize_zeroed_mapped)},
      {"munmap.free_pages", kWin, "vm_map_entry_delete", "an unmap freed a one-mapping object's pages",
       FL_C(entry_delete_removes)},
      {"fork.split", kWin, "vm_object_split", "a fork moved an entry's pages to a new object", FL_C(object_splits)},
      {"fork.split_sleep", kWin, "vm_object_split \"spltwt\"", "a split slept on a busy page", FL_C(split_sleeps)},
      {"fork.wiring_wait", kWin, "vmspace_fork (fix fork-waits-for-wiring)", "a fork waited for an entry being wired",
       FL_C(fork_wiring_waits)},
      {"mprotect.wiring_wait", kWin, "vm_map_protect (fix protect-copies-wired)",
       "an mprotect adding write to a copy-on-write entry being wired waited for the wire",
       FL_C(protect_wiring_waits)},
      {"mprotect.wired_copy", kWin, "vm_map_protect, vm_fault_copy_entry (fix protect-copies-wired)",
       "an mprotect gave write to a user-wired copy-on-write entry: its pages copied up, wired",
       FL_C(protect_wired_copies)},
      {"mprotect.in_transition", kWin, "vm_map_protect", "an mprotect changed an entry being wired",
       FL_C(protect_in_transition)},
      {"map.join", kWin, "vm_map_simplify_entry", "an entry joined a neighbour alike, dropping an object reference",
       FL_C(entry_merges)},
      {"truncate.wired", kWin, "vm_object_page_remove",
       "a page removal (truncation, munmap) unmapped a wired page and left it in its object", FL_C(page_remove_wired)},
      {"unwire.unmapped", kWin, "seed L1065-1075",
       "an unwire found a wired page unmapped (truncation, cowfault): it stays wired", FL_C(unwire_unmapped)},
      {"cache.reactivate", kWin, "vm_page_alloc", "a cached page given back to its object",
       FL_C(cache_reactivations)},
      {"pageout.cache", kWin, "vm_page_cache", "a clean page moved to the cache", FL_C(v_tcached)},
      {"pageout.reactivate", kWin, "vm_pageout_scan", "a referenced page reactivated by the daemon",
       FL_C(v_reactivated)},
      {"pageout.second_chance", kWin, "vm_pageout_scan", "a dirty inactive page requeued on a first pass",
       FL_C(pageout_second_chance)},
      {"pageout.fallback", kWin, "vm_pageout_fallback_object_lock", "the daemon blocked on an object lock",
       FL_C(pageout_fallbacks)},
      {"pageout.fallback_lost", kWin, "vm_pageout_fallback_object_lock",
       "... and its page was freed, moved or held meanwhile", FL_C(pageout_fallback_lost)},
      {"pageout.vnode_launder", kWin, "vm_pageout_scan (vget)", "a dirty file page laundered after the vnode lock",
       FL_C(pageout_vnode_launders)},
      {"pageout.vnode_lost", kWin, "vm_pageout_scan (vget)", "... whose page changed while the daemon waited",
       FL_C(pageout_vnode_lost)},
      {"vm_wait", kWin, "VM_WAIT", "a thread slept for free memory", FL_C(v_vmwait)},
      {"pmap.enter_wait", kWin, "pmap_enter", "pmap_enter waited for memory for a page-table page",
       FL_C(pmap_enter_waits)},
      {"pmap.shootdown_wait", kWin, "pmap_remove_all, pmap_protect",
       "a removal or write-protect waited for accesses in flight", FL_C(shootdown_waits)},
      {"mmu.stale_walk", kWin, "the MMU", "an access whose translation changed between walk and use",
       FL_C(mmu_stale_walks)},
      {"socow.loan", kWin, "socow_setup", "a page lent to a zero-copy send", FL_C(socow_loans)},
      {"socow.lent_read_only", kWin, "pmap_enter (fix lent-page-read-only)", "a lent page entered read-only",
       FL_C(lent_mapped_read_only)},
  };
  return all;
}

#undef FL_C
#undef FL_R

const Window* find_window(const std::string& name) {
  for (const Window& w : reach_catalogue())
    if (name == w.name) return &w;
  return nullptr;
}

std::vector<ReachRow> reach_table(const Counters& c) {
  std::vector<ReachRow> rows;
  for (const Window& w : reach_catalogue()) {
    const Counter& k = w.counter(c);
    rows.push_back({&w, k.load(), c.first_stamp(k)});
  }
  return rows;
}

}  // namespace faultline::vm
