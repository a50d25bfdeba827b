#include "core/locks.h"

namespace faultline::vm {

void declare_vm_lock_order() {
  locking::witness::declare_order({&map_lock_class, &vnode_lock_class, &device_lock_class, &object_lock_class,
                                   &page_queues_lock_class, &pmap_lock_class, &free_queue_lock_class});
}

}  // namespace faultline::vm
