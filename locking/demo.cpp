// A tour of locking/: two threads take two classes in opposite orders (never
// deadlocking), a third sleeps on a channel; the checker reports the reversal,
// and the program prints the lock profile and a held-lock dump.
#include <cstdio>
#include <thread>

#include "locking/locking.h"

using namespace faultline::locking;

namespace {
LockClass map_class{"vm map", LockKind::kSx};
LockClass object_class{"vm object", LockKind::kMutex, SameClass::kOrdered};
LockClass queues_class{"page queues", LockKind::kMutex};
}  // namespace

int main() {
  set_mode(Mode::kReport);
  set_profiling(true);
  witness::declare_order({&map_class, &object_class, &queues_class});

  struct Object {
    Mutex mtx{object_class, "object 1"};
    bool done FL_GUARDED_BY(mtx) = false;
  } obj;
  SxLock map(map_class, "map 1");
  Mutex& object = obj.mtx;
  Mutex queues(queues_class);

  std::thread fault([&] {
    ActorScope a("fault");
    SxSharedLock m(map);
    MutexLock o(object);
    MutexLock q(queues);
  });
  fault.join();
  std::thread daemon([&] {
    ActorScope a("pagedaemon");
    MutexLock q(queues);
    MutexLock o(object);  // wrong: the 7.x daemon try-locks here
  });
  daemon.join();

  std::thread sleeper([&] {
    ActorScope a("waiter");
    MutexLock o(obj.mtx);
    while (!obj.done) msleep(&obj, obj.mtx, "demowt");
  });
  while (sleepers(&obj) == 0) std::this_thread::yield();
  std::printf("\n-- show alllocks --\n%s", dump_all_locks().c_str());
  {
    MutexLock o(obj.mtx);
    obj.done = true;
  }
  wakeup(&obj);
  sleeper.join();
  set_profiling(false);
  std::printf("\n-- lock profile by site --\n%s", format_profile(profile_by_site()).c_str());
  std::printf("\n-- class order --\n%s", witness::format_graph().c_str());
  return 0;
}
