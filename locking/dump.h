// A dump of every actor's held locks and sleep, for deadlock reports (like
// DDB's "show alllocks" with "ps"'s wait channels):
//
//   actor 3 "worker-2": sleeping on 0x7f.. "vmpfw" @ core/fault.cpp:390
//     exclusive "vm map" (map 1) @ core/fault.cpp:233
//   actor 4 "pagedaemon": running
//     exclusive "page queues" @ core/pageout.cpp:88
//
// Actors that hold nothing and are not asleep are left out unless `all`.
#pragma once

#include <string>

namespace faultline::locking {

std::string dump_all_locks(bool all = false);

class Actor;
// One actor's entry of that dump ("" if it holds nothing, sleeps on nothing
// and `all` is false).  Call it from the actor itself, or while the actor
// cannot run (a deterministic scheduler's other workers).
std::string dump_actor_locks(const Actor& a, bool all = false);

}  // namespace faultline::locking
