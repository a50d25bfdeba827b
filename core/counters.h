// Event counters with FreeBSD's names (vmmeter's cnt.v_*), plus one counter
// per retry reason of vm_fault, so a run prints a `vmstat -s`-like table and a
// retry-coverage table.  Relaxed atomics: counts, not synchronisation.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

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
  kCount
};
const char* retry_name(Retry r) noexcept;

struct Counters {
  std::atomic<std::uint64_t> v_vm_faults{0};   // faults entered
  std::atomic<std::uint64_t> v_intrans{0};     // faults that waited on a busy page
  std::atomic<std::uint64_t> v_zfod{0};        // zero-fill faults
  std::atomic<std::uint64_t> v_ozfod{0};       // ... satisfied by a prezeroed page
  std::atomic<std::uint64_t> v_cow_faults{0};  // copy-on-write faults
  std::atomic<std::uint64_t> v_cow_optim{0};   // ... resolved by renaming the page
  std::atomic<std::uint64_t> v_majflt{0};      // faults that did pager I/O
  std::atomic<std::uint64_t> v_minflt{0};      // faults that did not
  std::atomic<std::uint64_t> v_pageins{0};     // pager getpages calls
  std::atomic<std::uint64_t> v_pgpgin{0};      // pages read in
  std::atomic<std::uint64_t> v_pageouts{0};    // pager putpages calls
  std::atomic<std::uint64_t> v_pgpgout{0};     // pages written out
  std::atomic<std::uint64_t> v_reactivated{0}; // pages reactivated by the daemon
  std::atomic<std::uint64_t> v_pdwakeups{0};   // pageout daemon wakeups
  std::atomic<std::uint64_t> v_pdpages{0};     // pages analysed by the daemon
  std::atomic<std::uint64_t> v_tcached{0};     // pages moved to the cache queue
  std::atomic<std::uint64_t> v_tfree{0};       // pages freed
  std::atomic<std::uint64_t> v_vmwait{0};      // VM_WAIT sleeps
  std::atomic<std::uint64_t> v_fault_errors{0};// faults that returned an error
  std::atomic<std::uint64_t> object_collapses{0};  // backing objects merged into their shadow
  std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(Retry::kCount)> retries{};

  void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
    c.fetch_add(n, std::memory_order_relaxed);
  }
  void retry(Retry r) noexcept { bump(retries[static_cast<std::size_t>(r)]); }
  std::uint64_t retries_of(Retry r) const noexcept {
    return retries[static_cast<std::size_t>(r)].load(std::memory_order_relaxed);
  }

  // "  1234 v_vm_faults  faults entered" lines, like vmstat -s.
  std::string format_vmstat() const;
  // One line per retry reason with its count; a zero is a coverage gap.
  std::string format_retries() const;
};

}  // namespace faultline::vm
