#include "core/counters.h"

#include <cstdio>
#include <utility>

namespace faultline::vm {

namespace {

std::atomic<std::uint64_t> g_next_counters_id{1};

template <std::size_t... I>
std::array<Counter, sizeof...(I)> make_retries(const Counters* owner, std::index_sequence<I...>,
                                               Counter (*make)(const Counters*, std::uint16_t)) {
  return {make(owner, static_cast<std::uint16_t>(Counters::kNamed + I))...};
}

// The blocks this thread counts in, by Counters id: the last used first.
// Bounded: a thread that touched many VMs forgets the oldest, and if it
// comes back to one it gets a fresh block (sums stay right).
struct ThreadBlocks {
  static constexpr std::size_t kMax = 8;
  std::pair<std::uint64_t, void*> entries[kMax] = {};
  std::size_t n = 0;
};
thread_local ThreadBlocks tl_blocks;

}  // namespace

std::uint64_t Counter::load() const noexcept { return owner_->sum(index_); }

Counters::Counters()
    : retries(make_retries(this, std::make_index_sequence<kRetries>{},
                           [](const Counters* o, std::uint16_t i) { return Counter(o, i); })),
      id_(g_next_counters_id.fetch_add(1)) {}

Counters::~Counters() = default;

Counters::Block& Counters::mine() noexcept {
  ThreadBlocks& t = tl_blocks;
  if (t.n != 0 && t.entries[0].first == id_) [[likely]]
    return *static_cast<Block*>(t.entries[0].second);
  for (std::size_t i = 1; i < t.n; ++i) {
    if (t.entries[i].first == id_) {
      std::swap(t.entries[0], t.entries[i]);
      return *static_cast<Block*>(t.entries[0].second);
    }
  }
  return add_block();
}

Counters::Block& Counters::add_block() {
  Block* b = nullptr;
  {
    std::lock_guard<std::mutex> l(mtx_);
    blocks_.push_back(std::make_unique<Block>());
    b = blocks_.back().get();
  }
  ThreadBlocks& t = tl_blocks;
  if (t.n < ThreadBlocks::kMax) ++t.n;
  for (std::size_t i = t.n - 1; i > 0; --i) t.entries[i] = t.entries[i - 1];
  t.entries[0] = {id_, b};
  return *b;
}

std::uint64_t Counters::sum(std::uint16_t index) const noexcept {
  std::lock_guard<std::mutex> l(mtx_);
  std::uint64_t total = 0;
  for (const auto& b : blocks_) total += b->v[index].load(std::memory_order_relaxed);
  return total;
}

void Counters::note_first(std::uint16_t index) noexcept {
  std::atomic<std::uint64_t>& first = first_[index];
  if (first.load(std::memory_order_relaxed) != 0) return;
  const StampSource fn = stamp_fn_.load(std::memory_order_acquire);
  const std::uint64_t stamp = (fn != nullptr ? fn(stamp_ctx_.load(std::memory_order_relaxed)) : 0) + 1;
  std::uint64_t seen = first.load(std::memory_order_relaxed);
  while ((seen == 0 || stamp < seen) && !first.compare_exchange_weak(seen, stamp, std::memory_order_relaxed)) {
  }
}

std::optional<std::uint64_t> Counters::first_stamp(const Counter& c) const noexcept {
  const std::uint64_t v = first_[c.index_].load(std::memory_order_relaxed);
  if (v == 0) return std::nullopt;
  return v - 1;
}

const char* retry_name(Retry r) noexcept {
  switch (r) {
    case Retry::kCowLoan: return "cow_loan";
    case Retry::kBusyPage: return "busy_page";
    case Retry::kNoFreePage: return "no_free_page";
    case Retry::kPagerPageGone: return "pager_page_gone";
    case Retry::kMapTryLockFailed: return "map_trylock_failed";
    case Retry::kMapLookupFailed: return "map_lookup_failed";
    case Retry::kMapChanged: return "map_changed";
    case Retry::kDeadObject: return "dead_object";
    case Retry::kCount: break;
  }
  return "?";
}

std::vector<Counters::VmstatRow> Counters::vmstat() const {
  struct Row {
    const Counter* c;
    const char* name;
    const char* what;
  };
  const Row rows[] = {
      {&v_vm_faults, "v_vm_faults", "page faults"},
      {&v_intrans, "v_intrans", "faults that waited on a busy page"},
      {&v_zfod, "v_zfod", "zero fill pages"},
      {&v_ozfod, "v_ozfod", "zero fill pages that were prezeroed"},
      {&v_cow_faults, "v_cow_faults", "copy-on-write faults"},
      {&v_cow_optim, "v_cow_optim", "copy-on-write optimised (page renamed)"},
      {&v_majflt, "v_majflt", "major faults (pager I/O)"},
      {&v_minflt, "v_minflt", "minor faults"},
      {&v_pageins, "v_pageins", "pager getpages calls"},
      {&v_pgpgin, "v_pgpgin", "pages paged in"},
      {&v_pageouts, "v_pageouts", "pager putpages calls"},
      {&v_pgpgout, "v_pgpgout", "pages paged out"},
      {&v_reactivated, "v_reactivated", "pages reactivated"},
      {&v_pdwakeups, "v_pdwakeups", "pageout daemon wakeups"},
      {&v_pdpages, "v_pdpages", "pages analysed by the pageout daemon"},
      {&v_tcached, "v_tcached", "pages cached"},
      {&v_tfree, "v_tfree", "pages freed"},
      {&v_vmwait, "v_vmwait", "VM_WAIT sleeps"},
      {&v_fault_errors, "v_fault_errors", "faults that failed"},
      {&object_collapses, "object_collapses", "objects collapsed into their shadow"},
      {&collapse_sleeps, "collapse_sleeps", "collapse slept on a busy backing page (vmocol)"},
      {&swap_copy_waits, "swap_copy_waits", "collapse's swap copy waited for memory"},
      {&dealloc_pip_sleeps, "dealloc_pip_sleeps", "deallocate slept on paging in progress (objde1/2)"},
      {&dealloc_pauses, "dealloc_pauses", "deallocate paused after a failed shadow try-lock (vmo_de)"},
      {&fault_dead_objects, "fault_dead_objects", "faults that met an object dead mid-collapse (L323)"},
      {&page_remove_sleeps, "page_remove_sleeps", "page removals that slept on a busy page (\"vmopar\")"},
      {&setsize_zeroed_mapped, "setsize_zeroed_mapped", "truncations that zeroed a mapped partial last page"},
      {&fault_wired_meanwhile, "fault_wired_meanwhile", "faults whose entry was wired while the pager ran (L803)"},
      {&object_splits, "object_splits", "objects split at fork (vm_object_split)"},
      {&split_sleeps, "split_sleeps", "splits that slept on a busy page (\"spltwt\")"},
      {&fork_wiring_waits, "fork_wiring_waits", "forks that waited for an entry being wired"},
      {&protect_in_transition, "protect_in_transition", "mprotects of an entry being wired"},
      {&entry_delete_removes, "entry_delete_removes", "unmaps that freed a one-mapping object's pages"},
      {&object_bypasses, "object_bypasses", "shadows pointed past a backing object referenced elsewhere"},
      {&bypass_unmapped, "bypass_unmapped", "mappings of a bypassed object's pages that the bypass removed (fix)"},
      {&qcollapse_kept, "qcollapse_kept", "quick collapses that kept a backing page under a fault's placeholder"},
      {&cache_reactivations, "cache_reactivations", "cached pages given back to their object by allocation"},
      {&fault_alloc_valid, "fault_alloc_valid", "faults whose new page came back valid from the cache (L448)"},
      {&fault_severe_cached, "fault_severe_cached", "faults that waited for memory (L433) for a cached page"},
      {&pageout_fallbacks, "pageout_fallbacks", "pageout blocked on an object lock (fallback)"},
      {&pageout_fallback_lost, "pageout_fallback_lost", "... and found its page changed meanwhile"},
      {&pageout_vnode_launders, "pageout_vnode_launders", "dirty file pages laundered after vget"},
      {&pageout_vnode_lost, "pageout_vnode_lost", "... whose page changed while the daemon waited for the vnode"},
      {&pmap_enter_waits, "pmap_enter_waits", "pmap_enter waited for memory for a page-table page"},
      {&shootdown_waits, "shootdown_waits", "removals or write-protects that waited for accesses in flight"},
      {&mmu_stale_walks, "mmu_stale_walks", "accesses whose translation changed between walk and use (refault)"},
      {&socow_loans, "socow_loans", "pages lent to zero-copy sends (socow_setup)"},
      {&lent_mapped_read_only, "lent_mapped_read_only", "lent pages entered read-only instead of writable (fix)"},
      {&rename_lent_copied, "rename_lent_copied", "COW renames of a lent backing page refused: copied (fix)"},
      {&pageout_second_chance, "pageout_second_chance", "dirty inactive pages given a second chance (first pass)"},
      {&fault_lookup_errors, "fault_lookup_errors", "faults whose map lookup failed (L233-246)"},
      {&fault_wire_override, "fault_wire_override", "user wires of a read-only COW entry, looked up for write (L249-271)"},
      {&fault_resident, "fault_resident", "faults that found their page resident and valid (L401-416)"},
      {&fault_readrest, "fault_readrest", "faults that found their page resident, not fully valid (L408-414)"},
      {&fault_past_eof, "fault_past_eof", "faults past the end of their object (L423-427)"},
      {&fault_pager_errors, "fault_pager_errors", "faults failed by a pager error or a bad page (L601-620)"},
      {&fault_pager_absent, "fault_pager_absent", "pager calls that found no page: on down the chain (L621-630)"},
      {&fault_cached_behind, "fault_cached_behind", "pages behind a sequential fault cached or deactivated (L483-525)"},
      {&fault_chain_steps, "fault_chain_steps", "fault steps down to a backing object (L673-682)"},
      {&fault_cow_copies, "fault_cow_copies", "write faults that copied a backing page (L753-758)"},
      {&fault_backing_read, "fault_backing_read", "read faults mapping a backing page read-only (L781-783)"},
      {&fault_relookup_errors, "fault_relookup_errors", "faults failed by the re-lookup after the pager (L820)"},
      {&fault_prot_narrowed, "fault_prot_narrowed", "faults whose re-lookup took write permission away (L837)"},
      {&fault_wirings, "fault_wirings", "pages wired by wiring faults (L904-905)"},
      {&prefault_entered, "prefault_entered", "neighbours handed to pmap_enter_quick by prefault (L891-894)"},
      {&fault_zero_invalid, "fault_zero_invalid", "faults that zeroed the invalid part of their page (L879-881)"},
      {&last_page_busy_waits, "last_page_busy_waits", "sleeps of a truncation's last-block write on a busy page (pgtblk)"},
      {&entry_merges, "entry_merges", "map entries joined with a neighbour (vm_map_simplify_entry)"},
      {&page_remove_wired, "page_remove_wired",
       "wired pages a page removal (truncation, munmap) unmapped and left in their object (vm_object_page_remove)"},
      {&unwire_unmapped, "unwire_unmapped", "pages of a wired range an unwire found unmapped, left wired (L1065-1067)"},
      {&cowfault_invalid_copies, "cowfault_invalid_copies",
       "copies of a lent page not fully valid, made only as valid (fix cowfault-keeps-validity)"},
      {&fault_kept_wired, "fault_kept_wired",
       "wired pages the pager could not fill, left in their object unbusied (fix fault-keeps-wired)"},
      {&fault_past_eof_zero_fill, "fault_past_eof_zero_fill",
       "resident pages past a file's end zero-filled by a fault, not refused (L411-413, L646-672)"},
      {&fault_wired_type_refused, "fault_wired_type_refused",
       "lookups of a retried fault for a wired entry's protection, not the fault's own, refused (L309-310)"},
      {&protect_wiring_waits, "protect_wiring_waits",
       "mprotects giving write to a copy-on-write entry being wired that waited (fix protect-copies-wired)"},
      {&protect_wired_copies, "protect_wired_copies",
       "pages of user-wired copy-on-write entries given write, copied up or mapped writable (fix protect-copies-wired)"},
      {&fault_wired_entry_wires, "fault_wired_entry_wires",
       "pages a fault (not a wiring one) on a wired entry mapped unwired and wired (fix wired-fault-wires)"},
      {&copy_entry_placeholders, "copy_entry_placeholders",
       "placeholders of other faults a fork's copy of a wired entry passed over (fix copy-entry-skips-placeholder)"},
  };
  std::vector<VmstatRow> out;
  for (const Row& r : rows) out.push_back({r.name, r.what, r.c->load()});
  return out;
}

std::string Counters::format_vmstat() const {
  std::string out;
  char buf[160];
  for (const VmstatRow& r : vmstat()) {
    std::snprintf(buf, sizeof buf, "%12llu %-16s %s\n", static_cast<unsigned long long>(r.value), r.name, r.what);
    out += buf;
  }
  return out;
}

std::string Counters::format_retries() const {
  std::string out;
  char buf[120];
  for (std::size_t i = 0; i < static_cast<std::size_t>(Retry::kCount); ++i) {
    const auto n = retries[i].load();
    std::snprintf(buf, sizeof buf, "%12llu %-20s%s\n", static_cast<unsigned long long>(n),
                  retry_name(static_cast<Retry>(i)), n == 0 ? "  (never taken)" : "");
    out += buf;
  }
  return out;
}

}  // namespace faultline::vm
