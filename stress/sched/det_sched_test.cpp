// Tests of the deterministic fiber scheduler.
//
// Runs that end in kDeadlock leave a parked OS thread holding locks, so the
// deadlock test runs in a child process (a death test, which gtest runs
// before the other tests); runs that end at the step limit with workers that
// hold nothing park harmlessly and stay in this process.
#include "stress/sched/det_sched.h"

#include <atomic>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

#include <boost/fiber/context.hpp>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "locking/locking.h"
#include "locking/test_util.h"

namespace faultline::stress {
namespace {

namespace fl = faultline::locking;
using fl::Point;
using fl::schedule_point;

fl::LockClass counter_class{"sched test counter", fl::LockKind::kMutex};
fl::LockClass replay_class{"sched test replay", fl::LockKind::kMutex};
fl::LockClass first_class{"sched test first", fl::LockKind::kMutex};
fl::LockClass second_class{"sched test second", fl::LockKind::kMutex};

constexpr Policy kPolicies[] = {Policy::kRandom, Policy::kPct, Policy::kPos};

const char* policy_name(Policy p) { return p == Policy::kPct ? "pct" : p == Policy::kPos ? "pos" : "random"; }

DetOptions options(Policy p, std::uint64_t seed) {
  DetOptions o;
  o.seed = seed;
  o.policy = p;
  o.stack_bytes = fl::testing::kTestFiberStack;
  return o;
}

// Resident set size in KiB, from /proc/self/status (field "VmRSS:").
long rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      long kib = 0;
      in >> kib;
      return kib;
    }
    in.ignore(1 << 12, '\n');
  }
  return -1;
}

class DetSchedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fl::set_backend(fl::Backend::kFiber);
    fl::witness::reset();
  }
  void TearDown() override { fl::set_backend(fl::Backend::kStd); }
};

class DetSchedPolicyTest : public DetSchedTest, public ::testing::WithParamInterface<Policy> {};

INSTANTIATE_TEST_SUITE_P(Policies, DetSchedPolicyTest, ::testing::ValuesIn(kPolicies),
                         [](const ::testing::TestParamInfo<Policy>& i) {
                           return std::string(policy_name(i.param));
                         });

// ---- 3. deadlock (in a child process) ----

// Two workers take two mutexes in opposite orders, with a schedule point in
// between.  Prints the first deadlocking seed's report, destroys the
// scheduler and exits with the run parked: neither may crash or hang.
[[noreturn]] void find_deadlock_then_exit() {
  fl::set_backend(fl::Backend::kFiber);
  // Held locks are recorded (for the dump) only when the checker is on; it
  // also reports the order reversal, which is beside the point here.
  fl::set_mode(fl::Mode::kReport);
  for (std::uint64_t seed = 1; seed <= 50; ++seed) {
    // On the heap: if the run parks, its workers hold them until exit.
    auto* a = new fl::Mutex(first_class, "a");
    auto* b = new fl::Mutex(second_class, "b");
    bool parked = false;
    {
      DetScheduler s(options(Policy::kRandom, seed));
      s.spawn("ab", [a, b] {
        fl::MutexLock la(*a);
        schedule_point(Point::kUser, a);
        fl::MutexLock lb(*b);
      });
      s.spawn("ba", [a, b] {
        fl::MutexLock lb(*b);
        schedule_point(Point::kUser, b);
        fl::MutexLock la(*a);
      });
      const DetOutcome out = s.run();
      if (out == DetOutcome::kDeadlock) {
        std::string names;
        for (const std::string& n : s.unfinished_workers()) names += " " + n;
        std::fprintf(stderr, "seed %llu: %s; unfinished:%s\n%s",
                     static_cast<unsigned long long>(seed), det_outcome_name(out), names.c_str(),
                     fl::dump_all_locks(false).c_str());
        parked = true;
      } else if (out != DetOutcome::kDone) {
        std::fprintf(stderr, "seed %llu: unexpected %s\n", static_cast<unsigned long long>(seed),
                     det_outcome_name(out));
        std::exit(3);
      }
    }
    if (parked) std::exit(0);
    delete a;
    delete b;
  }
  std::fprintf(stderr, "no deadlock in 50 seeds\n");
  std::exit(1);
}

TEST(DetSchedDeathTest, OppositeLockOrderDeadlocks) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // The report names both workers, and the lock dump shows both holding.
  EXPECT_EXIT(
      find_deadlock_then_exit(), ::testing::ExitedWithCode(0),
      "deadlock; unfinished: ab ba\n"
      "(.*actor [0-9]+ \"ab\".*actor [0-9]+ \"ba\"|.*actor [0-9]+ \"ba\".*actor [0-9]+ \"ab\")");
}

// A fiber that reaches the lowest page of its stack is reported when it
// ends.  The worker touches that page directly rather than overflowing (which
// would corrupt a neighbour first): Boost.Fiber places the fiber's context
// record just below the top of its stack, and the pool's stacks are whole
// pages, so the top is the context's address rounded up to a page.
[[noreturn]] void touch_last_stack_page() {
  fl::set_backend(fl::Backend::kFiber);
  DetOptions o = options(Policy::kRandom, 1);
  o.stack_bytes = 64 * 1024;
  DetScheduler s(o);
  s.spawn("deep", [&o] {
    const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto ctx = reinterpret_cast<std::uintptr_t>(boost::fibers::context::active());
    const std::uintptr_t top = (ctx + page - 1) / page * page;
    const std::uintptr_t bottom = top - o.stack_bytes;
    volatile char local = 0;
    const auto here = reinterpret_cast<std::uintptr_t>(&local);
    if (here <= bottom + page || here >= top) {
      std::fprintf(stderr, "cannot locate the fiber's stack\n");
      std::exit(2);
    }
    *reinterpret_cast<volatile char*>(bottom + 64) = local;
  });
  s.run();
  std::fprintf(stderr, "the run ended without a report\n");
  std::exit(1);
}

TEST(DetSchedDeathTest, LastStackPageIsReported) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(touch_last_stack_page(), "used the last page of its 65536-byte stack");
}

// ---- 1. replay ----

struct Trace {
  DetOutcome outcome;
  std::uint64_t digest, steps, switches, vtime;
  std::vector<int> order;  // worker ids at each schedule point; 100 + id under the mutex
};

Trace traced_run(DetOptions o) {
  fl::Mutex m(replay_class);
  Trace t{};
  DetScheduler s(o);
  for (int w = 0; w < 8; ++w) {
    s.spawn(fmt::format("w{}", w), [&t, &m, w] {
      for (int i = 0; i < 20; ++i) {
        t.order.push_back(w);
        schedule_point(Point::kUser, &t);
        if (i % 5 == 0) {
          fl::MutexLock l(m);
          t.order.push_back(100 + w);
          schedule_point(Point::kUser, &m);
        }
      }
    });
  }
  t.outcome = s.run();
  t.digest = s.digest();
  t.steps = s.steps();
  t.switches = s.switches();
  t.vtime = s.virtual_now_ns();
  return t;
}

Trace traced_run(Policy p, std::uint64_t seed) {
  DetOptions o = options(p, seed);
  o.pct_depth = 3;
  o.pct_expected_steps = 400;
  return traced_run(o);
}

// ---- scripts: a schedule written down ----

// traced_run's workers are named w0, w1, ...
Place place_of(const ChoiceKey& k) {
  Place p;
  if (k.by >= 0) p.by = fmt::format("w{}", k.by);
  p.point = k.point;
  p.after = k.after;
  return p;
}

// A run's choices that differ from the default, replayed as a script, give
// the same schedule; the empty script is the non-preemptive schedule.
TEST_F(DetSchedTest, ScriptReplaysARecordedRunAndTheEmptyScriptRunsEachWorkerOn) {
  for (Policy p : kPolicies) {
    Script rec;
    std::uint64_t choices = 0;
    DetOptions o = options(p, 7);
    o.pct_expected_steps = 400;
    std::set<ChoiceKey> places;
    o.on_choice = [&rec, &choices, &places](const Choice& c, std::size_t i) {
      ++choices;
      EXPECT_EQ(c.decision, choices);
      EXPECT_GE(c.runnable.size(), 2u);
      EXPECT_TRUE(places.insert(c.key).second) << format_place(place_of(c.key)) << " named twice";
      if (i != default_choice(c)) rec.push_back({place_of(c.key), fmt::format("w{}", c.runnable[i])});
    };
    const Trace a = traced_run(o);
    ASSERT_EQ(a.outcome, DetOutcome::kDone);
    ASSERT_FALSE(rec.empty()) << policy_name(p);
    DetOptions so = options(Policy::kScript, 99);  // the seed plays no part
    so.script = rec;
    const Trace b = traced_run(so);
    EXPECT_EQ(b.digest, a.digest) << policy_name(p);
    EXPECT_EQ(b.order, a.order) << policy_name(p);
    // One entry less: another schedule.
    so.script.erase(so.script.begin());
    EXPECT_NE(traced_run(so).order, a.order) << policy_name(p);
  }
  const Trace d = traced_run(options(Policy::kScript, 1));
  ASSERT_EQ(d.outcome, DetOutcome::kDone);
  // Nobody contends for the mutex when each runs alone: w0's 24 points,
  // then w1's, ...
  EXPECT_EQ(d.switches, 8u);
  for (std::size_t i = 0; i < d.order.size(); ++i) EXPECT_EQ(d.order[i] % 100, static_cast<int>(i / 24)) << i;
}

// A script's entry names its place by the worker's own progress, so it
// means the same place whatever other entries say: the preemption of w3 at
// its 7th schedule point happens there with or without an earlier entry
// that reorders everything before it.
TEST_F(DetSchedTest, AScriptEntryKeepsItsPlaceWhenAnEarlierOneGoes) {
  auto preempted_at = [](const Script& s) {
    DetOptions o = options(Policy::kScript, 1);
    o.script = s;
    std::vector<std::pair<int, std::uint64_t>> preemptions;  // (worker preempted, its points)
    o.on_choice = [&](const Choice& c, std::size_t i) {
      if (c.current >= 0 && c.runnable[i] != c.current) preemptions.emplace_back(c.current, c.key.point);
    };
    const Trace t = traced_run(o);
    EXPECT_EQ(t.outcome, DetOutcome::kDone);
    return preemptions;
  };
  const ScriptEntry early{{"w0", 3, 0}, "w5"};  // w0 at its 3rd point: run w5
  const ScriptEntry late{{"w3", 7, 0}, "w6"};   // w3 at its 7th point: run w6
  const auto both = preempted_at(Script{early, late});
  const auto alone = preempted_at(Script{late});
  const std::pair<int, std::uint64_t> w3_at_7{3, 7};
  EXPECT_NE(std::find(both.begin(), both.end(), w3_at_7), both.end());
  EXPECT_NE(std::find(alone.begin(), alone.end(), w3_at_7), alone.end());
  const std::pair<int, std::uint64_t> w0_at_3{0, 3};
  EXPECT_NE(std::find(both.begin(), both.end(), w0_at_3), both.end());
  EXPECT_EQ(std::find(alone.begin(), alone.end(), w0_at_3), alone.end());
}

TEST(DetSchedScript, ParsesAndFormats) {
  Script s;
  EXPECT_FALSE(parse_script("p2.t1@12:p1.t0,-@0.1:pagedaemon,w0@4.2:w4", s));
  EXPECT_EQ(s, (Script{{{"p2.t1", 12, 0}, "p1.t0"}, {{"-", 0, 1}, "pagedaemon"}, {{"w0", 4, 2}, "w4"}}));
  EXPECT_EQ(format_script(s), "p2.t1@12:p1.t0,-@0.1:pagedaemon,w0@4.2:w4");
  EXPECT_FALSE(parse_script("", s));
  EXPECT_TRUE(s.empty());
  // "@FILE": the text from a file (a long script does not fit in one argument).
  char path[] = "/tmp/fl-script-test-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "w1@4:w2,w2@9:w0\n", 16), 16);
  ::close(fd);
  EXPECT_FALSE(parse_script(std::string("@") + path, s));
  EXPECT_EQ(s, (Script{{{"w1", 4, 0}, "w2"}, {{"w2", 9, 0}, "w0"}}));
  std::remove(path);
  auto missing = parse_script(std::string("@") + path, s);
  ASSERT_TRUE(missing);
  EXPECT_NE(missing->find("cannot read"), std::string::npos) << *missing;
  for (const char* bad : {"x", "3", "w1:w2", "w1@:w2", "@3:w1", "w1@3:", "w1@3:-", ":w1", "w1@x:w2", "w1@2.0:w0",
                          "w1@2.3.4:w0", "w1@-2:w0", "w1@2:w1,w1@2:w0", "w1@2:w1;w1@3:w2", "w 1@2:w0"}) {
    auto e = parse_script(bad, s);
    ASSERT_TRUE(e) << bad;
    EXPECT_NE(e->find("--script"), std::string::npos) << *e;
  }
}

// describe_worker names where a worker stands (the point, the lock, its
// code site) and what it holds.
TEST_F(DetSchedTest, DescribeWorkerNamesThePointTheSiteAndTheLocksHeld) {
  fl::ScopedReportCapture reports(fl::Mode::kReport);  // held stacks are kept with the checker on
  fl::Mutex a(first_class, "a");
  fl::Mutex b(second_class, "b");
  std::string seen;
  DetScheduler* sp = nullptr;
  DetOptions o = options(Policy::kRandom, 1);
  o.on_choice = [&seen, &sp](const Choice& c, std::size_t) {
    if (seen.empty() && c.current == 0) {
      const std::string d = sp->describe_worker(0);
      if (d.find("at lock \"b\"") != std::string::npos) seen = d;
    }
  };
  DetScheduler s(o);
  sp = &s;
  s.spawn("holder", [&a, &b] {
    for (int i = 0; i < 50; ++i) {
      fl::MutexLock la(a);
      fl::MutexLock lb(b);
    }
  });
  s.spawn("other", [] {
    for (int i = 0; i < 200; ++i) schedule_point(Point::kUser, nullptr);
  });
  ASSERT_EQ(s.run(), DetOutcome::kDone);
  ASSERT_FALSE(seen.empty()) << "no choice found worker 0 about to lock b";
  EXPECT_NE(seen.find("worker 0 \"holder\" at lock \"b\" @ stress/sched/det_sched_test.cpp:"), std::string::npos)
      << seen;
  EXPECT_NE(seen.find("exclusive"), std::string::npos) << seen;
  EXPECT_NE(seen.find("(a)"), std::string::npos) << seen;
  const std::string other = s.describe_worker(1);
  EXPECT_EQ(other.rfind("worker 1 \"other\" at user @ stress/sched/det_sched_test.cpp:", 0), 0u) << other;
  EXPECT_TRUE(other.ends_with("\n  (returned)\n")) << other;
  EXPECT_EQ(reports.size(), 0u);
}

TEST_P(DetSchedPolicyTest, SameSeedReplaysDifferentSeedDiffers) {
  const Trace a = traced_run(GetParam(), 7);
  const Trace b = traced_run(GetParam(), 7);
  const Trace c = traced_run(GetParam(), 8);
  ASSERT_EQ(a.outcome, DetOutcome::kDone);
  ASSERT_EQ(b.outcome, DetOutcome::kDone);
  ASSERT_EQ(c.outcome, DetOutcome::kDone);
  // 8 workers x 20 x (1 user point + every 5th: lock, user, unlock).
  EXPECT_EQ(a.steps, 8u * (20 + 4 * 3));
  EXPECT_EQ(a.order.size(), 8u * (20 + 4));
  EXPECT_EQ(a.digest, b.digest);
  EXPECT_EQ(a.steps, b.steps);
  EXPECT_EQ(a.switches, b.switches);
  EXPECT_EQ(a.vtime, b.vtime);
  EXPECT_EQ(a.order, b.order);
  EXPECT_NE(a.digest, c.digest);
  EXPECT_NE(a.order, c.order);
  // Every worker ran; random interleaves them far more (PCT may run them one
  // after another when its change points fall late).
  EXPECT_GE(a.switches, 8u);
  if (GetParam() == Policy::kRandom) {
    EXPECT_GT(a.switches, 100u);
  }
}

// Runs on different threads at once: each schedule is the same as alone.
TEST_F(DetSchedTest, ConcurrentRunsAreIndependent) {
  constexpr int kRuns = 4;
  std::vector<Trace> alone, together(kRuns);
  for (int i = 0; i < kRuns; ++i) alone.push_back(traced_run(kPolicies[i % 2], 30 + i));
  for (int round = 0; round < 5; ++round) {
    std::vector<std::thread> ts;
    for (int i = 0; i < kRuns; ++i)
      ts.emplace_back([&together, i] {
        together[static_cast<std::size_t>(i)] = traced_run(kPolicies[i % 2], 30 + i);
      });
    for (auto& t : ts) t.join();
    for (int i = 0; i < kRuns; ++i) {
      const auto u = static_cast<std::size_t>(i);
      EXPECT_EQ(together[u].outcome, DetOutcome::kDone);
      EXPECT_EQ(together[u].digest, alone[u].digest) << "run " << i << " round " << round;
      EXPECT_EQ(together[u].order, alone[u].order) << "run " << i << " round " << round;
    }
  }
}

// ---- 2. a counter under a mutex ----

TEST_P(DetSchedPolicyTest, MutexKeepsCounterExact) {
  fl::ScopedReportCapture reports(fl::Mode::kReport);
  fl::Mutex m(counter_class);
  long counter = 0;
  constexpr int kWorkers = 200, kIncrements = 100;
  DetScheduler s(options(GetParam(), 3));
  for (int w = 0; w < kWorkers; ++w) {
    s.spawn("inc" + std::to_string(w), [&] {
      for (int i = 0; i < kIncrements; ++i) {
        fl::MutexLock l(m);
        const long v = counter;
        schedule_point(Point::kUser, &counter);  // others run here, and block on m
        counter = v + 1;
      }
    });
  }
  EXPECT_EQ(s.run(), DetOutcome::kDone);
  EXPECT_EQ(counter, long{kWorkers} * kIncrements);
  EXPECT_EQ(s.steps(), 3u * kWorkers * kIncrements);  // lock, user, unlock
  EXPECT_EQ(reports.size(), 0u);
  EXPECT_TRUE(s.unfinished_workers().empty());
}

// ---- 4. virtual time ----

TEST_P(DetSchedPolicyTest, IoSleepsInVirtualTime) {
  DetOptions o = options(GetParam(), 11);
  o.step_ns = 1000;
  DetScheduler s(o);
  std::uint64_t before = 0, after = 0;
  bool asleep = false;
  int busy_while_asleep = 0;
  s.spawn("sleeper", [&] {
    before = s.virtual_now_ns();
    asleep = true;
    schedule_point(Point::kIo, &before, 1000);  // 1 ms
    asleep = false;
    after = s.virtual_now_ns();
  });
  s.spawn("busy", [&] {
    for (int i = 0; i < 3000; ++i) {
      busy_while_asleep += asleep;
      schedule_point(Point::kUser, &busy_while_asleep);
    }
  });
  ASSERT_EQ(s.run(), DetOutcome::kDone);
  EXPECT_GE(after - before, 1'000'000u);
  // 1 ms at 1 us per step: the busy worker ran ~1000 steps meanwhile.
  EXPECT_GE(busy_while_asleep, 999);
  // Somebody was always ready: time never jumped.
  EXPECT_EQ(s.virtual_now_ns(), s.steps() * o.step_ns);
}

TEST_P(DetSchedPolicyTest, OnlySleepersFinishByJumpingTime) {
  DetScheduler s(options(GetParam(), 5));
  constexpr std::uint64_t kSecondNs = 1'000'000'000;
  std::vector<std::uint64_t> shortest(3, ~std::uint64_t{0});
  for (int w = 0; w < 3; ++w) {
    s.spawn("sleeper" + std::to_string(w), [&s, &shortest, w] {
      for (int i = 0; i < 5; ++i) {
        const std::uint64_t t0 = s.virtual_now_ns();
        schedule_point(Point::kIo, nullptr, 1'000'000);  // 1 s
        shortest[w] = std::min(shortest[w], s.virtual_now_ns() - t0);
      }
    });
  }
  ASSERT_EQ(s.run(), DetOutcome::kDone);
  EXPECT_EQ(s.steps(), 15u);
  EXPECT_GE(s.virtual_now_ns(), 5 * kSecondNs);
  EXPECT_LT(s.virtual_now_ns(), 5 * kSecondNs + 1'000'000);
  for (std::uint64_t d : shortest) EXPECT_GE(d, kSecondNs);
}

// ---- 5. spawning from a worker ----

TEST_P(DetSchedPolicyTest, WorkersSpawnWorkers) {
  auto once = [](Policy p) {
    DetScheduler s(options(p, 9));
    std::vector<int> child_ids;    // as spawn() returned them
    std::vector<int> seen(3, -2);  // as each child saw itself
    int grandchild_id = -2, grandchild_seen = -3;
    s.spawn("parent", [&] {
      for (int c = 0; c < 3; ++c) {
        child_ids.push_back(s.spawn("child" + std::to_string(c), [&, c] {
          seen[static_cast<std::size_t>(c)] = DetScheduler::current_worker();
          schedule_point(Point::kUser, nullptr);
          if (c == 0) {
            grandchild_id = s.spawn("grandchild", [&] {
              grandchild_seen = DetScheduler::current_worker();
              schedule_point(Point::kUser, nullptr);
            });
          }
        }));
        schedule_point(Point::kUser, nullptr);
      }
    });
    s.spawn("sibling", [] {
      for (int i = 0; i < 5; ++i) schedule_point(Point::kUser, nullptr);
    });
    EXPECT_EQ(s.run(), DetOutcome::kDone);
    // Ids continue from 2 in spawn order, whoever spawns.
    std::vector<int> all = child_ids;
    all.push_back(grandchild_id);
    std::sort(all.begin(), all.end());
    EXPECT_EQ(all, (std::vector<int>{2, 3, 4, 5}));
    EXPECT_TRUE(std::is_sorted(child_ids.begin(), child_ids.end()));
    EXPECT_EQ(seen, child_ids);
    EXPECT_EQ(grandchild_seen, grandchild_id);
    EXPECT_EQ(s.steps(), 3u + 5u + 3u + 1u);
    EXPECT_TRUE(s.unfinished_workers().empty());
    return s.digest();
  };
  EXPECT_EQ(once(GetParam()), once(GetParam()));
}

// ---- 6. 100,000 fibers ----

TEST_F(DetSchedTest, HundredThousandFibers) {
  const int n = std::min(100'000, fl::testing::kMaxTestFibers);
  const long rss_before = rss_kib();
  std::uint64_t finished = 0;
  {
    DetScheduler s(options(Policy::kRandom, 1));
    for (int i = 0; i < n; ++i) {
      s.spawn(fmt::format("f{}", i), [&finished] {
        for (int j = 0; j < 3; ++j) schedule_point(Point::kUser, &finished);
        ++finished;
      });
    }
    ASSERT_EQ(s.run(), DetOutcome::kDone);
    EXPECT_EQ(s.steps(), 3u * static_cast<std::uint64_t>(n));
    // Measured while the pool still holds every stack it carved.
    const long grown_kib = rss_kib() - rss_before;
    std::printf("%d fibers: RSS grew by %ld MiB (%ld KiB per fiber)\n", n, grown_kib / 1024,
                grown_kib / n);
    RecordProperty("rss_growth_kib", std::to_string(grown_kib));
#if !defined(FL_TEST_TSAN) && !defined(FL_TEST_ASAN)
    // A live fiber commits the top of its stack (context record, a few
    // frames, its actor): two pages measured here, nowhere near its 64 KiB.
    // (Sanitizers' shadow memory counts in RSS too, so only plain builds.)
    EXPECT_LT(grown_kib / n, 16);
#endif
  }
  EXPECT_EQ(finished, static_cast<std::uint64_t>(n));
}

// Stacks of a finished run are kept mapped for the next: a second run of as
// many fibers faults in almost none of its stacks' pages again.  Counted in
// page faults, so built without sanitizers only: theirs fault in shadow
// pages of their own.
#if !defined(FL_TEST_TSAN) && !defined(FL_TEST_ASAN)
TEST_F(DetSchedTest, StacksOfFinishedRunsAreReused) {
  constexpr int kFibers = 5000;
  auto run = [] {
    DetScheduler s(options(Policy::kRandom, 1));
    for (int i = 0; i < kFibers; ++i) s.spawn("f", [] { schedule_point(Point::kUser, nullptr); });
    EXPECT_EQ(s.run(), DetOutcome::kDone);
  };
  auto faults = [] {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
  };
  run();
  const long before = faults();
  run();
  const long second = faults() - before;
  std::printf("second run of %d fibers: %ld page faults\n", kFibers, second);
  // Without reuse: two or more per fiber.
  EXPECT_LT(second, kFibers / 2);
}
#endif

// ---- 7. PCT finds a depth-2 bug that random scheduling misses ----

// The bug needs two orderings: B's read after A's step 20 (A wrote 1) and
// before A's step 40 (A writes 2).  Random scheduling lets B in within a few
// steps; PCT with d = 2 finds it when A has the higher priority and the one
// change point falls in A's steps 21..40: 1/2 x 20/45 of seeds.
bool depth_two_bug(Policy p, std::uint64_t seed, std::uint64_t* digest) {
  DetOptions o = options(p, seed);
  o.pct_depth = 2;
  o.pct_expected_steps = 45;
  DetScheduler s(o);
  int x = 0;
  bool bug = false;
  s.spawn("A", [&x] {
    for (int i = 1; i <= 40; ++i) {
      schedule_point(Point::kUser, &x);
      if (i == 20) x = 1;
    }
    x = 2;
  });
  s.spawn("B", [&x, &bug] {
    schedule_point(Point::kUser, &x);
    bug = x == 1;  // the "assertion" that fails
  });
  EXPECT_EQ(s.run(), DetOutcome::kDone);
  *digest = s.digest();
  return bug;
}

TEST_F(DetSchedTest, PctFindsDepthTwoBugRandomMisses) {
  int found[3] = {0, 0, 0};
  std::set<std::uint64_t> digests[3];
  for (Policy p : kPolicies) {
    for (std::uint64_t seed = 1; seed <= 100; ++seed) {
      std::uint64_t d = 0;
      found[static_cast<int>(p)] += depth_two_bug(p, seed, &d);
      digests[static_cast<int>(p)].insert(d);
    }
  }
  std::printf("depth-2 bug found in %d of 100 seeds by random, %d by pct, %d by pos\n", found[0], found[1], found[2]);
  EXPECT_GE(found[1], 1);
  EXPECT_GT(found[1], found[0]);
  EXPECT_NE(digests[0], digests[1]);
}

// The starvation guard: a high-priority spinner that waits for a
// lower-priority worker must not spin forever.
TEST_F(DetSchedTest, PctStarvationGuardLetsLowPriorityRun) {
  bool guard_used = false;
  for (std::uint64_t seed = 1; seed <= 10; ++seed) {
    DetOptions o = options(Policy::kPct, seed);
    o.pct_depth = 1;  // no change points: only the guard can unstick it
    o.max_steps = 100'000;
    DetScheduler s(o);
    bool flag = false;
    s.spawn("spinner", [&flag] {
      while (!flag) schedule_point(Point::kTryLock, &flag);
    });
    s.spawn("setter", [&flag] {
      schedule_point(Point::kUser, &flag);
      flag = true;
    });
    ASSERT_EQ(s.run(), DetOutcome::kDone) << "seed " << seed;
    guard_used |= s.steps() >= DetScheduler::kStarvationSteps;
  }
  EXPECT_TRUE(guard_used) << "no seed gave the spinner the higher priority";
}

// ---- 8. the step limit ----

TEST_P(DetSchedPolicyTest, MaxStepsStopsTheRun) {
  DetOptions o = options(GetParam(), 2);
  o.max_steps = 500;
  {
    DetScheduler s(o);
    for (const char* name : {"spin-a", "spin-b"}) {
      s.spawn(name, [] {
        for (;;) schedule_point(Point::kUser, nullptr);
      });
    }
    ASSERT_EQ(s.run(), DetOutcome::kStepLimit);
    EXPECT_EQ(s.steps(), 500u);
    EXPECT_EQ(s.unfinished_workers(), (std::vector<std::string>{"spin-a", "spin-b"}));
    const std::vector<SchedEvent> ev = s.last_events(3);
    ASSERT_EQ(ev.size(), 3u);
    EXPECT_EQ(ev[2].step, 500u);
    EXPECT_EQ(ev[0].step, 498u);
  }  // its thread stays parked
  // The process goes on: a later run works.
  DetScheduler again(options(GetParam(), 2));
  again.spawn("after", [] { schedule_point(Point::kUser, nullptr); });
  EXPECT_EQ(again.run(), DetOutcome::kDone);
  EXPECT_EQ(again.steps(), 1u);
}

// Liveness in steps: workers that keep reaching schedule points while the
// progress count stands still end the run with kStall, within 1,024 steps
// of the limit; one that makes progress every few steps is never stopped.
TEST_P(DetSchedPolicyTest, NoProgressForStallStepsStopsTheRun) {
  std::atomic<std::uint64_t> done{0};
  DetOptions o = options(GetParam(), 3);
  o.stall_steps = 20000;
  o.progress = [&done] { return done.load(); };
  {
    DetScheduler s(o);
    std::uint64_t stopped_at = 0;  // the step of the last progress
    s.spawn("worker", [&done, &s, &stopped_at] {
      for (int i = 0; i < 5000; ++i) {  // progress for 5,000 of its steps, then none
        schedule_point(Point::kUser, nullptr);
        done.fetch_add(1);
      }
      stopped_at = s.steps();
      for (;;) schedule_point(Point::kTryLock, nullptr);
    });
    s.spawn("spinner", [] {
      for (;;) schedule_point(Point::kUser, nullptr);
    });
    ASSERT_EQ(s.run(), DetOutcome::kStall);
    EXPECT_GE(stopped_at, 5000u);
    EXPECT_GE(s.steps(), stopped_at + 20000u - 1024u);
    EXPECT_LE(s.steps(), stopped_at + 20000u + 2048u);
    EXPECT_EQ(done.load(), 5000u);
  }  // its thread stays parked
  done.store(0);
  DetScheduler busy(o);
  busy.spawn("busy", [&done] {
    for (int i = 0; i < 60000; ++i) {
      schedule_point(Point::kUser, nullptr);
      if (i % 7 == 0) done.fetch_add(1);
    }
  });
  EXPECT_EQ(busy.run(), DetOutcome::kDone);
}

// kRandom picks among the ready workers and the one that reached the point:
// with two always-ready workers, about half the steps keep the same worker.
TEST_F(DetSchedTest, RandomMayKeepTheYieldingWorker) {
  DetScheduler s(options(Policy::kRandom, 6));
  for (int w = 0; w < 2; ++w) {
    s.spawn("w" + std::to_string(w), [] {
      for (int i = 0; i < 2000; ++i) schedule_point(Point::kUser, nullptr);
    });
  }
  ASSERT_EQ(s.run(), DetOutcome::kDone);
  // A switch means the other worker was picked; always switching (or never)
  // would make this near 1 (or 0).
  const double switched = static_cast<double>(s.switches()) / static_cast<double>(s.steps());
  EXPECT_GT(switched, 0.4);
  EXPECT_LT(switched, 0.6);
}

// ---- the rest of the interface ----

TEST_F(DetSchedTest, CurrentWorkerAndEvents) {
  EXPECT_EQ(DetScheduler::current_worker(), -1);
  DetOptions o = options(Policy::kRandom, 4);
  o.step_ns = 10;
  DetScheduler s(o);
  std::vector<int> ran;  // the worker that passed each step, as it saw itself
  for (int w = 0; w < 3; ++w) {
    s.spawn("w" + std::to_string(w), [&ran, w] {
      EXPECT_EQ(DetScheduler::current_worker(), w);
      for (int i = 0; i < 4; ++i) {
        ran.push_back(DetScheduler::current_worker());
        schedule_point(i == 3 ? Point::kWakeup : Point::kUser, nullptr);
      }
    });
  }
  ASSERT_EQ(s.run(), DetOutcome::kDone);
  EXPECT_EQ(DetScheduler::current_worker(), -1);
  const std::vector<SchedEvent> ev = s.last_events(100);
  ASSERT_EQ(ev.size(), 12u);
  for (std::size_t i = 0; i < ev.size(); ++i) {
    EXPECT_EQ(ev[i].step, i + 1);
    EXPECT_EQ(ev[i].worker, ran[i]);
    EXPECT_EQ(ev[i].vtime_ns, 10 * (i + 1));
  }
  EXPECT_EQ(std::count_if(ev.begin(), ev.end(),
                          [](const SchedEvent& e) { return e.point == Point::kWakeup; }),
            3);
  EXPECT_EQ(s.last_events(5).front().step, 8u);
  EXPECT_STREQ(det_outcome_name(DetOutcome::kStepLimit), "step-limit");
}

TEST_F(DetSchedTest, RejectsMisuse) {
  DetOptions bad;
  bad.pct_depth = 0;
  EXPECT_THROW(DetScheduler{bad}, std::invalid_argument);
  bad = DetOptions{};
  bad.stack_bytes = 4096;
  EXPECT_THROW(DetScheduler{bad}, std::invalid_argument);

  DetScheduler s(DetOptions{});
  fl::set_backend(fl::Backend::kStd);
  EXPECT_THROW(s.run(), std::logic_error);  // a thread backend would block the run's thread
  fl::set_backend(fl::Backend::kFiber);
  EXPECT_EQ(s.run(), DetOutcome::kDone);  // no workers: done at once
  EXPECT_THROW(s.run(), std::logic_error);
  EXPECT_THROW(s.spawn("late", [] {}), std::logic_error);
}

}  // namespace
}  // namespace faultline::stress
