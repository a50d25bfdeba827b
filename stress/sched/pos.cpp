// POS, partial order sampling, after Yuan, Yang, Gu, "Partial Order Aware
// Concurrency Sampling", CAV 2018, in its basic form as implemented here:
// every event gets a random priority; the enabled event with the highest
// runs; after it ran, the events that race with it get fresh random
// priorities.  Sampling so, schedules that differ only in the order of
// independent events are not drawn over and over, which is what makes plain
// random walk slow on long runs.  (Fray, OOPSLA 2025, describes a variant
// that instead resamples every ready priority with probability 1/2.)
//
// Here an event is what a worker is about to do at its schedule point (the
// PointInfo it reached: a lock, try-lock, unlock, sleep, wakeup, I/O), and two
// events race when they name the same object (lock, channel or page): on
// locks every operation conflicts.  A worker that blocked keeps the event it
// blocked on.  The chosen worker's next event gets a fresh priority too.
// A choice scans the runnable workers: O(n), meant for the tens of workers of
// a run, not for 100,000-fiber benchmarks.
#include <vector>

#include "stress/sched/det_rng.h"
#include "stress/sched/policy.h"

namespace faultline::stress {
namespace {

class PosPolicy final : public SchedPolicy {
 public:
  explicit PosPolicy(std::uint64_t seed) : rng_(seed, 3) {}

  void spawned(int id, std::string_view /*name*/) override {
    const auto i = static_cast<std::size_t>(id);
    if (i >= prio_.size()) {
      prio_.resize(i + 1, 0);
      pending_.resize(i + 1, nullptr);
    }
    prio_[i] = rng_.next();
  }
  void at_point(int id, std::uint64_t, const locking::PointInfo& info) override {
    pending_[static_cast<std::size_t>(id)] = info.object;
  }
  std::size_t choose(const Choice& c) override {
    std::size_t best = 0;
    for (std::size_t i = 1; i < c.runnable.size(); ++i) {
      const auto a = static_cast<std::size_t>(c.runnable[i]);
      const auto b = static_cast<std::size_t>(c.runnable[best]);
      if (prio_[a] > prio_[b] || (prio_[a] == prio_[b] && c.runnable[i] < c.runnable[best])) best = i;
    }
    // The chosen event runs: the events racing with it are sampled again.
    const auto w = static_cast<std::size_t>(c.runnable[best]);
    if (const void* obj = pending_[w]; obj != nullptr)
      for (int other : c.runnable)
        if (other != c.runnable[best] && pending_[static_cast<std::size_t>(other)] == obj)
          prio_[static_cast<std::size_t>(other)] = rng_.next();
    prio_[w] = rng_.next();
    return best;
  }

 private:
  DetRng rng_;
  std::vector<std::uint64_t> prio_;
  std::vector<const void*> pending_;  // the object of the event each worker is about to run
};

}  // namespace

std::unique_ptr<SchedPolicy> make_pos_policy(std::uint64_t seed) { return std::make_unique<PosPolicy>(seed); }

}  // namespace faultline::stress
