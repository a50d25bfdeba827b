// The deterministic scheduler (see det_sched.h for the contract).
//
// How Boost.Fiber (1.81) drives an algorithm, and what this file does about it:
//
//   - Every switch calls pick_next() on the thread's algorithm: a yield, a
//     fiber blocking (mutex, condition variable), a fiber ending, and the
//     dispatcher fiber's loop.  pick_next() knows only what it is asked, not
//     why.  So a worker that yields at a schedule point decides the next
//     worker itself, in the point hook, and leaves it in `forced` for the
//     pick_next() its yield makes; any other pick_next() means the running
//     worker blocked or ended, and the policy picks among the ready set.
//   - A yielding fiber is handed to awakened() only after the switch, so
//     pick_next() never sees it.  The hook therefore offers the yielder as a
//     candidate itself, and when the policy keeps it running no switch happens
//     at all.
//   - The thread's main context and Boost's dispatcher context pass through
//     awakened() and pick_next() like workers.  They are kept in two slots,
//     outside the policy: main is returned only when no worker can run (that
//     is how run() learns the outcome), the dispatcher only right after a
//     worker ended (it frees ended fibers and their stacks) or at shutdown.
//   - suspend_until() runs only when pick_next() returned nothing, which
//     happens only at thread shutdown (main then waits in a join): main is
//     ready whenever a worker runs.  It never waits for real time during a run.
//   - Contexts are identified by worker id, carried in the fiber's properties,
//     never by address (stacks are reused, so addresses repeat within a run
//     and differ between runs).
#include "stress/sched/det_sched.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <thread>
#include <utility>

#include <boost/context/stack_context.hpp>
#include <boost/fiber/algo/algorithm.hpp>
#include <boost/fiber/context.hpp>
#include <boost/fiber/fiber.hpp>
#include <boost/fiber/operations.hpp>
#include <boost/fiber/properties.hpp>
#include <boost/fiber/type.hpp>

#include <fmt/format.h>

#include "locking/actor.h"
#include "locking/backend.h"
#include "locking/checking.h"
#include "locking/dump.h"
#include "locking/lock_base.h"
#include "stress/trace.h"

namespace faultline::stress {
namespace {

namespace bf = boost::fibers;

// ---- randomness ----

std::uint64_t mix64(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

// Types that DetCore holds by value live in `detail` (a class with external
// linkage must not have members of types from an anonymous namespace).
namespace detail {

// ---- stacks ----

// A mapping that stacks of one size are carved from.
struct StackChunk {
  char* base;
  std::size_t bytes;
  std::size_t stack_size;
};

// Chunks of runs that ended, kept mapped for the next run.  A page fault
// costs ~18 us on this project's VMs and a fiber faults in two pages, so a
// seed sweep of 10,000-fiber runs would spend most of its time faulting in
// the same stacks again.  A cached chunk's stacks are all free (every fiber of
// a run that ended ended too) and each passed the lowest-page check, so the
// pool may hand them out as fresh.  Capped, since their touched pages stay
// resident: at most kMaxBytes of mappings, about 1/8 of it resident for
// 64 KiB stacks.  Parked runs keep their chunks.
class StackChunkCache {
 public:
  static StackChunkCache& instance() {
    static StackChunkCache* c = new StackChunkCache;  // never destroyed: runs may end after statics
    return *c;
  }
  bool take(std::size_t stack_size, StackChunk* out) {
    std::lock_guard<std::mutex> l(mu_);
    for (std::size_t i = chunks_.size(); i-- > 0;) {
      if (chunks_[i].stack_size != stack_size) continue;
      *out = chunks_[i];
      chunks_.erase(chunks_.begin() + static_cast<std::ptrdiff_t>(i));
      bytes_ -= out->bytes;
      return true;
    }
    return false;
  }
  void give(const StackChunk& c) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (bytes_ + c.bytes <= kMaxBytes) {
        chunks_.push_back(c);
        bytes_ += c.bytes;
        return;
      }
    }
    ::munmap(c.base, c.bytes);
  }

 private:
  static constexpr std::size_t kMaxBytes = std::size_t{1} << 30;
  std::mutex mu_;
  std::vector<StackChunk> chunks_;
  std::size_t bytes_ = 0;
};

// Fiber stacks carved out of large anonymous mappings.  One mapping per stack
// would need a mapping per fiber (two with a guard page) and the kernel caps
// a process at vm.max_map_count (65,530 here); 100,000 fibers need far fewer
// mappings than that.  Pages are only committed when touched, so the cost of a
// fiber is the depth its stack actually reached.  Freed stacks are reused
// last-in first-out, while their pages are still resident and warm.
//
// No guard pages (each would split the mapping in two).  Instead, when a fiber
// ends, its stack's lowest page must not be resident (mincore), which catches
// a fiber that came within a page of the end, at no memory cost; a canary
// written there would commit that page for every fiber (4 KiB of the 8 a
// trivial fiber costs).  Used only on the run's thread.
class DetStackPool {
 public:
  explicit DetStackPool(std::size_t stack_bytes) {
    page_ = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    size_ = (stack_bytes + page_ - 1) / page_ * page_;
    per_chunk_ = std::max<std::size_t>(1, kChunkBytes / size_);
  }
  // Only when every fiber of the run has ended (a parked run's pool is
  // leaked with it).
  ~DetStackPool() {
    for (const StackChunk& c : chunks_) StackChunkCache::instance().give(c);
  }
  DetStackPool(const DetStackPool&) = delete;
  DetStackPool& operator=(const DetStackPool&) = delete;

  boost::context::stack_context allocate() {
    char* bottom;
    if (!free_.empty()) {
      bottom = free_.back();
      free_.pop_back();
    } else {
      if (chunks_.empty() || carved_ == per_chunk_) new_chunk();
      bottom = chunks_.back().base + carved_ * size_;
      ++carved_;
    }
    boost::context::stack_context sc;
    sc.size = size_;
    sc.sp = bottom + size_;  // stacks grow down: sp is the top
    return sc;
  }

  void deallocate(boost::context::stack_context& sc) noexcept {
    char* bottom = static_cast<char*>(sc.sp) - sc.size;
    // The lowest page of a stack is committed only if a fiber reached it.  A
    // fresh stack's never was, and a reused stack's was checked when its last
    // fiber ended, so a resident lowest page means this fiber came within a
    // page of overflowing, or overflowed into the stack below.
    unsigned char resident = 0;
    if (::mincore(bottom, page_, &resident) == 0 && (resident & 1) != 0) {
      std::fprintf(
          stderr,
          "faultline: a fiber used the last page of its %zu-byte stack (DetOptions::stack_bytes) "
          "and may have overflowed into another fiber's\n",
          size_);
      std::abort();
    }
    free_.push_back(bottom);
  }

 private:
  static constexpr std::size_t kChunkBytes = std::size_t{32} << 20;

  void new_chunk() {
    StackChunk c;
    if (!StackChunkCache::instance().take(size_, &c)) {
      const std::size_t bytes = per_chunk_ * size_;
      void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) throw std::bad_alloc();
      // A huge page would commit 2 MiB for a fiber that touched 8 KiB.
      ::madvise(p, bytes, MADV_NOHUGEPAGE);
      c = StackChunk{static_cast<char*>(p), bytes, size_};
    }
    chunks_.push_back(c);
    carved_ = 0;
  }

  std::size_t page_ = 0;
  std::size_t size_ = 0;
  std::size_t per_chunk_ = 0;
  std::size_t carved_ = 0;  // stacks handed out of the newest chunk
  std::vector<StackChunk> chunks_;
  std::vector<char*> free_;
};

}  // namespace detail

namespace {

// What Boost.Fiber copies into each fiber: a handle on the pool.
struct PoolStack {
  detail::DetStackPool* pool;
  boost::context::stack_context allocate() { return pool->allocate(); }
  void deallocate(boost::context::stack_context& sc) noexcept { pool->deallocate(sc); }
};

// ---- properties: a fiber's worker id ----

class DetProps final : public bf::fiber_properties {
 public:
  // Boost makes main's and the dispatcher's with (ctx) on their first
  // awakened(); workers get theirs, with an id, at construction.
  explicit DetProps(bf::context* ctx, int id = -1) noexcept : fiber_properties(ctx), id_(id) {}
  int id() const noexcept { return id_; }  // -1: main or dispatcher context

 private:
  int id_;
};

// The point hook is process-wide; every run's thread goes through the same
// trampoline, which finds its run by thread (tl_core), so runs on different
// threads can proceed at once.  It is installed while any run is active.
std::mutex g_hook_mu;
int g_active_runs = 0;

}  // namespace

// ---- the run's state ----

namespace detail {

struct DetCore {
  enum class State : std::uint8_t {
    kNew,    // spawned, fiber not yet ready (before run())
    kReady,  // in the ready set
    kRunning,
    kYielding,  // switching out at a schedule point; awakened() will make it ready
    kBlocked,   // switched out without a schedule point: waits on a lock or channel
    kSleeping,  // in virtual time, in the sleeper heap
    kParked,    // stopped at the step limit; never runs again
    kDone,
  };

  struct Worker {
    std::string name;
    std::function<void()> body;
    bf::context* ctx = nullptr;  // known from its first awakened()
    State state = State::kNew;
    // The schedule point it reached last (what it is about to do, or was
    // doing when it blocked), for describe_worker().
    bool at_point = false;
    locking::Point point = locking::Point::kUser;
    const void* object = nullptr;
    std::source_location site{};
    bool has_site = false;
    locking::Actor* actor = nullptr;  // while its body runs
    std::uint64_t wake_ns = 0;    // kSleeping
    // Where it is, for the choices it leaves to the scheduler (ChoiceKey):
    // schedule points reached, and choices made since the last one.
    std::uint64_t points = 0;
    std::uint32_t after = 0;
    // Owned by the fiber's context, which lives on the fiber's stack where
    // LeakSanitizer does not look: kept here too, so that a parked run's
    // (never freed, on purpose) stay reachable rather than reported.
    bf::fiber_properties* props = nullptr;
  };

  struct Sleeper {
    std::uint64_t wake_ns;
    std::uint64_t seq;  // order of falling asleep: breaks ties in wake time
    int id;
  };

  static constexpr int kNoOne = -1;
  static constexpr int kMain = -2;

  static constexpr std::size_t kEventCapacity = DetScheduler::kEventCapacity;

  explicit DetCore(const DetOptions& o)
      : opt(o),
        policy(make_policy(o)),
        stacks(o.stack_bytes),
        ring(kEventCapacity) {}

  static std::unique_ptr<SchedPolicy> make_policy(const DetOptions& o) {
    switch (o.policy) {
      case Policy::kPct: return make_pct_policy(o.seed, o.pct_depth, o.pct_expected_steps);
      case Policy::kPos: return make_pos_policy(o.seed);
      case Policy::kScript: return make_script_policy(o.script);
      case Policy::kRandom: break;
    }
    return make_random_policy(o.seed);
  }

  // ---- the algorithm's entry points ----

  void awakened(bf::context* ctx, int id) noexcept {
    if (id < 0) {
      if (ctx->is_context(bf::type::main_context))
        main_ctx = ctx;
      else
        dispatcher_ctx = ctx;
      return;
    }
    Worker& w = workers[static_cast<std::size_t>(id)];
    w.ctx = ctx;
    switch (w.state) {
      case State::kReady:     // made ready (woken from virtual sleep) before its switch-out ended
      case State::kSleeping:  // in the sleeper heap: ready when virtual time says so
      case State::kParked:
      case State::kDone:
        return;
      default:
        w.state = State::kReady;
        push_ready(id);
    }
  }

  bf::context* pick_next() noexcept {
    // The context running now is leaving.  A worker still marked running did
    // not go through the hook: it blocked (an ended worker is kDone already).
    if (running >= 0) {
      Worker& w = workers[static_cast<std::size_t>(running)];
      if (w.state == State::kRunning) w.state = State::kBlocked;
      // A choice after this one is made after its point, not at it.
      if (w.state == State::kBlocked || w.state == State::kDone) ++w.after;
    }
    running = kNoOne;
    if (forced != kNoOne) {
      const int f = std::exchange(forced, kNoOne);
      return f == kMain ? take_main() : enter(f);
    }
    if (dispatcher_wanted && dispatcher_ctx != nullptr) {
      dispatcher_wanted = false;
      return std::exchange(dispatcher_ctx, nullptr);
    }
    if (!stopping) {
      if (ready.empty() && !sleepers.empty()) jump_to_next_sleeper();
      if (!ready.empty()) return enter(take_ready());
    }
    // No worker can run: main learns the outcome.  At shutdown main waits in
    // a join and the dispatcher finishes.
    if (main_ctx != nullptr) return take_main();
    return std::exchange(dispatcher_ctx, nullptr);
  }

  bool has_ready() const noexcept {
    return forced != kNoOne || !ready.empty() || !sleepers.empty() || main_ctx != nullptr ||
           dispatcher_ctx != nullptr;
  }

  // Reached only at thread shutdown (see the top of the file), after
  // notify(), with tp at its maximum.  A finite tp would be a fiber in a real
  // timed wait, which the contract excludes; it is waited for rather than
  // spun on.
  void suspend_until(std::chrono::steady_clock::time_point tp) noexcept {
    std::unique_lock<std::mutex> l(suspend_mu);
    if (tp == std::chrono::steady_clock::time_point::max())
      suspend_cv.wait(l, [this] { return notified; });
    else
      suspend_cv.wait_until(l, tp, [this] { return notified; });
    notified = false;
  }

  void notify() noexcept {
    std::lock_guard<std::mutex> l(suspend_mu);
    notified = true;
    suspend_cv.notify_all();
  }

  // ---- schedule points ----

  void on_point(const locking::PointInfo& info) {
    const int id = running;
    if (id < 0) return;  // main or dispatcher: not a worker
    Worker& me = workers[static_cast<std::size_t>(id)];
    ++steps;
    ++me.points;
    me.after = 0;
    vtime_ns += opt.step_ns;
    ring[steps % kEventCapacity] = SchedEvent{steps, id, info.point, vtime_ns};
    fold((static_cast<std::uint64_t>(id) << 8) | static_cast<std::uint64_t>(info.point));
    me.at_point = true;
    me.point = info.point;
    me.object = info.object;
    me.has_site = info.site != nullptr;
    if (me.has_site) me.site = *info.site;
    policy->at_point(id, steps, info);

    if (opt.max_steps != 0 && steps >= opt.max_steps) park_self(me);
    if (opt.stall_steps != 0 && (steps & 1023) == 0 && opt.progress) {
      const std::uint64_t p = opt.progress();
      if (p != last_progress) {
        last_progress = p;
        last_progress_step = steps;
      } else if (steps - last_progress_step >= opt.stall_steps) {
        stalled = true;
        park_self(me);
      }
    }

    const bool sleeps =
        (info.point == locking::Point::kIo || info.point == locking::Point::kPause) && info.arg > 0;
    if (sleeps) {
      me.state = State::kSleeping;
      me.wake_ns = vtime_ns + std::uint64_t{info.arg} * 1000;
      push_sleeper(id);
    }
    wake_due();
    int next;
    if (sleeps) {
      if (ready.empty()) jump_to_next_sleeper();
      next = take_ready();
      if (next == id) {  // it slept until now, and runs on
        me.state = State::kRunning;
        policy->switched_in(id);
        return;
      }
    } else {
      next = choose_with(id);
      if (next == id) return;
      me.state = State::kYielding;
    }
    forced = next;
    boost::this_fiber::yield();
    // Back: pick_next() entered us again.
  }

  // ---- the policy ----

  // `ready` is in the order of events (push_ready), with swap-removal: a
  // function of the schedule so far.  slot[id] is id's index in it.
  void push_ready(int id) {
    slot[static_cast<std::size_t>(id)] = static_cast<std::uint32_t>(ready.size());
    ready.push_back(id);
    policy->made_ready(id);
  }

  int remove_ready(std::size_t i) noexcept {
    const int id = ready[i];
    ready[i] = ready.back();
    slot[static_cast<std::size_t>(ready[i])] = static_cast<std::uint32_t>(i);
    ready.pop_back();
    policy->left_ready(id);
    return id;
  }

  // One choice among two or more runnable workers (ready, then `current`
  // if it may run on): the policy's, told to on_choice.
  std::size_t ask(int current) noexcept {
    Choice c;
    c.runnable = ready;
    c.slot = slot;
    c.current = current;
    c.decision = ++decisions;
    c.step = steps;
    c.key = key_now();
    const std::size_t i = policy->choose(c);
    if (opt.on_choice) opt.on_choice(c, i);
    return i;
  }

  // Where this choice is: the last worker to run and how far it got.  Two
  // choices with nobody run between them (main or the dispatcher ran) would
  // share a place: the second counts as one more after it.
  ChoiceKey key_now() noexcept {
    std::uint32_t& after = last_run >= 0 ? workers[static_cast<std::size_t>(last_run)].after : main_after;
    ChoiceKey k{last_run >= 0 ? last_run : -1, last_run >= 0 ? workers[static_cast<std::size_t>(last_run)].points : 0,
                after};
    if (decisions > 1 && k == last_key) k.after = ++after;
    last_key = k;
    return k;
  }

  // The next worker when the running one blocked, slept or ended.
  int take_ready() noexcept {
    return remove_ready(ready.size() > 1 ? ask(kNoOne) : 0);
  }

  // The next worker when `self` reached a schedule point and may run on.
  int choose_with(int self) noexcept {
    if (ready.empty()) return self;
    const std::size_t n = ready.size();
    slot[static_cast<std::size_t>(self)] = static_cast<std::uint32_t>(n);
    ready.push_back(self);
    const std::size_t i = ask(self);
    ready.pop_back();
    return i == n ? self : remove_ready(i);
  }

  bf::context* enter(int id) noexcept {
    Worker& w = workers[static_cast<std::size_t>(id)];
    w.state = State::kRunning;
    policy->switched_in(id);
    if (id != last_run) {
      ++switches;
      fold((std::uint64_t{1} << 63) | static_cast<std::uint64_t>(id));
      last_run = id;
    }
    running = id;
    return w.ctx;
  }

  bf::context* take_main() noexcept {
    if (main_ctx == nullptr) {
      std::fprintf(stderr, "faultline: DetScheduler: main context not ready when needed\n");
      std::abort();
    }
    return std::exchange(main_ctx, nullptr);
  }

  void fold(std::uint64_t v) noexcept { digest = mix64(digest ^ mix64(v + 0x9e3779b97f4a7c15ull)); }

  // ---- virtual time ----

  static bool sleeper_after(const Sleeper& a, const Sleeper& b) noexcept {
    return a.wake_ns != b.wake_ns ? a.wake_ns > b.wake_ns : a.seq > b.seq;
  }
  void push_sleeper(int id) {
    sleepers.push_back(Sleeper{workers[static_cast<std::size_t>(id)].wake_ns, sleep_seq++, id});
    std::push_heap(sleepers.begin(), sleepers.end(), sleeper_after);
  }
  void wake_due() {
    while (!sleepers.empty() && sleepers.front().wake_ns <= vtime_ns) {
      std::pop_heap(sleepers.begin(), sleepers.end(), sleeper_after);
      const int id = sleepers.back().id;
      sleepers.pop_back();
      workers[static_cast<std::size_t>(id)].state = State::kReady;
      push_ready(id);
    }
  }
  void jump_to_next_sleeper() {
    vtime_ns = std::max(vtime_ns, sleepers.front().wake_ns);
    wake_due();
  }

  // ---- workers ----

  int add_worker(std::string name, std::function<void()> body) {
    const int id = static_cast<int>(workers.size());
    Worker& w = workers.emplace_back();
    w.name = std::move(name);
    w.body = std::move(body);
    slot.push_back(0);
    policy->spawned(id, w.name);
    ++live;
    return id;
  }

  void start_fiber(int id) {
    auto props = std::make_unique<DetProps>(nullptr, id);
    workers[static_cast<std::size_t>(id)].props = props.get();
    // Launched with launch::post: the constructor makes it ready through
    // awakened(), which records its context, and returns.
    // (A fiber_properties*, exactly: a DetProps* would select the plain
    // fiber(Fn&&, Args&&...) constructor and try to call it.)
    bf::fiber f(static_cast<bf::fiber_properties*>(props.get()), std::allocator_arg,
                PoolStack{&stacks}, [this, id] { worker_main(id); });
    props.release();  // owned by the fiber's context now
    f.detach();       // freed by the dispatcher when it ends
  }

  void worker_main(int id) {
    Worker& w = workers[static_cast<std::size_t>(id)];  // a deque: stable while others spawn
    {
      locking::ActorScope actor(w.name);
      w.actor = &actor.actor();
      try {
        w.body();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "faultline: worker %d \"%s\" threw: %s\n", id, w.name.c_str(),
                     e.what());
        std::abort();
      } catch (...) {
        std::fprintf(stderr, "faultline: worker %d \"%s\" threw a non-exception\n", id,
                     w.name.c_str());
        std::abort();
      }
    }
    w.actor = nullptr;
    w.body = nullptr;  // its captures die with it, not with the scheduler
    w.state = State::kDone;
    --live;
    dispatcher_wanted = true;
  }

  // At the step limit: hand the thread to main and never come back.
  [[noreturn]] void park_self(Worker& me) {
    stopping = true;
    me.state = State::kParked;
    forced = kMain;
    boost::this_fiber::yield();
    std::fprintf(stderr, "faultline: DetScheduler: a parked worker was resumed\n");
    std::abort();
  }

  // ---- the run's OS thread ----

  static void point_hook(const locking::PointInfo& info, void* context);

  void thread_main();

  void publish(DetOutcome o) {
    std::lock_guard<std::mutex> l(run_mu);
    outcome = o;
    outcome_known = true;
    run_cv.notify_all();
  }

  const DetOptions opt;
  std::unique_ptr<SchedPolicy> policy;
  DetStackPool stacks;

  std::deque<Worker> workers;
  std::vector<int> ready;
  std::vector<std::uint32_t> slot;  // per worker: its index in `ready` while it is there
  std::uint64_t decisions = 0;      // choices the policy was asked for
  ChoiceKey last_key;               // the last one's place
  std::uint32_t main_after = 0;     // choices made before any worker ran
  std::vector<Sleeper> sleepers;
  std::uint64_t sleep_seq = 0;
  bf::context* main_ctx = nullptr;        // set while main is ready
  bf::context* dispatcher_ctx = nullptr;  // set while the dispatcher is ready
  int forced = kNoOne;                    // chosen at a schedule point, for the yield's pick_next
  bool dispatcher_wanted = false;         // a worker ended: let the dispatcher free it
  bool stopping = false;                  // the step limit was reached, or no progress (stalled)
  bool stalled = false;                   // no progress for opt.stall_steps steps
  std::uint64_t last_progress = 0, last_progress_step = 0;
  int running = kNoOne;                   // worker id running now, kNoOne for main / dispatcher
  int last_run = kNoOne;                  // the last worker that ran
  std::int64_t live = 0;                  // workers that have not returned

  std::uint64_t steps = 0;
  std::uint64_t switches = 0;
  std::uint64_t digest = 0xcbf29ce484222325ull;
  std::uint64_t vtime_ns = 0;
  std::vector<SchedEvent> ring;

  // Shutdown wait of the algorithm.
  std::mutex suspend_mu;
  std::condition_variable suspend_cv;
  bool notified = false;

  // run() and its thread.
  std::mutex run_mu;
  std::condition_variable run_cv;
  bool outcome_known = false;
  DetOutcome outcome = DetOutcome::kDone;
  bool ran = false;
  bool parked = false;
};

}  // namespace detail

namespace {

thread_local detail::DetCore* tl_core = nullptr;  // the run on this OS thread

// The scheduling algorithm Boost.Fiber calls: a thin adapter onto DetCore, which
// outlives it (Boost owns and deletes the algorithm at thread exit).
class DetAlgo final : public bf::algo::algorithm_with_properties<DetProps> {
 public:
  explicit DetAlgo(detail::DetCore* core) noexcept : core_(core) {}

  void awakened(bf::context* ctx, DetProps& props) noexcept override {
    core_->awakened(ctx, props.id());
  }
  bf::context* pick_next() noexcept override { return core_->pick_next(); }
  bool has_ready_fibers() const noexcept override { return core_->has_ready(); }
  void suspend_until(std::chrono::steady_clock::time_point const& tp) noexcept override {
    core_->suspend_until(tp);
  }
  void notify() noexcept override { core_->notify(); }

 private:
  detail::DetCore* core_;
};

}  // namespace

void detail::DetCore::point_hook(const locking::PointInfo& info, void*) {
  // Lock operations on threads that are not a run's (the caller's, say) pass.
  if (DetCore* core = tl_core) core->on_point(info);
}

namespace {

void retain_hook() {
  std::lock_guard<std::mutex> l(g_hook_mu);
  if (g_active_runs++ == 0) install_point_hook(&detail::DetCore::point_hook, nullptr);
}

void release_hook() {
  std::lock_guard<std::mutex> l(g_hook_mu);
  if (--g_active_runs == 0) remove_point_hook();
}

}  // namespace

void detail::DetCore::thread_main() {
  tl_core = this;
  bf::use_scheduling_algorithm<DetAlgo>(this);
  for (std::size_t id = 0; id < workers.size(); ++id) start_fiber(static_cast<int>(id));

  // Main never blocks, so it is always ready while a worker runs, and the
  // algorithm returns it only when no worker can run.
  if (live > 0) boost::this_fiber::yield();
  const DetOutcome o = stalled    ? DetOutcome::kStall
                       : stopping ? DetOutcome::kStepLimit
                       : live > 0 ? DetOutcome::kDeadlock
                                  : DetOutcome::kDone;
  publish(o);
  if (o == DetOutcome::kDone) return;  // thread exit frees the scheduler; run() joins

  // Park: the suspended fibers' stacks, locks and actors stay as they are.
  std::unique_lock<std::mutex> l(run_mu);
  run_cv.wait(l, [] { return false; });
}

// ---- DetScheduler ----

const char* det_outcome_name(DetOutcome o) noexcept {
  switch (o) {
    case DetOutcome::kDone:
      return "done";
    case DetOutcome::kDeadlock:
      return "deadlock";
    case DetOutcome::kStepLimit:
      return "step-limit";
    case DetOutcome::kStall:
      return "stall";
  }
  return "?";
}

DetScheduler::DetScheduler(const DetOptions& options) {
  if (options.pct_depth < 1)
    throw std::invalid_argument("DetOptions::pct_depth must be at least 1, not " +
                                std::to_string(options.pct_depth));
  if (options.pct_depth > 1 && options.pct_expected_steps == 0)
    throw std::invalid_argument("DetOptions::pct_expected_steps must be positive");
  if (options.stack_bytes < 16 * 1024)
    throw std::invalid_argument("DetOptions::stack_bytes must be at least 16 KiB, not " +
                                std::to_string(options.stack_bytes));
  core_ = new detail::DetCore(options);
}

DetScheduler::~DetScheduler() {
  // A parked thread still runs on this state: leave it to the process,
  // reachable from a registry (so LeakSanitizer does not call it a leak).
  if (!core_->parked) {
    delete core_;
  } else {
    static auto* const parked_runs = new std::vector<detail::DetCore*>;
    parked_runs->push_back(core_);
  }
}

int DetScheduler::spawn(std::string name, std::function<void()> body) {
  detail::DetCore& c = *core_;
  const bool on_run_thread = tl_core == core_;
  if (c.ran && !on_run_thread)
    throw std::logic_error("DetScheduler::spawn: after run() started, spawn only from a worker");
  const int id = c.add_worker(std::move(name), std::move(body));
  if (on_run_thread) c.start_fiber(id);
  return id;
}

DetOutcome DetScheduler::run() {
  detail::DetCore& c = *core_;
  if (c.ran) throw std::logic_error("DetScheduler::run: called twice");
  if (locking::current_backend() != locking::Backend::kFiber)
    throw std::logic_error(std::string("DetScheduler::run: the locking backend is ") +
                           locking::backend_name(locking::current_backend()) +
                           ", not fiber (set_backend(Backend::kFiber) before creating locks)");
  c.ran = true;
  retain_hook();
  std::thread t;
  try {
    t = std::thread([&c] { c.thread_main(); });
  } catch (...) {
    release_hook();
    throw;
  }
  DetOutcome o;
  {
    std::unique_lock<std::mutex> l(c.run_mu);
    c.run_cv.wait(l, [&c] { return c.outcome_known; });
    o = c.outcome;
  }
  if (o == DetOutcome::kDone) {
    t.join();
  } else {
    t.detach();
    c.parked = true;
  }
  // The parked thread passes no more schedule points.
  release_hook();
  return o;
}

std::uint64_t DetScheduler::steps() const { return core_->steps; }
std::uint64_t DetScheduler::decisions() const { return core_->decisions; }

std::string DetScheduler::worker_name(int id) const {
  const detail::DetCore& c = *core_;
  if (id < 0 || static_cast<std::size_t>(id) >= c.workers.size()) return "";
  return c.workers[static_cast<std::size_t>(id)].name;
}

std::string DetScheduler::describe_worker(int id) const {
  const detail::DetCore& c = *core_;
  if (id < 0 || static_cast<std::size_t>(id) >= c.workers.size()) return fmt::format("worker {}: no such worker", id);
  const detail::DetCore::Worker& w = c.workers[static_cast<std::size_t>(id)];
  std::string out = fmt::format("worker {} \"{}\"", id, w.name);
  if (w.at_point) {
    out += fmt::format(" at {}", locking::point_name(w.point));
    // A lock it is about to take is alive; anything else it names may not
    // be any more (an unlocked object freed since): not dereferenced.
    if ((w.point == locking::Point::kLock || w.point == locking::Point::kTryLock) && w.object != nullptr)
      out += fmt::format(" \"{}\"", static_cast<const locking::LockBase*>(w.object)->name());
    if (w.has_site) out += fmt::format(" @ {} in {}", locking::format_site(w.site), w.site.function_name());
  } else {
    out += " before its first schedule point";
  }
  out += "\n";
  if (w.actor != nullptr) {
    std::string locks = locking::dump_actor_locks(*w.actor, true);
    // The dump's first line names the actor again; its held locks follow.
    if (const std::size_t nl = locks.find('\n'); nl != std::string::npos) locks.erase(0, nl + 1);
    out += locks.empty() ? "  holding no lock\n" : locks;
  } else {
    out += "  (returned)\n";
  }
  return out;
}
std::uint64_t DetScheduler::switches() const { return core_->switches; }
std::uint64_t DetScheduler::digest() const { return core_->digest; }
std::uint64_t DetScheduler::virtual_now_ns() const { return core_->vtime_ns; }

std::vector<std::string> DetScheduler::unfinished_workers() const {
  std::vector<std::string> out;
  for (const detail::DetCore::Worker& w : core_->workers)
    if (w.state != detail::DetCore::State::kDone) out.push_back(w.name);
  return out;
}

std::vector<SchedEvent> DetScheduler::last_events(std::size_t n) const {
  const detail::DetCore& c = *core_;
  n = std::min({n, static_cast<std::size_t>(c.steps), kEventCapacity});
  std::vector<SchedEvent> out;
  out.reserve(n);
  for (std::uint64_t s = c.steps - n + 1; s <= c.steps; ++s)
    out.push_back(c.ring[s % kEventCapacity]);
  return out;
}

int DetScheduler::current_worker() noexcept { return tl_core != nullptr ? tl_core->running : -1; }

}  // namespace faultline::stress
