#include "stress/exec/quiesce.h"

namespace faultline::stress {

void QuiesceGate::enter() {
  for (;;) {
    active_.fetch_add(1);  // seq_cst: ordered before the read of closed_ (see the header)
    if (!closed_.load()) return;
    // Closed: back out (waking the closer if it waits for the last one
    // inside), and park until it opens.
    leave();
    locking::MutexLock l(mtx_);
    while (closed_.load()) locking::msleep(&closed_, mtx_, "quiesce");
  }
}

void QuiesceGate::leave() {
  if (active_.fetch_sub(1) == 1 && closed_.load()) {
    // The closer reads active_ under mtx_ before it sleeps, so taking mtx_
    // here orders this wakeup after it is asleep or after its read.
    locking::MutexLock l(mtx_);
    locking::wakeup(&active_);
  }
}

void QuiesceGate::close(const std::function<void()>& nudge) {
  closed_.store(true);  // seq_cst: ordered before the reads of active_
  if (nudge) nudge();
  locking::MutexLock l(mtx_);
  while (active_.load() != 0) locking::msleep(&active_, mtx_, "drain");
}

void QuiesceGate::open() {
  locking::MutexLock l(mtx_);
  closed_.store(false);
  locking::wakeup(&closed_);
}

}  // namespace faultline::stress
