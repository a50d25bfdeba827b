// Work stealing for fibers over K carrier threads, one pool per run.
//
// Why not boost::fibers::algo::work_stealing: in Boost 1.81 its registry of
// schedulers, the barrier its constructor waits on and the counter that
// numbers carriers are statics, set up once per process (a second run in the
// same process indexes past the registry), and with one carrier its steal
// loop draws a victim other than itself for ever (a fibers-mt run with
// --os-threads 1 spun at 100% CPU once its queue was empty: a CI hang).
// This pool is owned by the run: carriers register in slots of their own,
// one carrier works, and an idle carrier is woken when work is queued
// elsewhere instead of waiting for its own next timer.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>

#include <boost/fiber/context.hpp>

namespace faultline::stress {

class Rng;

class StealPool {
 public:
  // `carriers` threads will join; `seed` draws the victims they steal from.
  StealPool(std::uint32_t carriers, std::uint64_t seed);
  StealPool(const StealPool&) = delete;
  StealPool& operator=(const StealPool&) = delete;

  // Makes this pool the calling thread's fiber scheduler, as carrier `index`
  // (each of 0 .. carriers-1 exactly once).  The pool must outlive the thread.
  void join(std::uint32_t index);

  std::uint32_t carriers() const { return n_; }
  // Fibers a carrier took from another's queue.
  std::uint64_t steals() const { return steals_.load(std::memory_order_relaxed); }

 private:
  class Algo;
  struct Slot {
    std::mutex mtx;
    std::deque<boost::fibers::context*> ready;  // stealable: any carrier may run these
    std::condition_variable cv;
    bool wake = false;  // under mtx: new work somewhere, or a remote wakeup
    bool idle = false;  // under mtx: the carrier waits in suspend_until
  };
  boost::fibers::context* steal_for(std::uint32_t thief, Rng& rng);
  void wake_an_idle_carrier(std::uint32_t except);

  const std::uint32_t n_;
  const std::uint64_t seed_;
  std::unique_ptr<Slot[]> slots_;
  std::atomic<std::uint32_t> idle_{0};
  std::atomic<std::uint64_t> steals_{0};
};

}  // namespace faultline::stress
