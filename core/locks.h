// The VM's lock classes and their declared order (protocol.md):
//
//   vm map -> vnode -> device -> vm object (chain: top first, key = age)
//          -> page queues -> pmap -> free queue
//
// (7.0's pmap_enter allocates page-table pages holding the page queues and
// the pmap, and the free queue mutex is a leaf lock.)
//
// Anything that needs the reverse must try-lock, and on failure let go of what
// it holds before it blocks: the pageout daemon holds the page queues and
// wants a page's object, and 7.0's vm_pageout_fallback_object_lock drops the
// page queues, waits for the object lock, retakes the queues and revalidates
// the page (pageout.cpp); vm_object_deallocate, going up to a shadow, pauses
// and starts over.  declare_vm_lock_order() installs this order in the
// checker, so the first acquisition against it is reported even if it never
// deadlocks.
#pragma once

#include "locking/locking.h"

namespace faultline::vm {

inline locking::LockClass map_lock_class{"vm map", locking::LockKind::kSx};
inline locking::LockClass vnode_lock_class{"vnode", locking::LockKind::kSx};
inline locking::LockClass device_lock_class{"device", locking::LockKind::kMutex};
inline locking::LockClass object_lock_class{"vm object", locking::LockKind::kMutex,
                                            locking::SameClass::kOrdered};
inline locking::LockClass page_queues_lock_class{"page queues", locking::LockKind::kMutex};
inline locking::LockClass free_queue_lock_class{"free queue", locking::LockKind::kMutex};
inline locking::LockClass pmap_lock_class{"pmap", locking::LockKind::kMutex};
// Interlock for sleeping on a map entry in transition (vm_map_unlock_and_wait).
inline locking::LockClass map_sleep_lock_class{"vm map sleep", locking::LockKind::kMutex};

// Declares the order above to the lock-order checker (idempotent).
void declare_vm_lock_order();

}  // namespace faultline::vm
