// Event counters with FreeBSD's names (vmmeter's cnt.v_*), plus one counter
// per retry reason of vm_fault, so a run prints a `vmstat -s`-like table and a
// retry-coverage table.  Counts, not synchronisation.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#ifndef FL_COUNTERS
#define FL_COUNTERS 1
#endif

namespace faultline::vm {

// Why vm_fault went back to RetryFault (protocol.md's table).
enum class Retry : std::uint8_t {
  kCowLoan,          // seed L343-350: page with COW loans, write fault
  kBusyPage,         // L368-400: page busy, slept on it
  kNoFreePage,       // L433-447: severe shortage, VM_WAIT
  kPagerPageGone,    // L579-583: pager OK but page gone at relookup
  kMapTryLockFailed, // L795-799: map relock (try) failed after the pager
  kMapLookupFailed,  // L818-819: re-lookup would have blocked (KERN_FAILURE)
  kMapChanged,       // L822-827: re-lookup found another object or pindex
  kDeadObject,       // L323: an object dead mid-collapse; paused, retried (fix dead-object-retry)
  kCount
};
const char* retry_name(Retry r) noexcept;

class Counters;

// One named count.  Its value is the sum of per-thread slots (see Counters).
class Counter {
 public:
  std::uint64_t load() const noexcept;

 private:
  friend class Counters;
  constexpr Counter(const Counters* owner, std::uint16_t index) noexcept : owner_(owner), index_(index) {}
  const Counters* owner_;
  std::uint16_t index_;
};

// The counters of one VM.  As 7.x's PCPU_LAZY_INC counts per CPU, each OS
// thread counts in its own block (one writer: a plain load and store, no
// atomic read-modify-write, no cache line shared between faulting threads);
// a read sums the blocks.  Reads are not a snapshot across counters.
class Counters {
 public:
  Counters();
  ~Counters();
  Counters(const Counters&) = delete;
  Counters& operator=(const Counters&) = delete;

  Counter v_vm_faults{this, 0};     // faults entered
  Counter v_intrans{this, 1};       // faults that waited on a busy page
  Counter v_zfod{this, 2};          // zero-fill faults
  Counter v_ozfod{this, 3};         // ... satisfied by a prezeroed page
  Counter v_cow_faults{this, 4};    // copy-on-write faults
  Counter v_cow_optim{this, 5};     // ... resolved by renaming the page
  Counter v_majflt{this, 6};        // faults that did pager I/O
  Counter v_minflt{this, 7};        // faults that did not
  Counter v_pageins{this, 8};       // pager getpages calls
  Counter v_pgpgin{this, 9};        // pages read in
  Counter v_pageouts{this, 10};     // pager putpages calls
  Counter v_pgpgout{this, 11};      // pages written out
  Counter v_reactivated{this, 12};  // pages reactivated by the daemon
  Counter v_pdwakeups{this, 13};    // pageout daemon wakeups
  Counter v_pdpages{this, 14};      // pages analysed by the daemon
  Counter v_tcached{this, 15};      // pages moved to the cache queue
  Counter v_tfree{this, 16};        // pages freed
  Counter v_vmwait{this, 17};       // VM_WAIT sleeps
  Counter v_fault_errors{this, 18}; // faults that returned an error
  Counter object_collapses{this, 19};  // backing objects merged into their shadow
  Counter collapse_sleeps{this, 20};   // vm_object_backing_scan slept on a busy page ("vmocol")
  Counter swap_copy_waits{this, 21};   // swap_pager_copy waited for memory, both objects unlocked
  Counter dealloc_pip_sleeps{this, 22};  // vm_object_deallocate slept on pip ("objde1", "objde2")
  Counter dealloc_pauses{this, 23};    // vm_object_deallocate's shadow try-lock failed: pause, retry ("vmo_de")
  Counter fault_dead_objects{this, 24};  // faults that met an object marked dead (seed L323)
  Counter page_remove_sleeps{this, 25};  // vm_object_page_remove slept on a busy page ("vmopar")
  Counter setsize_zeroed_mapped{this, 26};  // vnode_pager_setsize zeroed a partial last page still mapped
  Counter entry_delete_removes{this, 27};  // munmap removed the pages of a one-mapping object (vm_map_entry_delete)
  Counter fault_wired_meanwhile{this, 28};  // faults whose entry was wired while the pager ran (seed L802-803)
  Counter object_splits{this, 29};  // vm_object_split moved an entry's pages to a new object (fork)
  Counter split_sleeps{this, 30};   // vm_object_split slept on a busy page ("spltwt")
  Counter fork_wiring_waits{this, 31};      // forks that waited for an entry being wired (fix fork-waits-for-wiring)
  Counter protect_in_transition{this, 32};  // mprotects that changed an entry being wired (7.0 does not wait)
  Counter qcollapse_kept{this, 33};  // quick collapses that kept a backing page under a fault's placeholder (fix)
  Counter object_bypasses{this, 34};  // shadows pointed past a backing object referenced elsewhere (vm_object_collapse)
  Counter bypass_unmapped{this, 35};  // mappings of a bypassed object's pages that the bypass removed (fix)
  Counter cache_reactivations{this, 36};  // cached pages given back to their object by vm_page_alloc
  Counter fault_alloc_valid{this, 37};    // faults whose new page came back valid from the cache (seed L448)
  Counter fault_severe_cached{this, 38};  // faults that waited (L433) for a page their object had cached
  Counter pageout_fallbacks{this, 39};    // pageout blocked on an object lock (vm_pageout_fallback_object_lock)
  Counter pageout_fallback_lost{this, 40};  // ... and found the page moved, freed or held meanwhile
  Counter pageout_vnode_launders{this, 41}; // dirty file pages laundered after vget (the vnode path)
  Counter pageout_vnode_lost{this, 42};     // ... whose page changed while the daemon waited for the vnode
  Counter pageout_second_chance{this, 43};  // dirty inactive pages requeued on a first pass (PG_WINATCFLS)
  Counter pmap_enter_waits{this, 44};   // pmap_enter waited for memory for a page-table page
  Counter shootdown_waits{this, 45};    // a removal or write-protect waited for accesses in flight
  Counter mmu_stale_walks{this, 46};    // accesses whose PTE lost validity or write between walk and use
  Counter socow_loans{this, 47};        // pages lent to zero-copy sends (socow_setup)
  Counter lent_mapped_read_only{this, 48};  // fault entries of a lent page made read-only (fix lent-page-read-only)
  Counter rename_lent_copied{this, 49};  // COW renames refused for a lent page, which was copied (fix rename-skips-lent)
  // The fault's own branches (seed lines), for the reach catalogue (reach.h).
  Counter fault_lookup_errors{this, 50};   // the map lookup failed (L233-246)
  Counter fault_wire_override{this, 51};   // a user wire of a read-only COW entry looked up again (L249-271)
  Counter fault_resident{this, 52};        // the page was resident, valid, not busy (L401-416)
  Counter fault_readrest{this, 53};        // ... resident but not fully valid: read the rest (L408-414)
  Counter fault_past_eof{this, 54};        // past the end of the object: KERN_PROTECTION_FAILURE (L423-427)
  Counter fault_pager_errors{this, 55};    // the pager failed or the page is bad (L601-620)
  Counter fault_pager_absent{this, 56};    // the pager had no page: on down the chain (L621-630)
  Counter fault_cached_behind{this, 57};   // pages behind a sequential fault cached or deactivated (L483-525)
  Counter fault_chain_steps{this, 58};     // steps down to a backing object (L673-682)
  Counter fault_cow_copies{this, 59};      // write faults that copied a backing page up (L753-758)
  Counter fault_backing_read{this, 60};    // read faults mapping a backing page read-only (L781-783)
  Counter fault_relookup_errors{this, 61}; // the re-lookup after the pager failed for good (L820)
  Counter fault_prot_narrowed{this, 62};   // the re-lookup took write permission away (L837)
  Counter fault_wirings{this, 63};         // pages wired by a wiring fault (L904-905)
  Counter prefault_entered{this, 64};      // neighbours handed to pmap_enter_quick by vm_fault_prefault (L891-894)
  Counter fault_zero_invalid{this, 65};    // pages mapped partly invalid: the rest zeroed (L879-881)
  Counter last_page_busy_waits{this, 66};  // sleeps of a truncation's last-block write on a busy page (allocbuf "pgtblk")
  Counter entry_merges{this, 67};          // map entries joined with a neighbour (vm_map_simplify_entry)
  Counter page_remove_wired{this, 68};     // wired pages a page removal (truncation, munmap) unmapped and left (vm_object_page_remove)
  Counter unwire_unmapped{this, 69};       // pages of a wired range an unwire found unmapped: left wired (L1065-1067)
  Counter fault_past_eof_zero_fill{this, 70};  // resident pages past a file's end zero-filled, not refused (L411-413, L646-672)
  Counter fault_kept_wired{this, 71};      // wired pages the pager could not fill, left unbusied (fix fault-keeps-wired)
  Counter cowfault_invalid_copies{this, 72};  // copies of a lent page not fully valid, kept as valid (fix cowfault-keeps-validity)
  Counter fault_wired_type_refused{this, 73};  // lookups for a wired entry's protection, not the fault's, refused (L309-310)
  Counter protect_wiring_waits{this, 74};  // mprotects adding write to a COW entry being wired that waited (fix protect-copies-wired)
  Counter protect_wired_copies{this, 75};  // pages of user-wired COW entries gaining write copied up (fix protect-copies-wired)
  Counter fault_wired_entry_wires{this, 76};  // pages a fault on a wired entry wired (fix wired-fault-wires)
  Counter copy_entry_placeholders{this, 77};  // placeholders a fork's copy of a wired entry passed over (fix copy-entry-skips-placeholder)
  static constexpr std::uint16_t kNamed = 78;
  static constexpr std::size_t kRetries = static_cast<std::size_t>(Retry::kCount);
  const std::array<Counter, kRetries> retries;

  void bump(const Counter& c, std::uint64_t n = 1) noexcept {
    if constexpr (kCounting) {
      std::atomic<std::uint64_t>& slot = mine().v[c.index_];
      const std::uint64_t old = slot.load(std::memory_order_relaxed);
      slot.store(old + n, std::memory_order_relaxed);
      if (old == 0 && n != 0) [[unlikely]] note_first(c.index_);
    } else {
      (void)c;
      (void)n;
    }
  }
  // FL_COUNTERS=OFF (cmake -DFL_COUNTERS=OFF): bump does nothing, every
  // count reads 0; only for measuring what counting costs.
  static constexpr bool kCounting = FL_COUNTERS != 0;
  void retry(Retry r) noexcept { bump(retries[static_cast<std::size_t>(r)]); }
  std::uint64_t retries_of(Retry r) const noexcept { return retries[static_cast<std::size_t>(r)].load(); }

  // When a count first moved: a stamp from the source set here (the harness
  // gives the number of operations completed), read the first time each
  // thread's block counts the event, so at most once per thread and event.
  // The earliest stamp stored wins.  No source: stamp 0.
  using StampSource = std::uint64_t (*)(const void* ctx);
  void set_stamp_source(StampSource fn, const void* ctx) noexcept {
    stamp_ctx_.store(ctx, std::memory_order_relaxed);
    stamp_fn_.store(fn, std::memory_order_release);
  }
  // The stamp of a counter's first event; nullopt if it never happened.
  std::optional<std::uint64_t> first_stamp(const Counter& c) const noexcept;

  // Every named counter, in vmstat -s order.
  struct VmstatRow {
    const char* name;  // "v_vm_faults"
    const char* what;  // "page faults"
    std::uint64_t value;
  };
  std::vector<VmstatRow> vmstat() const;
  // "  1234 v_vm_faults  page faults" lines, like vmstat -s.
  std::string format_vmstat() const;
  // One line per retry reason with its count; a zero is a coverage gap.
  std::string format_retries() const;

 private:
  friend class Counter;
  static constexpr std::size_t kAll = kNamed + kRetries;
  struct Block {
    std::array<std::atomic<std::uint64_t>, kAll> v{};
  };
  Block& mine() noexcept;
  Block& add_block();
  std::uint64_t sum(std::uint16_t index) const noexcept;
  void note_first(std::uint16_t index) noexcept;

  const std::uint64_t id_;  // unique among all Counters ever made (the thread caches key on it)
  mutable std::mutex mtx_;
  std::vector<std::unique_ptr<Block>> blocks_;  // one per thread that counted; kept to the end
  std::atomic<StampSource> stamp_fn_{nullptr};
  std::atomic<const void*> stamp_ctx_{nullptr};
  std::array<std::atomic<std::uint64_t>, kAll> first_{};  // stamp + 1; 0: never
};

}  // namespace faultline::vm
