// The VM's lock classes and their declared order (protocol.md):
//
//   vm map -> vnode -> device -> vm object (chain: top first, key = depth)
//          -> page queues -> free queue -> pmap
//
// Anything that needs the reverse (the pageout daemon holds the page queues
// and wants an object) must try-lock and skip on failure, as the 7.x daemon
// does.  declare_vm_lock_order() installs this order in the checker, so the
// first acquisition against it is reported even if it never deadlocks.
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
