// The class order graph (as FreeBSD's WITNESS and Linux's lockdep keep).
//
// Whenever an actor holding a lock of class A blocks to acquire a lock of
// class B, the checker records "A before B" (with both acquisition sites) the
// first time it sees it, and keeps the transitive closure.  An acquisition
// that would close a cycle is a lock-order reversal: it is reported once per
// pair of classes, naming both classes, the site where the held lock was
// taken, the site of the new acquisition, and the path of first-seen sites
// that established the opposite order, even though no deadlock happened.
//
// Try-locks add no order (they cannot deadlock) but are held like any lock.
// Orders can also be declared up front, like WITNESS's order lists; a
// declaration that contradicts an observed order is reported.
//
// Cost with the checker on: per acquisition, one bit test per held lock; the
// graph's mutex is taken only the first time a pair of classes is seen.
#pragma once

#include <initializer_list>
#include <string>

#include "locking/checking.h"
#include "locking/lock_class.h"

namespace faultline::locking::witness {

// Declares each consecutive pair of `order` (outermost first) as required.
void declare_order(std::initializer_list<const LockClass*> order,
                   const Site& site = Site::current());

// True if the graph (declared or observed) orders a before b.
bool ordered_before(const LockClass& a, const LockClass& b);

// The direct edges with their first-seen sites, one per line:
//   "vm map" -> "vm object"   core/fault.cpp:300 -> core/fault.cpp:310
std::string format_graph();

// Forgets every observed and declared order and every reported pair (tests).
void reset();

}  // namespace faultline::locking::witness
