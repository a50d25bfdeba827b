// The structural invariant checker, for a quiescent VM (no fault, pageout or
// other operation in progress: workers joined or parked at a barrier).
//
// It checks (harness.md):
//  - every resident page is in exactly one object at one pindex, and the
//    object's index agrees;
//  - queue membership matches each page's queue field and the counts; wired
//    pages are on no queue and the wired count matches;
//  - nothing busy, no paging in progress, no actor asleep (except on one of
//    `parking`: where a harness parks its workers for a check during a run);
//  - every pmap translation points at a fully valid page of the object chain
//    of the entry covering it, at the right pindex, with no more permission
//    than the entry allows, writable only if the page is in the entry's top
//    object (and the entry no longer needs a copy); pv lists match the pmaps.
//    One exception, the seed's own (L810-820): a read-only translation of a
//    backing page under a copy holding the same bytes, which a write fault
//    that copied and then failed its re-lookup leaves behind;
//  - reference and shadow counts match the references that exist (map
//    entries, shadows, vnodes, devices);
//  - free + allocated = all pages.
// Each finding is one line naming what is wrong and where.
#pragma once

#include <string>
#include <vector>

namespace faultline::vm {

class Vm;
class Map;
class Vnode;
class Device;

std::vector<std::string> check_invariants(Vm& vm, const std::vector<Map*>& maps,
                                          const std::vector<Vnode*>& vnodes = {},
                                          const std::vector<Device*>& devices = {},
                                          const std::vector<const void*>& parking = {});

}  // namespace faultline::vm

namespace faultline::vm {

// A failure report's view of one address: the map entry, its flags, the
// pmap translation, and for each object of the shadow chain whether it has a
// resident page or a swap copy at that offset, their state, and the 8-byte
// word at `va` in each.  Takes the map lock shared and the chain's object
// locks in order (the caller holds none), unless `take_locks` is false: then
// it reads without them, which is safe only when nothing else runs (a
// deterministic run, between schedule points) and never a schedule point.
std::string describe_address(Map& map, std::uint64_t va, bool take_locks = true);

}  // namespace faultline::vm
