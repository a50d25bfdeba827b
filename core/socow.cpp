#include "core/socow.h"

#include "core/fault.h"
#include "core/pmap.h"
#include "core/vm.h"

namespace faultline::vm {

using locking::MutexLock;

Page* socow_setup(Map& map, std::uint64_t va) {
  Vm& vm = map.vm;
  // vm_fault_quick(uva, VM_PROT_READ) (uipc_cow.c 116): touch the address,
  // faulting it in if need be.
  const std::uint64_t word = va & ~std::uint64_t{7};
  std::uint64_t v = 0;
  if (!pmap_access(map.pmap, word, false, &v) && vm_fault(map, word, kProtRead, kFaultNormal) != Kern::kSuccess)
    return nullptr;
  // pmap_extract_and_hold (122): the translation may be gone again.
  Page* m = pmap_extract_and_hold(map.pmap, va, kProtRead);
  if (m == nullptr) return nullptr;
  // 131-139: the page queues only.
  MutexLock pq(vm.page_queues);
  page_loan(m);  // vm_page_cowsetup + vm_page_wire
  page_unhold(m);
  vm.counters().bump(vm.counters().socow_loans);
  return m;
}

void socow_iodone(Page* m) {
  // uipc_cow.c 83-93: cowclear, unwire to the inactive queue, and free a
  // page its object has let go of (a cowfault replaced it).
  MutexLock pq(m->vm->page_queues);
  page_loan_end(m);
}

}  // namespace faultline::vm
