#include "stress/exec/steal_pool.h"

#include <algorithm>
#include <chrono>

#include <boost/fiber/algo/algorithm.hpp>
#include <boost/fiber/operations.hpp>
#include <boost/fiber/type.hpp>

#include "stress/rng.h"

namespace faultline::stress {

namespace {
// An idle carrier looks for work to steal at least this often, in case the
// wakeup of wake_an_idle_carrier crossed its way to sleep.
constexpr auto kIdlePoll = std::chrono::milliseconds(1);

bool pinned(boost::fibers::context* ctx) { return ctx->is_context(boost::fibers::type::pinned_context); }
}  // namespace

// One carrier's scheduling algorithm.  Boost calls awakened, pick_next,
// has_ready_fibers and suspend_until on the carrier's own thread, notify from
// any thread.  A fiber queued here is detached from this carrier's
// scheduler, so whichever carrier pops it attaches it and runs it.  Pinned
// contexts (a thread's main fiber, the dispatcher) stay on their thread.
class StealPool::Algo final : public boost::fibers::algo::algorithm {
 public:
  Algo(StealPool& pool, std::uint32_t index)
      : pool_(pool), index_(index), slot_(pool.slots_[index]), rng_(Rng::stream(pool.seed_, 3'000'000 + index)) {}

  void awakened(boost::fibers::context* ctx) noexcept override {
    if (pinned(ctx)) {
      pinned_.push_back(ctx);
      return;
    }
    ctx->detach();
    {
      std::lock_guard<std::mutex> l(slot_.mtx);
      slot_.ready.push_back(ctx);
    }
    if (pool_.idle_.load(std::memory_order_acquire) != 0) pool_.wake_an_idle_carrier(index_);
  }

  boost::fibers::context* pick_next() noexcept override {
    boost::fibers::context* ctx = nullptr;
    if (!pinned_.empty()) {
      ctx = pinned_.front();
      pinned_.pop_front();
      return ctx;
    }
    {
      std::lock_guard<std::mutex> l(slot_.mtx);
      if (!slot_.ready.empty()) {
        ctx = slot_.ready.front();
        slot_.ready.pop_front();
      }
    }
    if (ctx == nullptr) ctx = pool_.steal_for(index_, rng_);
    if (ctx != nullptr) boost::fibers::context::active()->attach(ctx);
    return ctx;
  }

  bool has_ready_fibers() const noexcept override {
    if (!pinned_.empty()) return true;
    std::lock_guard<std::mutex> l(slot_.mtx);
    return !slot_.ready.empty();
  }

  void suspend_until(const std::chrono::steady_clock::time_point& until) noexcept override {
    const auto deadline = std::min(until, std::chrono::steady_clock::now() + kIdlePoll);
    std::unique_lock<std::mutex> l(slot_.mtx);
    if (!slot_.ready.empty()) return;
    slot_.idle = true;
    pool_.idle_.fetch_add(1, std::memory_order_acq_rel);
    slot_.cv.wait_until(l, deadline, [this] { return slot_.wake; });
    slot_.wake = false;
    slot_.idle = false;
    pool_.idle_.fetch_sub(1, std::memory_order_acq_rel);
  }

  void notify() noexcept override {
    {
      std::lock_guard<std::mutex> l(slot_.mtx);
      slot_.wake = true;
    }
    slot_.cv.notify_one();
  }

 private:
  StealPool& pool_;
  const std::uint32_t index_;
  Slot& slot_;
  Rng rng_;
  std::deque<boost::fibers::context*> pinned_;  // this thread only
};

StealPool::StealPool(std::uint32_t carriers, std::uint64_t seed)
    : n_(std::max<std::uint32_t>(carriers, 1)), seed_(seed), slots_(std::make_unique<Slot[]>(n_)) {}

void StealPool::join(std::uint32_t index) {
  boost::fibers::use_scheduling_algorithm<Algo>(*this, index);
}

// Takes the newest stealable fiber of another carrier (the owner runs its
// queue oldest first), trying each other carrier once from a seeded start.
boost::fibers::context* StealPool::steal_for(std::uint32_t thief, Rng& rng) {
  if (n_ == 1) return nullptr;
  const auto start = static_cast<std::uint32_t>(rng.below(n_));
  for (std::uint32_t i = 0; i < n_; ++i) {
    const std::uint32_t victim = (start + i) % n_;
    if (victim == thief) continue;
    Slot& s = slots_[victim];
    std::lock_guard<std::mutex> l(s.mtx);
    if (s.ready.empty()) continue;
    boost::fibers::context* ctx = s.ready.back();
    s.ready.pop_back();
    steals_.fetch_add(1, std::memory_order_relaxed);
    return ctx;
  }
  return nullptr;
}

void StealPool::wake_an_idle_carrier(std::uint32_t except) {
  for (std::uint32_t i = 0; i < n_; ++i) {
    if (i == except) continue;
    Slot& s = slots_[i];
    std::unique_lock<std::mutex> l(s.mtx);
    if (!s.idle || s.wake) continue;
    s.wake = true;
    l.unlock();
    s.cv.notify_one();
    return;
  }
}

}  // namespace faultline::stress
