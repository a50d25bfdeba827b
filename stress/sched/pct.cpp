// PCT, probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi,
// Nagarakatte, ASPLOS 2010).  Every worker gets a distinct random priority
// >= d when it is spawned (workers spawned later too); d-1 change points are
// drawn uniformly in [1, k] before the run; when the step count reaches the
// i-th (in draw order) the running worker's priority drops to d-i; the
// highest-priority runnable worker always runs.  A run finds any given bug of
// depth d with probability at least 1/(n k^(d-1)).
//
// Departure from the paper (the starvation guard): a worker that passes
// kPctStarvationSteps consecutive steps without being switched out gets a
// priority below every other worker's.  The paper assumes threads that spin
// do so by blocking; ours may spin on a try-lock or a retry loop waiting for
// a lower-priority worker, and strict priorities would then never let that
// worker run.
//
// The ready workers are kept ordered by priority (only the running worker's
// priority ever changes, and it is not among them), so a choice costs
// O(log n) even with 100,000 fibers.
#include <algorithm>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "stress/sched/det_rng.h"
#include "stress/sched/policy.h"

namespace faultline::stress {
namespace {

class PctPolicy final : public SchedPolicy {
 public:
  PctPolicy(std::uint64_t seed, int depth, std::uint64_t k) : depth_(depth), rng_(seed, 2) {
    if (depth < 1) throw std::invalid_argument("PCT depth must be at least 1, not " + std::to_string(depth));
    if (depth > 1 && k == 0) throw std::invalid_argument("PCT expected steps must be positive");
    const auto count = static_cast<std::size_t>(std::min<std::uint64_t>(static_cast<std::uint64_t>(depth - 1), k));
    while (changes_.size() < count) {
      const std::uint64_t at = 1 + rng_.below(k);
      const bool taken =
          std::any_of(changes_.begin(), changes_.end(), [at](const auto& c) { return c.first == at; });
      // The i-th point drawn (from 1) lowers to d - i, as in the paper.
      if (!taken) changes_.emplace_back(at, depth - 1 - static_cast<std::int64_t>(changes_.size()));
    }
    std::sort(changes_.begin(), changes_.end());
  }

  void spawned(int id, std::string_view /*name*/) override {
    if (static_cast<std::size_t>(id) >= prio_.size()) {
      prio_.resize(static_cast<std::size_t>(id) + 1, 0);
      run_steps_.resize(static_cast<std::size_t>(id) + 1, 0);
    }
    // Random, and above every change-point priority (those are 1 .. d-1).
    prio_[static_cast<std::size_t>(id)] = depth_ + static_cast<std::int64_t>(rng_.next() >> 2);
  }
  void made_ready(int id) override { ready_.insert({prio_[static_cast<std::size_t>(id)], id}); }
  void left_ready(int id) override { ready_.erase({prio_[static_cast<std::size_t>(id)], id}); }
  void switched_in(int id) override { run_steps_[static_cast<std::size_t>(id)] = 0; }
  void at_point(int id, std::uint64_t step, const locking::PointInfo&) override {
    std::int64_t& p = prio_[static_cast<std::size_t>(id)];
    while (next_change_ < changes_.size() && changes_[next_change_].first <= step) p = changes_[next_change_++].second;
    if (++run_steps_[static_cast<std::size_t>(id)] >= kPctStarvationSteps) {
      p = --lowest_;
      run_steps_[static_cast<std::size_t>(id)] = 0;
    }
  }
  std::size_t choose(const Choice& c) override {
    const int best = ready_.begin()->second;
    if (c.current >= 0 && Higher{}({prio_[static_cast<std::size_t>(c.current)], c.current}, *ready_.begin()))
      return c.runnable.size() - 1;
    return c.slot[static_cast<std::size_t>(best)];
  }

 private:
  // Higher priority first; equal priorities (initial draws collide 1 in
  // 2^62) broken by id.
  struct Higher {
    bool operator()(const std::pair<std::int64_t, int>& a, const std::pair<std::int64_t, int>& b) const noexcept {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    }
  };
  const int depth_;
  DetRng rng_;
  std::vector<std::pair<std::uint64_t, std::int64_t>> changes_;  // (step, new priority), by step
  std::size_t next_change_ = 0;
  std::int64_t lowest_ = 1;  // starvation demotions go below this, and below 1 .. d-1
  std::vector<std::int64_t> prio_;
  std::vector<std::uint64_t> run_steps_;  // steps since it was last switched in
  std::set<std::pair<std::int64_t, int>, Higher> ready_;
};

}  // namespace

std::unique_ptr<SchedPolicy> make_pct_policy(std::uint64_t seed, int depth, std::uint64_t expected_steps) {
  return std::make_unique<PctPolicy>(seed, depth, expected_steps);
}

}  // namespace faultline::stress
