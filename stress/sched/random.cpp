// Uniform random: at each choice, every runnable worker (the one at the
// schedule point included) equally likely.  Draws from the run seed's
// stream 1, and only when there is a choice.
#include "stress/sched/det_rng.h"
#include "stress/sched/policy.h"

namespace faultline::stress {
namespace {

class RandomPolicy final : public SchedPolicy {
 public:
  explicit RandomPolicy(std::uint64_t seed) : rng_(seed, 1) {}
  std::size_t choose(const Choice& c) override { return static_cast<std::size_t>(rng_.below(c.runnable.size())); }

 private:
  DetRng rng_;
};

}  // namespace

std::unique_ptr<SchedPolicy> make_random_policy(std::uint64_t seed) { return std::make_unique<RandomPolicy>(seed); }

}  // namespace faultline::stress
