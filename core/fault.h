// The page fault (FreeBSD vm_fault.c, the seed): vm_fault, wiring, and the
// copy of a wired entry at fork.  See fault.cpp for the path, branch by branch.
#pragma once

#include <cstdint>

#include "core/map.h"

namespace faultline::vm {

// fault_flags (VM_FAULT_*).
inline constexpr unsigned kFaultNormal = 0;
inline constexpr unsigned kFaultChangeWiring = 1;  // kernel wire / unwire
inline constexpr unsigned kFaultUserWire = 2;      // mlock
inline constexpr unsigned kFaultWireMask = kFaultChangeWiring | kFaultUserWire;
inline constexpr unsigned kFaultDirty = 8;         // dirty the page now

// vm_fault: makes the page at vaddr present in map's pmap with at least
// `fault_type` access, or says why not.  Requires: no locks held.
Kern vm_fault(Map& map, std::uint64_t vaddr, std::uint8_t fault_type, unsigned fault_flags);

// vm_fault_wire / vm_fault_unwire over [start, end).  Require: no locks held
// (the map's entries in the range are kept in place by the caller).
Kern vm_fault_wire(Map& map, std::uint64_t start, std::uint64_t end, bool user_wire);
void vm_fault_unwire(Map& map, std::uint64_t start, std::uint64_t end);

// vm_fault_copy_entry (seed L1089): at fork, a wired entry is copied page by
// page into a new object for the child.  Requires: the source map locked
// exclusively (its entry wired, so its pages are resident); the child map is
// not yet visible to anyone.
void vm_fault_copy_entry(Map& dst_map, MapEntry& dst_entry, MapEntry& src_entry);

// Later FreeBSD's vm_fault_copy_entry with the source entry the destination
// (an "upgrade"; fix protect-copies-wired): a user-wired copy-on-write entry
// that mprotect gives write has every page its chain holds for it copied
// into its first object (a new one if the entry still needs a copy), wired
// in place of the source page and mapped writable; the entry is no longer
// copy-on-write.  A page already in the first object is mapped writable.
// Requires: the map locked exclusively; the entry user-wired (its pages
// resident).
void vm_fault_copy_entry_upgrade(Map& map, MapEntry& entry);

}  // namespace faultline::vm
