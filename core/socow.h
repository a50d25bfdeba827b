// Zero-copy send's page loans (FreeBSD 7.0 uipc_cow.c: socow_setup and
// socow_iodone, over vm_page_cowsetup / vm_page_cowclear).
//
// The loan takes only the page queues: no object lock, no check that the
// page is idle or valid (7.0 checks neither).  The page is found through
// the process's translation (vm_fault_quick, then pmap_extract_and_hold),
// held while the loan is set up, then lent: write-protected everywhere,
// counted in `cow` and wired.  A later write fault on it copies it for the
// process (vm_page_cowfault, seed L343-350) and the socket keeps the
// original, which socow_iodone frees once its object has let go of it.
#pragma once

#include <cstdint>

#include "core/map.h"
#include "core/page.h"

namespace faultline::vm {

// socow_setup for the page at user address va of `map`: returns the lent
// page, or nullptr when the address cannot be read (the send then copies,
// as 7.0's does).  Requires: no locks held.
Page* socow_setup(Map& map, std::uint64_t va);
// socow_iodone: the send is done with m.  Requires: no locks held.
void socow_iodone(Page* m);

}  // namespace faultline::vm
