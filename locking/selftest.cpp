// locking_selftest: the lock checker's own scenario suite, organised like
// Linux's lockdep boot-time selftests (lib/locking-selftest.c) and run the
// way a user would: every scenario is a small program of lock operations
// with the verdict it must get, run on OS threads and on fibers, and printed
// as a matrix of expected and actual verdicts.  Exit status 0 if every
// verdict matches.
//
//   locking_selftest            the matrix, then the concurrent legal patterns
//   locking_selftest --list     scenario names only
//   locking_selftest --child N  (internal) run scenario N alone: abort checks
//
// A verdict is the set of report kinds a scenario produced ("none" if it
// produced none), or "abort: <kind>" for a scenario whose process must die
// (abort mode, or misuse in off mode), which runs in a child process.
//
// Order scenarios take each pair of locks on fresh instances in a new actor
// (like lockdep's ABBA_2threads), so no instance-level cycle exists: only a
// class-level checker can see them, and the sanitizers' own deadlock
// detectors stay quiet.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/fiber/all.hpp>

#include "locking/locking.h"

extern char** environ;

namespace fl = faultline::locking;

namespace {

using fl::LockClass;
using fl::LockKind;
using fl::Mutex;
using fl::ReportKind;
using fl::SxLock;

// ---- verdicts ----

const char* short_kind(ReportKind k) {
  switch (k) {
    case ReportKind::kOrderReversal: return "reversal";
    case ReportKind::kSameClass: return "same-class";
    case ReportKind::kSleepWithLock: return "sleep";
    case ReportKind::kRecursion: return "recursion";
    case ReportKind::kNotOwned: return "not-owned";
    case ReportKind::kDestroyHeld: return "destroy-held";
    case ReportKind::kAssertion: return "assertion";
    case ReportKind::kDeclaredOrder: return "declared";
    case ReportKind::kExitHeld: return "exit-held";
    case ReportKind::kClassInUse: return "class-in-use";
    case ReportKind::kWrongKind: return "wrong-kind";
    case ReportKind::kLimit: return "limit";
    case ReportKind::kDuplicateName: return "dup-name";
  }
  return "?";
}

constexpr ReportKind kAllKinds[] = {
    ReportKind::kOrderReversal, ReportKind::kSameClass,  ReportKind::kSleepWithLock, ReportKind::kRecursion,
    ReportKind::kNotOwned,      ReportKind::kDestroyHeld, ReportKind::kAssertion,     ReportKind::kDeclaredOrder,
    ReportKind::kExitHeld,      ReportKind::kClassInUse, ReportKind::kWrongKind,     ReportKind::kLimit,
    ReportKind::kDuplicateName};

std::string verdict_of(const fl::ScopedReportCapture& cap) {
  std::string v;
  for (ReportKind k : kAllKinds) {
    const std::size_t n = cap.count(k);
    if (n == 0) continue;
    if (!v.empty()) v += "+";
    v += short_kind(k);
    if (n > 1) v += "x" + std::to_string(n);
  }
  return v.empty() ? "none" : v;
}

// ---- actors: the same scenario on OS threads and on fibers ----

enum class Exec { kThreads, kFibers };
const char* exec_name(Exec e) { return e == Exec::kThreads ? "threads" : "fibers"; }

void yield_now(Exec e) {
  if (e == Exec::kFibers)
    boost::this_fiber::yield();
  else
    std::this_thread::yield();
}

// Runs fn in a new named actor (a thread, or a fiber of this thread) and
// waits for it.
void in_actor(Exec e, const std::string& name, const std::function<void()>& fn) {
  auto body = [&] {
    fl::ActorScope scope(name);
    fn();
  };
  if (e == Exec::kThreads) {
    std::thread t(body);
    t.join();
  } else {
    boost::fibers::fiber f(body);
    f.join();
  }
}

// Starts fn in a new named actor and returns a joiner.
std::function<void()> start_actor(Exec e, const std::string& name, std::function<void()> fn) {
  auto body = [name, fn = std::move(fn)] {
    fl::ActorScope scope(name);
    fn();
  };
  if (e == Exec::kThreads) {
    auto t = std::make_shared<std::thread>(body);
    return [t] { t->join(); };
  }
  auto f = std::make_shared<boost::fibers::fiber>(body);
  return [f] { f->join(); };
}

// ---- lock flavours ----

enum class Flavour { kMutex, kSxExclusive, kSxShared };
const char* flavour_name(Flavour f) {
  switch (f) {
    case Flavour::kMutex: return "mutex";
    case Flavour::kSxExclusive: return "sx-x";
    case Flavour::kSxShared: return "sx-s";
  }
  return "?";
}

LockClass m_class[4] = {{"selftest A", LockKind::kMutex},
                        {"selftest B", LockKind::kMutex},
                        {"selftest C", LockKind::kMutex},
                        {"selftest D", LockKind::kMutex}};
LockClass s_class[4] = {{"selftest sx A", LockKind::kSx},
                        {"selftest sx B", LockKind::kSx},
                        {"selftest sx C", LockKind::kSx},
                        {"selftest sx D", LockKind::kSx}};
LockClass chain_class{"selftest chain", LockKind::kMutex, fl::SameClass::kOrdered};
LockClass flat_class{"selftest flat", LockKind::kMutex};
LockClass table_class{"selftest table", LockKind::kMutex};
LockClass bucket_class{"selftest bucket", LockKind::kMutex};

// One lock of either type, taken in the flavour's mode.
struct AnyLock {
  AnyLock(Flavour f, int cls, const char* name) : flavour(f) {
    if (f == Flavour::kMutex)
      m = std::make_unique<Mutex>(m_class[cls], name);
    else
      s = std::make_unique<SxLock>(s_class[cls], name);
  }
  void lock() FL_NO_THREAD_SAFETY_ANALYSIS {
    if (m) m->lock();
    else if (flavour == Flavour::kSxShared) s->slock();
    else s->xlock();
  }
  void unlock() FL_NO_THREAD_SAFETY_ANALYSIS {
    if (m) m->unlock();
    else if (flavour == Flavour::kSxShared) s->sunlock();
    else s->xunlock();
  }
  Flavour flavour;
  std::unique_ptr<Mutex> m;
  std::unique_ptr<SxLock> s;
};

// ---- the scenario table ----

struct Scenario {
  std::string family, name, lock, expected;
  bool child = false;  // must die: run in a child process
  Exec exec = Exec::kThreads;
  std::function<void(Exec)> body;
};

std::vector<Scenario> g_scenarios;

void add(std::string family, std::string name, std::string lock, std::string expected,
         std::function<void(Exec)> body, bool child = false) {
  for (Exec e : {Exec::kThreads, Exec::kFibers})
    g_scenarios.push_back(Scenario{family, name, lock, expected, child, e, body});
}

// Takes `pairs` of classes (indices), each pair on fresh instances in a new
// actor: "AB BA" is {{0,1},{1,0}}.
void pairs_body(Exec e, Flavour f, std::vector<std::pair<int, int>> pairs) {
  int n = 0;
  for (auto [x, y] : pairs) {
    AnyLock a(f, x, "first"), b(f, y, "second");
    in_actor(e, "pair " + std::to_string(++n), [&] {
      a.lock();
      b.lock();
      b.unlock();
      a.unlock();
    });
  }
}

void add_order_patterns() {
  struct P {
    const char* name;
    std::vector<std::pair<int, int>> pairs;
  };
  const P patterns[] = {
      {"ABBA", {{0, 1}, {1, 0}}},
      {"ABBCCA", {{0, 1}, {1, 2}, {2, 0}}},
      {"ABCABC", {{0, 1}, {2, 0}, {1, 2}}},
      {"ABBCCDDA", {{0, 1}, {1, 2}, {2, 3}, {3, 0}}},
      {"ABCDBDDA", {{0, 1}, {2, 3}, {1, 3}, {3, 0}}},
      {"ABCDBCDA", {{0, 1}, {2, 3}, {1, 2}, {3, 0}}},
  };
  for (Flavour f : {Flavour::kMutex, Flavour::kSxExclusive, Flavour::kSxShared}) {
    // AA: a second acquisition of a lock already held (sx shared too: sx(9)
    // without SX_RECURSE, and with a writer queued it would wait for itself).
    add("order", "AA", flavour_name(f), "recursion", [f](Exec e) {
      AnyLock a(f, 0, "a");
      in_actor(e, "aa", [&] {
        a.lock();
        a.lock();
        a.unlock();
      });
    });
    for (const P& p : patterns) {
      // A cycle of shared holds deadlocks too: sx prefers writers, so a
      // queued writer stops the second reader (as lockdep treats rwsem reads).
      add("order", p.name, flavour_name(f), "reversal",
          [f, pairs = p.pairs](Exec e) { pairs_body(e, f, pairs); });
    }
  }
  // The order patterns' legal twin: the same pairs, never closing the cycle.
  for (Flavour f : {Flavour::kMutex, Flavour::kSxExclusive, Flavour::kSxShared})
    add("order", "AB BC CD (no cycle)", flavour_name(f), "none",
        [f](Exec e) { pairs_body(e, f, {{0, 1}, {1, 2}, {2, 3}, {0, 3}}); });
}

void add_read_write_cycles() {
  // ABBA where each acquisition is shared (R) or exclusive (W): every mix
  // closes a cycle that can deadlock on a writer-preferring sx lock.
  const char* mixes[] = {"WR/RW", "RW/WR", "RR/WW", "WW/RR", "RW/RW", "WR/WR"};
  for (const char* mix : mixes) {
    add("rw-cycle", std::string("ABBA ") + mix, "sx", "reversal", [mix](Exec e) {
      auto flav = [](char c) { return c == 'R' ? Flavour::kSxShared : Flavour::kSxExclusive; };
      {
        AnyLock a(flav(mix[0]), 0, "a"), b(flav(mix[1]), 1, "b");
        in_actor(e, "first", [&] {
          a.lock();
          b.lock();
          b.unlock();
          a.unlock();
        });
      }
      AnyLock b(flav(mix[3]), 1, "b"), a(flav(mix[4]), 0, "a");
      in_actor(e, "second", [&] {
        b.lock();
        a.lock();
        a.unlock();
        b.unlock();
      });
    });
  }
}

void add_misuse() {
  for (Flavour f : {Flavour::kMutex, Flavour::kSxExclusive, Flavour::kSxShared}) {
    add("misuse", "double unlock", flavour_name(f), "not-owned", [f](Exec e) {
      AnyLock a(f, 0, "a");
      in_actor(e, "twice", [&] {
        a.lock();
        a.unlock();
        a.unlock();
      });
    });
    add("misuse", "unlock by another actor", flavour_name(f), "not-owned", [f](Exec e) {
      AnyLock a(f, 0, "a");
      std::atomic<int> step{0};
      auto join = start_actor(e, "holder", [&] {
        a.lock();
        step = 1;
        while (step != 2) yield_now(e);
        a.unlock();
      });
      while (step != 1) yield_now(e);
      in_actor(e, "stranger", [&] { a.unlock(); });
      step = 2;
      join();
    });
    add("misuse", "destroy held (own)", flavour_name(f), "destroy-held", [f](Exec e) {
      in_actor(e, "destroyer", [&] {
        auto a = std::make_unique<AnyLock>(f, 0, "doomed");
        AnyLock after(Flavour::kMutex, 1, "after");
        a->lock();
        a.reset();
        after.lock();  // walks the held stack: the dead lock must be off it
        after.unlock();
      });
    });
    add("misuse", "destroy held (another's)", flavour_name(f), "destroy-held", [f](Exec e) {
      auto a = std::make_unique<AnyLock>(f, 0, "doomed");
      AnyLock after(Flavour::kMutex, 1, "after");
      std::atomic<int> step{0};
      auto join = start_actor(e, "holder", [&] {
        a->lock();
        step = 1;
        while (step != 2) yield_now(e);
        after.lock();
        after.unlock();
      });
      while (step != 1) yield_now(e);
      a.reset();
      step = 2;
      join();
    });
    // The actor's locks stay held (by the dead actor) until destroyed, which
    // is itself reported: a lock held by a dead actor is still held.
    add("misuse", "actor ends holding, lock destroyed", flavour_name(f), "destroy-held+exit-held", [f](Exec e) {
      auto a = std::make_unique<AnyLock>(f, 0, "leaked");
      in_actor(e, "leaver", [&] { a->lock(); });
      in_actor(e, "later", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
        if (a->m ? a->m->try_lock() : a->s->try_xlock()) std::abort();  // not anybody else's
      });
      a.reset();
    });
  }
  add("misuse", "exclusive unlock of a shared hold", "sx", "not-owned", [](Exec e) {
    SxLock s(s_class[0], "s");
    in_actor(e, "wrong mode", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      s.slock();
      s.xunlock();
      s.sunlock();
    });
  });
  add("misuse", "shared unlock of an exclusive hold", "sx", "not-owned", [](Exec e) {
    SxLock s(s_class[0], "s");
    in_actor(e, "wrong mode", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      s.xlock();
      s.sunlock();
      s.xunlock();
    });
  });
  add("misuse", "exclusive while holding shared", "sx", "recursion", [](Exec e) {
    SxLock s(s_class[0], "s");
    in_actor(e, "upgrade by lock", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      s.slock();
      s.xlock();  // would wait for itself
      s.sunlock();
    });
  });
  add("misuse", "lock of the wrong kind", "mutex", "wrong-kind", [](Exec e) {
    in_actor(e, "builder", [&] { Mutex m(s_class[0], "mutex on an sx class"); });
  });
}

void add_trylock() {
  for (Flavour f : {Flavour::kMutex, Flavour::kSxExclusive, Flavour::kSxShared}) {
    add("trylock", "try own lock", flavour_name(f), "recursion", [f](Exec e) {
      AnyLock a(f, 0, "a");
      in_actor(e, "self", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
        a.lock();
        const bool got = a.m ? a.m->try_lock() : f == Flavour::kSxShared ? a.s->try_slock() : a.s->try_xlock();
        if (got) std::abort();
        a.unlock();
      });
    });
    add("trylock", "try a lock held elsewhere", flavour_name(f), "none", [f](Exec e) {
      AnyLock a(f, 0, "a");
      std::atomic<int> step{0};
      auto join = start_actor(e, "holder", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
        if (a.m) a.m->lock(); else a.s->xlock();
        step = 1;
        while (step != 2) yield_now(e);
        if (a.m) a.m->unlock(); else a.s->xunlock();
      });
      while (step != 1) yield_now(e);
      in_actor(e, "trier", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
        const bool got = a.m ? a.m->try_lock() : f == Flavour::kSxShared ? a.s->try_slock() : a.s->try_xlock();
        if (got) std::abort();
      });
      step = 2;
      join();
    });
    add("trylock", "reverse order by try-lock", flavour_name(f), "none", [f](Exec e) {
      pairs_body(e, f, {{0, 1}});
      AnyLock b(f, 1, "b"), a(f, 0, "a");
      in_actor(e, "reverser", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
        b.lock();
        const bool got = a.m ? a.m->try_lock() : f == Flavour::kSxShared ? a.s->try_slock() : a.s->try_xlock();
        if (!got) std::abort();
        a.unlock();
        b.unlock();
      });
    });
  }
  add("trylock", "try shared with a writer queued", "sx", "none", [](Exec e) {
    SxLock s(s_class[0], "s");
    std::atomic<int> step{0};
    auto reader = start_actor(e, "reader", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      s.slock();
      step = 1;
      while (step != 2) yield_now(e);
      s.sunlock();
    });
    while (step != 1) yield_now(e);
    auto writer = start_actor(e, "writer", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      s.xlock();
      s.xunlock();
    });
    while (s.exclusive_waiters() == 0) yield_now(e);
    in_actor(e, "late reader", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      if (s.try_slock()) std::abort();  // writers first
    });
    step = 2;
    reader();
    writer();
  });
  add("trylock", "upgrade as the sole sharer", "sx", "none", [](Exec e) {
    SxLock s(s_class[0], "s");
    in_actor(e, "upgrader", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      s.slock();
      if (!s.try_upgrade()) std::abort();
      s.downgrade();
      s.sunlock();
    });
  });
  add("trylock", "upgrade with another sharer", "sx", "none", [](Exec e) {
    SxLock s(s_class[0], "s");
    std::atomic<int> step{0};
    auto other = start_actor(e, "other reader", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      s.slock();
      step = 1;
      while (step != 2) yield_now(e);
      s.sunlock();
    });
    while (step != 1) yield_now(e);
    in_actor(e, "upgrader", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      s.slock();
      if (s.try_upgrade()) std::abort();
      s.sunlock();
    });
    step = 2;
    other();
  });
}

int g_chan;

void add_sleep_rules() {
  add("sleep", "sleep holding a mutex", "mutex", "sleep", [](Exec e) {
    Mutex other(m_class[0], "other"), inter(m_class[1], "interlock");
    in_actor(e, "sleeper", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      other.lock();
      inter.lock();
      fl::msleep(&g_chan, inter, "stsleep", std::chrono::microseconds(200));
      inter.unlock();
      other.unlock();
    });
  });
  add("sleep", "sleep holding only the interlock", "mutex", "none", [](Exec e) {
    Mutex inter(m_class[1], "interlock");
    in_actor(e, "sleeper", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      inter.lock();
      fl::msleep(&g_chan, inter, "stsleep", std::chrono::microseconds(200));
      inter.unlock();
    });
  });
  add("sleep", "sleep holding an sx lock", "sx", "none", [](Exec e) {
    SxLock s(s_class[0], "map");
    Mutex inter(m_class[1], "interlock");
    in_actor(e, "sleeper", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      s.slock();
      inter.lock();
      fl::msleep(&g_chan, inter, "stsleep", std::chrono::microseconds(200));
      inter.unlock();
      s.sunlock();
    });
  });
  add("sleep", "sx under a mutex", "mutex+sx", "sleep", [](Exec e) {
    Mutex m(m_class[0], "m");
    SxLock s(s_class[0], "s");
    in_actor(e, "inverted", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      m.lock();
      s.xlock();
      s.xunlock();
      m.unlock();
    });
  });
  add("sleep", "mutex under an sx lock", "mutex+sx", "none", [](Exec e) {
    Mutex m(m_class[0], "m");
    SxLock s(s_class[0], "s");
    in_actor(e, "map then object", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      s.slock();
      m.lock();
      m.unlock();
      s.sunlock();
    });
  });
  add("sleep", "reported sx-under-mutex is not an order", "mutex+sx", "sleep", [](Exec e) {
    Mutex m(m_class[0], "m");
    SxLock s(s_class[0], "s");
    in_actor(e, "inverted", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      m.lock();
      s.xlock();
      s.xunlock();
      m.unlock();
    });
    in_actor(e, "legal", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      s.xlock();
      m.lock();  // no reversal blamed on the legal order
      m.unlock();
      s.xunlock();
    });
  });
}

void add_declared() {
  add("declared", "declared order then the reverse", "mutex", "reversal", [](Exec e) {
    fl::witness::declare_order({&m_class[0], &m_class[1]});
    Mutex a(m_class[0], "a"), b(m_class[1], "b");
    in_actor(e, "reverser", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      b.lock();
      a.lock();
      a.unlock();
      b.unlock();
    });
  });
  add("declared", "declared order followed", "mutex", "none", [](Exec e) {
    fl::witness::declare_order({&m_class[0], &m_class[1], &m_class[2]});
    pairs_body(e, Flavour::kMutex, {{0, 2}, {1, 2}, {0, 1}});
  });
  add("declared", "declaration against an observed order", "mutex", "declared", [](Exec e) {
    pairs_body(e, Flavour::kMutex, {{1, 0}});
    fl::witness::declare_order({&m_class[0], &m_class[1]});
  });
}

void add_same_class() {
  add("same-class", "two of a plain class", "mutex", "same-class", [](Exec e) {
    Mutex a(flat_class, "a"), b(flat_class, "b");
    in_actor(e, "nester", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      a.lock();
      b.lock();
      b.unlock();
      a.unlock();
    });
  });
  add("same-class", "ordered class, rising keys", "mutex", "none", [](Exec e) {
    Mutex c[4] = {Mutex(chain_class, "c0"), Mutex(chain_class, "c1"), Mutex(chain_class, "c2"),
                  Mutex(chain_class, "c3")};
    in_actor(e, "hand over hand", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      c[0].lock_nested(1);
      for (int i = 1; i < 4; ++i) {
        c[i].lock_nested(static_cast<std::uint32_t>(i + 1));
        c[i - 1].unlock();
      }
      c[3].unlock();
    });
  });
  add("same-class", "ordered class, falling keys", "mutex", "same-class", [](Exec e) {
    Mutex a(chain_class, "a"), b(chain_class, "b");
    in_actor(e, "backwards", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      a.lock_nested(2);
      b.lock_nested(1);
      b.unlock();
      a.unlock();
    });
  });
  add("same-class", "nest lock held", "mutex", "none", [](Exec e) {
    Mutex table(table_class, "table"), b0(bucket_class, "b0"), b1(bucket_class, "b1"), b2(bucket_class, "b2");
    in_actor(e, "rehash", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      table.lock();
      b2.lock_nest_lock(table);
      b0.lock_nest_lock(table);
      b1.lock_nest_lock(table);
      b0.unlock();
      b1.unlock();
      b2.unlock();
      table.unlock();
    });
  });
  add("same-class", "nest lock not held", "mutex", "same-class", [](Exec e) {
    Mutex table(table_class, "table"), b0(bucket_class, "b0"), b1(bucket_class, "b1");
    in_actor(e, "rehash", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      b0.lock();
      b1.lock_nest_lock(table);  // the nest lock is not held: no excuse
      b1.unlock();
      b0.unlock();
    });
  });
}

void add_modes() {
  add("modes", "off: ABBA goes unseen", "mutex", "none", [](Exec e) {
    fl::set_mode(fl::Mode::kOff);
    pairs_body(e, Flavour::kMutex, {{0, 1}, {1, 0}});
    fl::set_mode(fl::Mode::kReport);
  });
  add("modes", "off: double unlock", "mutex", "abort: not-owned", [](Exec e) {
    fl::set_mode(fl::Mode::kOff);
    Mutex a(m_class[0], "a");
    in_actor(e, "twice", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      a.lock();
      a.unlock();
      a.unlock();
    });
  }, true);
  add("modes", "off: another reader's shared hold released", "sx", "abort: not-owned", [](Exec e) {
    fl::set_mode(fl::Mode::kOff);
    SxLock s(s_class[0], "s");
    std::atomic<int> step{0};
    auto join = start_actor(e, "reader", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      s.slock();
      step = 1;
      while (step != 2) yield_now(e);
      s.sunlock();
    });
    while (step != 1) yield_now(e);
    in_actor(e, "stranger", [&]() FL_NO_THREAD_SAFETY_ANALYSIS { s.sunlock(); });
    step = 2;
    join();
  }, true);
  add("modes", "off: shared recursion with a writer queued", "sx", "abort: recursion", [](Exec e) {
    fl::set_mode(fl::Mode::kOff);
    SxLock s(s_class[0], "s");
    in_actor(e, "reader", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      s.slock();
      auto writer = start_actor(e, "writer", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
        s.xlock();
        s.xunlock();
      });
      while (s.exclusive_waiters() == 0) yield_now(e);
      s.slock();  // would wait behind the writer, who waits for it
      std::abort();
    });
  }, true);
  add("modes", "off: actor ends holding", "mutex", "abort: exit-held", [](Exec e) {
    fl::set_mode(fl::Mode::kOff);
    static Mutex* leaked = new Mutex(m_class[0], "leaked");
    in_actor(e, "leaver", [&]() FL_NO_THREAD_SAFETY_ANALYSIS { leaked->lock(); });
  }, true);
  add("modes", "abort: ABBA", "mutex", "abort: reversal", [](Exec e) {
    fl::set_mode(fl::Mode::kAbort);
    pairs_body(e, Flavour::kMutex, {{0, 1}, {1, 0}});
  }, true);
  add("modes", "abort: actor ends holding", "sx-s", "abort: exit-held", [](Exec e) {
    fl::set_mode(fl::Mode::kAbort);
    static SxLock* leaked = new SxLock(s_class[0], "leaked");
    in_actor(e, "leaver", [&]() FL_NO_THREAD_SAFETY_ANALYSIS { leaked->slock(); });
  }, true);
  add("modes", "switch off and on with locks held", "mutex+sx", "none", [](Exec e) {
    Mutex m(m_class[0], "m");
    SxLock s(s_class[0], "s");
    in_actor(e, "switcher", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      s.slock();
      m.lock();
      fl::set_mode(fl::Mode::kOff);
      m.unlock();
      s.sunlock();
      m.lock();
      fl::set_mode(fl::Mode::kReport);
      m.unlock();
      m.lock();  // no stale entry: no false recursion
      m.unlock();
    });
  });
}

void add_limits() {
  add("limits", "48 locks held", "mutex", "none", [](Exec e) {
    static std::vector<std::string> names;
    for (int i = static_cast<int>(names.size()); i < fl::kMaxHeldLocks + 1; ++i)
      names.push_back("selftest deep " + std::to_string(i));
    std::vector<std::unique_ptr<LockClass>> cls;
    std::vector<std::unique_ptr<Mutex>> ms;
    for (int i = 0; i < fl::kMaxHeldLocks; ++i) {
      cls.push_back(std::make_unique<LockClass>(names[static_cast<std::size_t>(i)].c_str(), LockKind::kMutex));
      ms.push_back(std::make_unique<Mutex>(*cls.back()));
    }
    in_actor(e, "deep", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      for (auto& m : ms) m->lock();
      for (auto it = ms.rbegin(); it != ms.rend(); ++it) (*it)->unlock();
    });
    ms.clear();
  });
  add("limits", "49 locks held: one warning, checker off", "mutex", "limit", [](Exec e) {
    static std::vector<std::string> names;
    for (int i = static_cast<int>(names.size()); i < fl::kMaxHeldLocks + 1; ++i)
      names.push_back("selftest deeper " + std::to_string(i));
    std::vector<std::unique_ptr<LockClass>> cls;
    std::vector<std::unique_ptr<Mutex>> ms;
    for (int i = 0; i < fl::kMaxHeldLocks + 1; ++i) {
      cls.push_back(std::make_unique<LockClass>(names[static_cast<std::size_t>(i)].c_str(), LockKind::kMutex));
      ms.push_back(std::make_unique<Mutex>(*cls.back()));
    }
    in_actor(e, "deeper", [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
      for (auto& m : ms) m->lock();
      for (auto it = ms.rbegin(); it != ms.rend(); ++it) (*it)->unlock();
    });
    ms.clear();
    if (fl::order_checker_enabled()) std::abort();
    pairs_body(e, Flavour::kMutex, {{0, 1}, {1, 0}});  // unseen now
  });
  add("limits", "10,000 short-lived classes", "mutex", "none", [](Exec e) {
    in_actor(e, "class churn", [&] {
      for (int i = 0; i < 10000; ++i) {
        LockClass c("selftest short-lived", LockKind::kMutex);
        Mutex m(c);
        fl::MutexLock l(m);
      }
    });
  });
}

// ---- running ----

std::string run_child(std::size_t index) {
  char path[] = "/tmp/fl-selftest-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return "spawn failed";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fd, 2);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  std::string arg = std::to_string(index);
  char self[] = "/proc/self/exe";
  char flag[] = "--child";
  char* argv[] = {self, flag, arg.data(), nullptr};
  pid_t pid;
  const int rc = posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fd);
  if (rc != 0) {
    unlink(path);
    return "spawn failed";
  }
  int status = 0;
  waitpid(pid, &status, 0);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  unlink(path);
  if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
    return WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status)) : "signal";
  const std::string t = text.str();
  const std::string key = ") after: ";
  const std::size_t at = t.rfind(key);
  if (at == std::string::npos) return "abort: ?";
  std::string name = t.substr(at + key.size());
  name = name.substr(0, name.find('\n'));
  for (ReportKind k : kAllKinds)
    if (name == fl::report_kind_name(k)) return std::string("abort: ") + short_kind(k);
  return "abort: ?";
}

std::string run_here(const Scenario& s) {
  fl::witness::reset();
  if (s.exec == Exec::kFibers) fl::set_backend(fl::Backend::kFiber);
  std::string v;
  {
    fl::ScopedReportCapture cap(fl::Mode::kReport);
    s.body(s.exec);
    v = verdict_of(cap);
  }
  fl::set_backend(fl::Backend::kStd);
  fl::witness::reset();
  return v;
}

// ---- legal patterns, all at once on 8 threads ----

struct Legal {
  SxLock map{s_class[0], "map"};
  Mutex a{m_class[0], "a"}, b{m_class[1], "b"}, c{m_class[2], "c"};
  Mutex chain[4] = {Mutex(chain_class, "c0"), Mutex(chain_class, "c1"), Mutex(chain_class, "c2"),
                    Mutex(chain_class, "c3")};
  Mutex table{table_class, "table"};
  Mutex buckets[3] = {Mutex(bucket_class, "b0"), Mutex(bucket_class, "b1"), Mutex(bucket_class, "b2")};
  int chan = 0;
};

// Each returns after taking and releasing its locks; all respect one order:
// map < a < b < c, chain by key, table < buckets.
using LegalFn = void (*)(Legal&);
const std::pair<const char*, LegalFn> kLegal[] = {
    {"consistent order a b c", [](Legal& l) FL_NO_THREAD_SAFETY_ANALYSIS {
       l.a.lock(); l.b.lock(); l.c.lock(); l.c.unlock(); l.b.unlock(); l.a.unlock(); }},
    {"out-of-order release", [](Legal& l) FL_NO_THREAD_SAFETY_ANALYSIS {
       l.a.lock(); l.b.lock(); l.a.unlock(); l.c.lock(); l.b.unlock(); l.c.unlock(); }},
    {"try-lock against the order", [](Legal& l) FL_NO_THREAD_SAFETY_ANALYSIS {
       l.c.lock(); if (l.a.try_lock()) l.a.unlock(); l.c.unlock(); }},
    {"hand over hand by key", [](Legal& l) FL_NO_THREAD_SAFETY_ANALYSIS {
       l.chain[0].lock_nested(1);
       for (int i = 1; i < 4; ++i) { l.chain[i].lock_nested(static_cast<std::uint32_t>(i + 1)); l.chain[i - 1].unlock(); }
       l.chain[3].unlock(); }},
    {"nest lock", [](Legal& l) FL_NO_THREAD_SAFETY_ANALYSIS {
       l.table.lock(); l.buckets[2].lock_nest_lock(l.table); l.buckets[0].lock_nest_lock(l.table);
       l.buckets[0].unlock(); l.buckets[2].unlock(); l.table.unlock(); }},
    {"shared readers", [](Legal& l) FL_NO_THREAD_SAFETY_ANALYSIS { l.map.slock(); l.map.sunlock(); }},
    {"writer", [](Legal& l) FL_NO_THREAD_SAFETY_ANALYSIS { l.map.xlock(); l.map.xunlock(); }},
    {"map then object", [](Legal& l) FL_NO_THREAD_SAFETY_ANALYSIS {
       l.map.slock(); l.a.lock(); l.b.lock(); l.b.unlock(); l.a.unlock(); l.map.sunlock(); }},
    {"sleep with interlock", [](Legal& l) FL_NO_THREAD_SAFETY_ANALYSIS {
       l.b.lock(); fl::msleep(&l.chan, l.b, "legal", std::chrono::microseconds(20)); l.b.unlock(); }},
    {"sleep holding the map", [](Legal& l) FL_NO_THREAD_SAFETY_ANALYSIS {
       l.map.slock(); l.c.lock(); fl::msleep(&l.chan, l.c, "legal", std::chrono::microseconds(20));
       l.c.unlock(); l.map.sunlock(); }},
    {"upgrade and downgrade", [](Legal& l) FL_NO_THREAD_SAFETY_ANALYSIS {
       l.map.slock(); if (l.map.try_upgrade()) l.map.downgrade(); l.map.sunlock(); }},
    {"wakeup under the interlock", [](Legal& l) FL_NO_THREAD_SAFETY_ANALYSIS {
       l.b.lock(); fl::wakeup(&l.chan); l.b.unlock(); }},
    {"relock after release", [](Legal& l) FL_NO_THREAD_SAFETY_ANALYSIS {
       l.c.lock(); l.c.unlock(); l.a.lock(); l.a.unlock(); l.c.lock(); l.c.unlock(); }},
};

std::string run_legal(Exec e, int actors, int rounds) {
  fl::witness::reset();
  if (e == Exec::kFibers) fl::set_backend(fl::Backend::kFiber);
  std::string v;
  {
    fl::ScopedReportCapture cap(fl::Mode::kReport);
    fl::witness::declare_order({&s_class[0], &m_class[0], &m_class[1], &m_class[2]});
    {
      Legal l;
      std::vector<std::function<void()>> joins;
      constexpr int n = static_cast<int>(std::size(kLegal));
      for (int t = 0; t < actors; ++t)
        joins.push_back(start_actor(e, "legal " + std::to_string(t), [&l, t, rounds, e] {
          for (int r = 0; r < rounds; ++r) {
            kLegal[(t + r) % n].second(l);
            if (e == Exec::kFibers && r % 4 == 0) boost::this_fiber::yield();
          }
        }));
      for (auto& j : joins) j();
    }
    v = verdict_of(cap);
  }
  fl::set_backend(fl::Backend::kStd);
  fl::witness::reset();
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  add_order_patterns();
  add_read_write_cycles();
  add_misuse();
  add_trylock();
  add_sleep_rules();
  add_declared();
  add_same_class();
  add_modes();
  add_limits();

  if (argc == 3 && std::strcmp(argv[1], "--child") == 0) {
    const std::size_t i = std::strtoul(argv[2], nullptr, 10);
    if (i >= g_scenarios.size()) return 2;
    const Scenario& s = g_scenarios[i];
    alarm(20);  // a hang is a mismatch, not a stuck suite
    fl::witness::reset();
    if (s.exec == Exec::kFibers) fl::set_backend(fl::Backend::kFiber);
    fl::set_mode(fl::Mode::kReport);
    s.body(s.exec);
    return 0;  // survived: the parent reports the mismatch
  }
  if (argc == 2 && std::strcmp(argv[1], "--list") == 0) {
    for (const Scenario& s : g_scenarios)
      std::printf("%s / %s / %s / %s\n", s.family.c_str(), s.name.c_str(), s.lock.c_str(), exec_name(s.exec));
    return 0;
  }
  if (argc != 1) {
    std::fprintf(stderr, "locking_selftest: unknown argument '%s' (usage: locking_selftest [--list])\n", argv[1]);
    return 2;
  }

  std::printf("faultline locking selftest: %zu scenarios, each on threads and on fibers\n\n", g_scenarios.size());
  std::printf("%-10s %-44s %-9s | %-22s %-25s | %-22s %-25s\n", "family", "scenario", "lock",
              "threads: expected", "actual", "fibers: expected", "actual");
  int matched = 0, mismatched = 0;
  std::string row_key, row;
  for (std::size_t i = 0; i < g_scenarios.size(); ++i) {
    const Scenario& s = g_scenarios[i];
    const std::string actual = s.child ? run_child(i) : run_here(s);
    const bool ok = actual == s.expected;
    (ok ? matched : mismatched)++;
    char cell[96];
    std::snprintf(cell, sizeof cell, " %-22s %-22s %s", s.expected.c_str(), actual.c_str(), ok ? "ok" : "!!");
    if (s.exec == Exec::kThreads) {
      char head[96];
      std::snprintf(head, sizeof head, "%-10s %-44s %-9s |", s.family.c_str(), s.name.c_str(), s.lock.c_str());
      row = head;
      row += cell;
      row += " |";
    } else {
      row += cell;
      std::printf("%s\n", row.c_str());
    }
  }
  std::printf("\n%zu scenarios: %d verdicts match, %d do not\n", g_scenarios.size(), matched, mismatched);

  const int actors = 8, rounds = 400;
  int legal_bad = 0;
  for (Exec e : {Exec::kThreads, Exec::kFibers}) {
    const std::string v = run_legal(e, actors, rounds);
    legal_bad += v != "none";
    std::printf("legal patterns: %zu patterns on %d %s x %d rounds at once: expected none, actual %s%s\n",
                std::size(kLegal), actors, exec_name(e), rounds, v.c_str(), v == "none" ? "" : "  !!");
  }
  std::printf("%s\n", mismatched == 0 && legal_bad == 0 ? "selftest: PASS" : "selftest: FAIL");
  return mismatched == 0 && legal_bad == 0 ? 0 : 1;
}
