#include "stress/exec/executor.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include <condition_variable>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>

#include <boost/fiber/all.hpp>
#include <fmt/format.h>

#include "locking/locking.h"
#include "stress/sched/det_sched.h"
#include "stress/rng.h"
#include "stress/exec/steal_pool.h"
#include "stress/trace.h"

namespace faultline::stress {

namespace {

// ---- threads ----

// Seeded perturbation at schedule points (as rr's chaos mode does): with
// probability perturb_ppm a thread yields, or now and then sleeps a few
// microseconds, so that the windows between a check and its use are hit.
struct Perturb {
  std::uint64_t seed;
  std::uint32_t ppm;
  std::atomic<std::uint64_t> next_stream{0};
};

void perturb_hook(const locking::PointInfo& info, void* ctx) {
  auto* p = static_cast<Perturb*>(ctx);
  // Each thread draws from its own stream, numbered in the order threads
  // first reach a schedule point (OS scheduling decides that order: a
  // threads run is seeded, not replayable).
  thread_local const Perturb* owner = nullptr;
  thread_local Rng mine(0);
  if (owner != p) {
    mine = Rng::stream(p->seed, 1'000'000 + p->next_stream.fetch_add(1));
    owner = p;
  }
  Rng* rng = &mine;
  if ((info.point == locking::Point::kIo || info.point == locking::Point::kPause) && info.arg != 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(info.arg));
    return;
  }
  if (!rng->chance(p->ppm)) return;
  if (rng->below(8) != 0)
    std::this_thread::yield();
  else
    std::this_thread::sleep_for(std::chrono::microseconds(1 + rng->below(50)));
}

class ThreadsExecutor final : public Executor {
 public:
  explicit ThreadsExecutor(const Config& cfg) : perturb_{cfg.schedule_seed(), cfg.perturb_ppm, {}} {}

  bool spawn(std::string name, std::function<void()> body, std::string* error) override {
    std::lock_guard<std::mutex> l(mtx_);
    try {
      threads_.emplace_back([name = std::move(name), body = std::move(body)] {
        locking::ActorScope me(name);
        body();
      });
    } catch (const std::system_error& e) {
      *error = fmt::format("the OS refused a new thread after {} were created: {}", threads_.size(), e.what());
      return false;
    }
    return true;
  }

  RunEnd run() override {
    install_point_hook(&perturb_hook, &perturb_);
    // Bodies may add threads while we join: join in creation order until
    // none is left.
    for (std::size_t i = 0;; ++i) {
      std::thread t;
      {
        std::lock_guard<std::mutex> l(mtx_);
        if (i >= threads_.size()) break;
        t = std::move(threads_[i]);
      }
      t.join();
    }
    remove_point_hook();
    return RunEnd::kDone;
  }

  void pause_us(std::uint32_t us) override { std::this_thread::sleep_for(std::chrono::microseconds(us)); }

 private:
  Perturb perturb_;
  std::mutex mtx_;
  std::vector<std::thread> threads_;
};

// ---- fibers over K OS threads ----

// Fibers are not preempted.  A fiber that retries in a loop (a fault that
// finds the map changed, a trylock that fails, a wait for memory that does
// not sleep) would keep its carrier thread, and the fibers woken onto that
// carrier's queue, the ones that would end its loop, would run only if
// another carrier stole them (with one carrier, never).  So, as a clock
// interrupt would, a carrier yields the running fiber at every
// kQuantum-th schedule point, and with probability perturb_ppm at any one
// (seeded per carrier, like the threads' streams: not replayable).  A
// pager's simulated I/O sleeps the fiber for its latency.
constexpr std::uint32_t kQuantum = 64;
thread_local bool t_carrier = false;

void fiber_point_hook(const locking::PointInfo& info, void* ctx) {
  if (!t_carrier) return;
  auto* p = static_cast<Perturb*>(ctx);
  thread_local const Perturb* owner = nullptr;
  thread_local Rng mine(0);
  thread_local std::uint32_t points = 0;
  if (owner != p) {
    mine = Rng::stream(p->seed, 2'000'000 + p->next_stream.fetch_add(1));
    owner = p;
    points = 0;
  }
  if ((info.point == locking::Point::kIo || info.point == locking::Point::kPause) && info.arg != 0) {
    boost::this_fiber::sleep_for(std::chrono::microseconds(info.arg));
    return;
  }
  if (++points % kQuantum == 0 || mine.chance(p->ppm)) boost::this_fiber::yield();
}

class FibersMtExecutor final : public Executor {
 public:
  explicit FibersMtExecutor(const Config& cfg)
      : k_(static_cast<std::uint32_t>(cfg.os_threads)), perturb_{cfg.schedule_seed(), cfg.perturb_ppm, {}}, pool_(k_, cfg.schedule_seed()) {}

  bool spawn(std::string name, std::function<void()> body, std::string* error) override {
    live_.fetch_add(1);
    auto wrapped = [this, name = std::move(name), body = std::move(body)] {
      {
        locking::ActorScope me(name);
        body();
      }
      if (live_.fetch_sub(1) == 1) {
        std::unique_lock<boost::fibers::mutex> l(done_mtx_);
        done_ = true;
        done_cv_.notify_all();
      }
    };
    if (!running_.load()) {
      pending_.push_back(std::move(wrapped));
      return true;
    }
    try {
      boost::fibers::fiber(std::allocator_arg, boost::fibers::fixedsize_stack(256 * 1024), std::move(wrapped))
          .detach();
    } catch (const std::exception& e) {
      live_.fetch_sub(1);
      *error = fmt::format("could not create a fiber: {}", e.what());
      return false;
    }
    return true;
  }

  RunEnd run() override {
    // Boost.Fiber's scheduling algorithm is per thread and set once: the
    // run gets threads of its own, carriers 1 .. k-1 and `main` (carrier 0,
    // which starts the fibers spawned before the run).
    auto carrier = [this](std::uint32_t index) {
      t_carrier = true;
      pool_.join(index);
      std::unique_lock<boost::fibers::mutex> l(done_mtx_);
      done_cv_.wait(l, [this] { return done_; });
    };
    install_point_hook(&fiber_point_hook, &perturb_);
    std::thread main([&] {
      t_carrier = true;
      pool_.join(0);
      running_.store(true);
      if (pending_.empty()) done_ = true;
      for (auto& b : pending_)
        boost::fibers::fiber(std::allocator_arg, boost::fibers::fixedsize_stack(256 * 1024), std::move(b)).detach();
      pending_.clear();
      std::unique_lock<boost::fibers::mutex> l(done_mtx_);
      done_cv_.wait(l, [this] { return done_; });
    });
    std::vector<std::thread> carriers;
    for (std::uint32_t i = 1; i < k_; ++i) carriers.emplace_back(carrier, i);
    main.join();
    for (auto& t : carriers) t.join();
    remove_point_hook();
    return RunEnd::kDone;
  }

  void pause_us(std::uint32_t us) override { boost::this_fiber::sleep_for(std::chrono::microseconds(us)); }

 private:
  const std::uint32_t k_;
  Perturb perturb_;
  StealPool pool_;
  std::atomic<bool> running_{false};
  std::vector<std::function<void()>> pending_;
  std::atomic<int> live_{0};
  boost::fibers::mutex done_mtx_;
  boost::fibers::condition_variable done_cv_;
  bool done_ = false;
};

// ---- deterministic fibers ----

class DetExecutor final : public Executor {
 public:
  explicit DetExecutor(const Config& cfg) : record_fd_(open_record(cfg)), sched_(options(cfg)) {}
  ~DetExecutor() override {
    if (record_fd_ >= 0) ::close(record_fd_);
  }
  DetExecutor(const DetExecutor&) = delete;
  DetExecutor& operator=(const DetExecutor&) = delete;

  bool spawn(std::string name, std::function<void()> body, std::string* error) override {
    try {
      sched_.spawn(std::move(name), std::move(body));
    } catch (const std::exception& e) {
      *error = fmt::format("could not create a fiber: {}", e.what());
      return false;
    }
    return true;
  }

  RunEnd run() override {
    switch (sched_.run()) {
      case DetOutcome::kDone: return RunEnd::kDone;
      case DetOutcome::kDeadlock: return RunEnd::kDeadlock;
      case DetOutcome::kStepLimit: return RunEnd::kStepLimit;
      case DetOutcome::kStall: return RunEnd::kStall;
    }
    return RunEnd::kDone;
  }

  void watch_progress(const std::atomic<std::uint64_t>* done) override {
    progress_.store(done, std::memory_order_relaxed);
  }

  // Virtual time: the scheduler runs others until it has passed.
  void pause_us(std::uint32_t us) override { locking::schedule_point(locking::Point::kIo, this, us); }

  std::uint64_t steps() const override { return sched_.steps(); }
  std::uint64_t digest() const override { return sched_.digest(); }
  std::vector<std::string> unfinished() const override { return sched_.unfinished_workers(); }
  std::vector<std::string> last_events(std::size_t n) const override {
    std::vector<std::string> out;
    for (const SchedEvent& e : sched_.last_events(n))
      out.push_back(fmt::format("step {} worker {} ({}) {} (t={} us)", e.step, e.worker, sched_.worker_name(e.worker),
                                locking::point_name(e.point), e.vtime_ns / 1000));
    return out;
  }

 private:
  static int open_record(const Config& cfg) {
    if (cfg.record_script_path.empty()) return -1;
    return ::open(cfg.record_script_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  }

  // --record-script: each choice that differs from the default goes out at
  // once (unbuffered), so a run that dies of a panic or is stopped for a
  // deadlock has written all of its choices.
  void record(const Choice& c, std::size_t chosen) {
    if (chosen == default_choice(c)) return;
    const std::string e = fmt::format("{}{}:{}", recorded_++ == 0 ? "" : ",", format_place(place_of(c)),
                                      sched_.worker_name(c.runnable[chosen]));
    if (::write(record_fd_, e.data(), e.size()) != static_cast<ssize_t>(e.size())) record_fd_ = -1;
  }

  // Where choice `c` is, with the worker's name.
  Place place_of(const Choice& c) const {
    Place p;
    if (c.key.by >= 0) p.by = sched_.worker_name(c.key.by);
    p.point = c.key.point;
    p.after = c.key.after;
    return p;
  }

  // --explain-decision: the two workers of one choice, as they stand.
  void explain(const Choice& c, std::size_t chosen) const {
    const std::size_t def = default_choice(c);
    auto who = [this](int id) { return fmt::format("{} (worker {})", sched_.worker_name(id), id); };
    std::string head = fmt::format("decision {} (choice {} of the run, after step {}): the schedule ran {}",
                                   format_place(place_of(c)), c.decision, c.step, who(c.runnable[chosen]));
    if (chosen == def)
      head += ", the default choice";
    else if (c.current >= 0)
      head += fmt::format(", preempting {} (the default: run on)", who(c.current));
    else
      head += fmt::format(" rather than {} (the default: the lowest id)", who(c.runnable[def]));
    // describe_worker's lines after the first (the locks held) go under it.
    auto indented = [](std::string d) {
      for (std::size_t at = d.find("\n  "); at != std::string::npos; at = d.find("\n  ", at + 13))
        d.insert(at + 1, "            ");
      return d;
    };
    std::printf("%s\n  ran:        %s", head.c_str(), indented(sched_.describe_worker(c.runnable[chosen])).c_str());
    if (chosen != def)
      std::printf("  instead of: %s", indented(sched_.describe_worker(c.runnable[def])).c_str());
    std::fflush(stdout);
  }

  DetOptions options(const Config& cfg) {
    DetOptions o;
    o.seed = cfg.schedule_seed();
    switch (cfg.sched) {
      case SchedKind::kRandom: o.policy = Policy::kRandom; break;
      case SchedKind::kPct: o.policy = Policy::kPct; break;
      case SchedKind::kPos: o.policy = Policy::kPos; break;
      case SchedKind::kScript:
        o.policy = Policy::kScript;
        parse_script(cfg.script, o.script);  // validated by Config::validate
        break;
    }
    if (record_fd_ >= 0 || !cfg.explain_decision.empty()) {
      std::optional<Place> explain_at;
      if (!cfg.explain_decision.empty()) {
        Place p;
        parse_place(cfg.explain_decision, p);  // validated by Config::validate
        explain_at = p;
      }
      o.on_choice = [this, explain_at](const Choice& c, std::size_t chosen) {
        if (record_fd_ >= 0) record(c, chosen);
        if (explain_at && c.key.point == explain_at->point && c.key.after == explain_at->after &&
            place_of(c) == *explain_at)
          explain(c, chosen);
      };
    }
    o.pct_depth = cfg.pct_depth;
    o.pct_expected_steps = cfg.pct_steps_used();
    o.max_steps = cfg.max_steps;
    o.stall_steps = cfg.stall_steps;
    o.progress = [this] {
      const std::atomic<std::uint64_t>* p = progress_.load(std::memory_order_relaxed);
      return p != nullptr ? p->load(std::memory_order_relaxed) : 0;
    };
    return o;
  }
  std::atomic<const std::atomic<std::uint64_t>*> progress_{nullptr};  // before sched_: its options read it
  int record_fd_ = -1;                                                  // before sched_, likewise
  std::uint64_t recorded_ = 0;
  DetScheduler sched_;
};

}  // namespace

std::unique_ptr<Executor> make_executor(const Config& cfg) {
  switch (cfg.executor) {
    case ExecutorKind::kThreads: return std::make_unique<ThreadsExecutor>(cfg);
    case ExecutorKind::kFibersMt: return std::make_unique<FibersMtExecutor>(cfg);
    case ExecutorKind::kFibers: return std::make_unique<DetExecutor>(cfg);
  }
  return nullptr;
}

}  // namespace faultline::stress
