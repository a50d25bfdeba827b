#include "core/counters.h"

#include <cstdio>

namespace faultline::vm {

const char* retry_name(Retry r) noexcept {
  switch (r) {
    case Retry::kCowLoan: return "cow_loan";
    case Retry::kBusyPage: return "busy_page";
    case Retry::kNoFreePage: return "no_free_page";
    case Retry::kPagerPageGone: return "pager_page_gone";
    case Retry::kMapTryLockFailed: return "map_trylock_failed";
    case Retry::kMapLookupFailed: return "map_lookup_failed";
    case Retry::kMapChanged: return "map_changed";
    case Retry::kCount: break;
  }
  return "?";
}

std::string Counters::format_vmstat() const {
  struct Row {
    const std::atomic<std::uint64_t>* c;
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
  };
  std::string out;
  char buf[160];
  for (const Row& r : rows) {
    std::snprintf(buf, sizeof buf, "%12llu %-16s %s\n",
                  static_cast<unsigned long long>(r.c->load(std::memory_order_relaxed)), r.name, r.what);
    out += buf;
  }
  return out;
}

std::string Counters::format_retries() const {
  std::string out;
  char buf[120];
  for (std::size_t i = 0; i < static_cast<std::size_t>(Retry::kCount); ++i) {
    const auto n = retries[i].load(std::memory_order_relaxed);
    std::snprintf(buf, sizeof buf, "%12llu %-20s%s\n", static_cast<unsigned long long>(n),
                  retry_name(static_cast<Retry>(i)), n == 0 ? "  (never taken)" : "");
    out += buf;
  }
  return out;
}

}  // namespace faultline::vm
