// faultline's lock-protocol library, in one include.
//
// Read in this order to learn it:
//   lock_class.h   classes: what the order checker reasons about
//   mutex.h        Mutex, MutexLock: plain non-sleepable locks
//   sx.h           SxLock and its guards: sleepable shared/exclusive locks
//   sleep.h        msleep / wakeup on channels, with interlocks
//   witness.h      the class order graph; declared orders
//   checking.h     modes (off, report, abort) and reports
//   actor.h        threads and fibers as lock holders
//   hooks.h        schedule points for the harness
//   kassert.h      FL_KASSERT: the model's assertions, independent of NDEBUG
//   profile.h      per-class and per-site lock profiling
//   dump.h         every held lock and sleeper, for deadlock reports
//   backend.h      std, futex, TBB and Boost.Fiber backends
#pragma once

#include "locking/actor.h"
#include "locking/backend.h"
#include "locking/checking.h"
#include "locking/dump.h"
#include "locking/hooks.h"
#include "locking/kassert.h"
#include "locking/lock_class.h"
#include "locking/mutex.h"
#include "locking/profile.h"
#include "locking/sleep.h"
#include "locking/sx.h"
#include "locking/thread_annotations.h"
#include "locking/witness.h"
