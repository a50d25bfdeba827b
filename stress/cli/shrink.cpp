// `faultline shrink` (see shrink.h for what it does and why).
#include "stress/cli/shrink.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <functional>
#include <regex>
#include <map>
#include <optional>
#include <atomic>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "stress/cli/cli.h"
#include "stress/config.h"
#include "stress/sched/policy.h"
#include "stress/cli/selftest.h"
#include "stress/cli/sweep.h"

namespace faultline::stress {
namespace {

using Clock = std::chrono::steady_clock;

// What "fails the same way" compares: the oracle, and the first failure
// line with addresses and numbers blanked (a smaller run fails at another
// page, step or count, in the same words).
std::string shape_of(const std::string& first, const std::string& why) {
  static const std::regex kNum("[0-9]+");
  // A liveness failure names the unfinished workers, which a smaller run
  // has fewer of: its kind is what it is.
  static const std::regex kAfter(" after [0-9]+ steps.*");
  const std::string line = std::regex_replace(failure_signature(first), kAfter, "");
  return oracle_of(first, why) + " | " + std::regex_replace(line, kNum, "N");
}

struct Outcome {
  bool ran = false;     // a verdict of the harness (not a usage error or a timeout)
  bool failed = false;  // exit 1 with a failure line
  std::string first;    // the first failure line
  std::string shape;
  std::string output;
  double seconds = 0;
};

class Shrinker {
 public:
  explicit Shrinker(const ShrinkOptions& o) : o_(o), t0_(Clock::now()) {
    jobs_ = o.jobs > 0 ? o.jobs : std::max(1u, std::thread::hardware_concurrency());
  }
  Shrinker(const Shrinker&) = delete;
  Shrinker& operator=(const Shrinker&) = delete;

  int run();

 private:
  double elapsed() const { return std::chrono::duration<double>(Clock::now() - t0_).count(); }
  bool out_of_time() const { return elapsed() >= o_.budget_s; }
  // The configuration's share: half the budget, so the schedule gets time.
  bool config_time_spent() const { return elapsed() >= o_.budget_s / 2; }
  // The schedule's share ends at 85%: the flips of step 3 need some.
  bool schedule_time_spent() const { return elapsed() >= o_.budget_s * 0.85; }

  // `script_path`: where a script too long for one argument (Linux takes
  // 128 KiB) was written for the child to read, else "".
  static std::vector<std::string> args_of(const Config& c, const std::vector<std::string>& extra,
                                          std::string* script_path) {
    std::vector<std::string> a;
    if (c.script.size() > 32 * 1024) {
      char path[] = "/tmp/faultline-script-XXXXXX";
      const int fd = ::mkstemp(path);
      if (fd >= 0) {
        const bool whole = ::write(fd, c.script.data(), c.script.size()) == static_cast<ssize_t>(c.script.size());
        ::close(fd);
        if (whole) *script_path = path;
      }
      Config k = c;
      k.script = "@" + *script_path;
      a = words(k.replay_line());
    } else {
      a = words(c.replay_line());
    }
    a.erase(a.begin());  // "faultline"
    a.emplace_back("--quiet");
    for (const std::string& e : extra) a.push_back(e);
    return a;
  }

  // Called from several threads at once (seeds, ddmin's candidates).
  Outcome run_one(const Config& c, const std::vector<std::string>& extra = {}) {
    runs_.fetch_add(1, std::memory_order_relaxed);
    std::string script_path;
    const std::vector<std::string> args = args_of(c, extra, &script_path);
    const ChildRun r = run_faultline_child(o_.self_exe, args, timeout_s_);
    if (!script_path.empty()) std::remove(script_path.c_str());
    Outcome out;
    out.seconds = r.seconds;
    out.output = r.output;
    out.first = first_failure_line(r.output);
    out.ran = (r.code == 0 || r.code == 1) && r.why.find("no verdict within") == std::string::npos;
    out.failed = r.code == 1 && out.ran;
    out.shape = out.failed ? shape_of(out.first, r.why) : "";
    return out;
  }

  bool same(const Outcome& r) const { return r.failed && r.shape == shape_; }

  // Seeds of `c` (its own first, then the next ones) until one fails the
  // same way; up to `jobs_` at once.  The failing seed goes into c.
  // keep_workload: only the schedule's seed changes (--seed stays).
  bool fails_with_some_seed(Config& c, int seeds, int tries_each, bool keep_workload = false) {
    std::vector<std::uint64_t> order;
    for (int i = 0; i < seeds; ++i) order.push_back(c.seed + static_cast<std::uint64_t>(i));
    for (std::size_t at = 0; at < order.size() && !out_of_time(); at += static_cast<std::size_t>(jobs_)) {
      const std::size_t n = std::min(order.size() - at, static_cast<std::size_t>(jobs_));
      std::vector<Outcome> res(n * static_cast<std::size_t>(tries_each));
      std::vector<std::thread> ts;
      for (std::size_t i = 0; i < n; ++i)
        for (int t = 0; t < tries_each; ++t)
          ts.emplace_back([&, i, t] {
            res[i * static_cast<std::size_t>(tries_each) + static_cast<std::size_t>(t)] =
                run_one(seed_variant(c, order[at + i], at + i, keep_workload));
          });
      for (auto& t : ts) t.join();
      for (std::size_t i = 0; i < n; ++i)
        for (int t = 0; t < tries_each; ++t)
          if (const Outcome& r = res[i * static_cast<std::size_t>(tries_each) + static_cast<std::size_t>(t)]; same(r)) {
            c = seed_variant(c, order[at + i], at + i, keep_workload);
            run_s_ = r.seconds;
            fail_output_ = r.output;
            return true;
          }
    }
    return false;
  }

  // The i-th seed tried for `c` (the 0th is c itself): another schedule
  // seed each time, and half of the time another workload seed too
  // (--seed: the operations), so that a candidate which keeps every
  // remaining thread's operations (one thread less, say) is tried under
  // many schedules of the same operations before other operations.  Under
  // deterministic fibers every other one runs under PCT of depth 2 (it
  // meets a race of few preemptions in far fewer seeds, selftest
  // --compare-schedulers), unless `c` is PCT already.
  static Config seed_variant(const Config& c, std::uint64_t seed, std::size_t i, bool keep_workload) {
    Config k = c;
    if (i == 0) return k;
    k.sched_seed = c.schedule_seed() + i;
    if (i % 4 >= 2 && !keep_workload) k.seed = seed;
    if (k.executor == ExecutorKind::kFibers && k.sched == SchedKind::kRandom && i % 2 == 1) {
      k.sched = SchedKind::kPct;
      k.pct_depth = 2;
      k.pct_steps = c.pct_steps_used();  // fixed, so that --ops can be bisected
    }
    return k;
  }

  // The candidate configurations one step smaller than `c`.
  std::vector<std::pair<std::string, Config>> candidates(const Config& c) const;

  void reduce_configuration();
  bool deterministic() const { return cfg_.executor == ExecutorKind::kFibers; }
  Script record_script();
  Script ddmin(Script s);
  std::size_t first_failing(const std::vector<Script>& cands);
  void bisect_ops();
  bool hunt_few_preemptions();
  bool reduce_under_script(Script& s);
  bool script_fails(const Script& s) {
    Config k = cfg_;
    k.sched = SchedKind::kScript;
    k.script = format_script(s);
    return same(run_one(k));
  }

  const ShrinkOptions& o_;
  const Clock::time_point t0_;
  int jobs_ = 1;
  double timeout_s_ = 60;
  std::atomic<std::uint64_t> runs_{0};
  double run_s_ = 1;  // how long the last run that failed the same way took
  Config cfg_;
  std::string shape_;
  std::string first_;
  std::string fail_output_;  // the output of the latest run that failed the same way
};

// Operations of the initial processes' threads (children's are in size_text).
std::uint64_t total_ops(const Config& c) { return static_cast<std::uint64_t>(c.started_workers()) * c.ops; }

std::string seeds_text(const Config& c) {
  std::string s = fmt::format("seed {}", c.seed);
  if (c.sched_seed) s += fmt::format(", sched-seed {}", *c.sched_seed);
  if (c.executor == ExecutorKind::kFibers && c.sched == SchedKind::kPct) s += fmt::format(", PCT {}", c.pct_depth);
  return s;
}

// --only-workers for c's started threads but thread j of process p.
std::string started_without(const Config& c, int p, int j) {
  std::string rest;
  for (int q = 1; q <= c.processes; ++q)
    for (int k = 0; k < c.workers; ++k)
      if ((q != p || k != j) && c.worker_started(static_cast<std::uint32_t>(q), k))
        rest += fmt::format("{}p{}.t{}", rest.empty() ? "" : ",", q, k);
  return rest;
}

std::string size_text(const Config& c) {
  std::string forks = c.mix[static_cast<std::size_t>(Op::kFork)] == 0 || c.max_forks == 0
                          ? "no forks"
                          : fmt::format("forks up to {} with {} x {} operations each", c.max_forks, c.child_workers,
                                        c.child_ops);
  const std::string threads = c.only_workers.empty()
                                  ? fmt::format("{} process(es) x {} worker(s)", c.processes, c.workers)
                                  : fmt::format("{} worker(s) ({} of {} process(es) x {})", c.started_workers(),
                                                c.only_workers, c.processes, c.workers);
  return fmt::format("{} x {} operations = {} operations ({}); daemons:{}{}", threads, c.ops, total_ops(c), forks,
                     c.pagedaemon ? " pagedaemon" : "", c.truncator ? " truncator" : (c.pagedaemon ? "" : " none"));
}

std::vector<std::pair<std::string, Config>> Shrinker::candidates(const Config& c) const {
  std::vector<std::pair<std::string, Config>> out;
  auto add = [&](std::string what, const std::function<void(Config&)>& f) {
    Config k = c;
    f(k);
    if (!k.validate()) out.emplace_back(std::move(what), std::move(k));
  };
  // Smallest first, then half: each pass at least halves what it can.
  auto smaller = [&](const char* name, auto Config::*field, auto lo) {
    const auto cur = c.*field;
    using T = std::remove_cv_t<decltype(cur)>;
    std::vector<T> vals{static_cast<T>(lo)};
    if (cur / 2 > static_cast<T>(lo)) vals.push_back(cur / 2);
    // One less only near the bottom: halving does the rest in few passes.
    if (cur > static_cast<T>(lo) + 1 && cur <= static_cast<T>(8) && cur - 1 != cur / 2) vals.push_back(cur - 1);
    for (T v : vals)
      if (v < cur)
        add(fmt::format("{} {} -> {}", name, cur, v), [field, v](Config& k) { k.*field = v; });
  };
  // What removes whole actors first, then sizes, then the mix and memory.
  if (c.mix[static_cast<std::size_t>(Op::kFork)] != 0)
    add("no forks", [](Config& k) { k.mix[static_cast<std::size_t>(Op::kFork)] = 0; });
  if (c.truncator) add("no truncator", [](Config& k) { k.truncator = false; });
  if (c.pagedaemon) add("no pagedaemon", [](Config& k) { k.pagedaemon = false; });
  // Fewer processes or workers, each with more operations, the same in all
  // (fewer of both would hardly ever meet the race again); --ops is
  // bisected after.
  auto fewer = [&](const char* name, int Config::*field) {
    const int cur = c.*field;
    std::vector<int> vals{1};
    if (cur / 2 > 1) vals.push_back(cur / 2);
    for (int v : vals)
      if (v < cur)
        add(fmt::format("{} {} -> {} (ops {} -> {})", name, cur, v, c.ops,
                        (c.ops * static_cast<std::uint64_t>(cur) + static_cast<std::uint64_t>(v) - 1) /
                            static_cast<std::uint64_t>(v)),
            [field, v, cur](Config& k) {
              k.ops = (k.ops * static_cast<std::uint64_t>(cur) + static_cast<std::uint64_t>(v) - 1) /
                      static_cast<std::uint64_t>(v);
              k.*field = v;
            });
  };
  // Children fork too: their operations can outnumber the parents' many
  // times over, so they come down next.
  if (c.mix[static_cast<std::size_t>(Op::kFork)] != 0) {
    smaller("child-ops", &Config::child_ops, 1);
    smaller("max-forks", &Config::max_forks, 1);
    smaller("child-workers", &Config::child_workers, 1);
  }
  fewer("processes", &Config::processes);
  fewer("workers", &Config::workers);
  smaller("ops", &Config::ops, 1);
  // One thread of an initial process less, the others keeping their
  // operations (each draws from its own stream of --seed): the threads a
  // failure needs stay, whatever their number in the run.  Those the
  // failing run's output does not name (its failure lines, the last
  // schedule events) go first.
  auto named = [this](int p, int j) {
    const std::string n = fmt::format("p{}.t{}", p, j);
    for (std::size_t at = fail_output_.find(n); at != std::string::npos; at = fail_output_.find(n, at + 1)) {
      const std::size_t end = at + n.size();
      if (end == fail_output_.size() || std::isdigit(static_cast<unsigned char>(fail_output_[end])) == 0) return true;
    }
    return false;
  };
  for (int pass = 0; pass < 2 && c.started_workers() > 1; ++pass) {
    for (int p = 1; p <= c.processes; ++p) {
      for (int j = 0; j < c.workers; ++j) {
        if (!c.worker_started(static_cast<std::uint32_t>(p), j) || named(p, j) != (pass == 1)) continue;
        add(fmt::format("without thread p{}.t{}", p, j),
            [rest = started_without(c, p, j)](Config& k) { k.only_workers = rest; });
      }
    }
  }
  for (std::size_t i = 0; i < kOps; ++i)
    if (c.mix[i] != 0 && static_cast<Op>(i) != Op::kFork)
      add(fmt::format("mix: no {}", op_name(static_cast<Op>(i))), [i](Config& k) { k.mix[i] = 0; });
  smaller("anon-pages", &Config::anon_pages, 1u);
  smaller("file-pages", &Config::file_pages, 1u);
  smaller("scratch-pages", &Config::scratch_pages, 1u);
  smaller("churn-pages", &Config::churn_pages, 1u);
  smaller("device-pages", &Config::device_pages, 1u);
  smaller("pages", &Config::pages, 1u);
  if (c.io_error_ppm != 0) add("no I/O errors", [](Config& k) { k.io_error_ppm = 0; });
  return out;
}

// Under a deterministic scheduler other than a script, a run with fewer
// operations per worker is the same run cut short (each worker's operations
// come from its own stream of the seed): the failure stays as long as it
// came before the cut.  So --ops is bisected at the same seed first, which
// makes every later run cheaper.
void Shrinker::bisect_ops() {
  // PCT's change points depend on --ops unless its steps are given.
  if (!deterministic() || (cfg_.sched == SchedKind::kPct && cfg_.pct_steps == 0)) return;
  std::uint64_t lo = 0, hi = cfg_.ops;  // hi fails; lo is not known to
  while (hi - lo > 1 && !config_time_spent()) {
    const std::uint64_t mid = lo + (hi - lo) / 2;
    Config k = cfg_;
    k.ops = mid;
    if (Outcome r; !k.validate() && same(r = run_one(k))) {
      hi = mid;
      fail_output_ = r.output;
    } else {
      lo = mid;
    }
  }
  if (hi != cfg_.ops) {
    std::printf("  %-32s fails the same way (%s): %s\n", fmt::format("ops {} -> {}", cfg_.ops, hi).c_str(),
                seeds_text(cfg_).c_str(), size_text([&] {
                  Config k = cfg_;
                  k.ops = hi;
                  return k;
                }()).c_str());
    std::fflush(stdout);
    cfg_.ops = hi;
  }
}

// A random schedule deviates from "run on" at most choices.  PCT runs the
// highest priority until a change point: its failures carry few
// preemptions, which is what the script is to be cut down to.  Seeds of the
// shrunk configuration under PCT of depth 1 to 3; the first that fails the
// same way is kept.
bool Shrinker::hunt_few_preemptions() {
  for (int depth = 1; depth <= 3 && !schedule_time_spent(); ++depth) {
    Config k = cfg_;
    k.sched = SchedKind::kPct;
    k.pct_depth = depth;
    k.pct_steps = cfg_.pct_steps_used();
    k.sched_seed = 1;
    if (fails_with_some_seed(k, 48, 1, true)) {
      std::printf("  PCT depth %d fails the same way (%s)\n", depth, seeds_text(k).c_str());
      std::fflush(stdout);
      cfg_ = k;
      return true;
    }
  }
  return false;
}

void Shrinker::reduce_configuration() {
  bisect_ops();
  const int tries = deterministic() ? 1 : 3;
  // A pass tries every candidate once; one that did not fail is not tried
  // again in the pass unless the run has become at least half as big since
  // (a smaller run has new numeric candidates too), and the passes go on
  // until one changes nothing.  Short runs get four times the seeds.
  while (!config_time_spent()) {
    bool changed = false;
    std::map<std::string, std::uint64_t> refused;  // candidate -> total operations when refused
    for (bool found = true; found && !config_time_spent();) {
      found = false;
      for (auto& [what, cand] : candidates(cfg_)) {
        if (config_time_spent()) break;
        if (auto it = refused.find(what); it != refused.end() && total_ops(cfg_) * 2 > it->second) continue;
        Config k = cand;
        if (fails_with_some_seed(k, run_s_ < 0.1 ? 8 * o_.seeds : run_s_ < 0.3 ? 4 * o_.seeds : o_.seeds, tries)) {
          std::printf("  %-32s fails the same way (%s): %s\n", what.c_str(), seeds_text(k).c_str(),
                      size_text(k).c_str());
          std::fflush(stdout);
          cfg_ = k;
          bisect_ops();  // the new seed may fail sooner
          // Without an operation or a daemon the failure may come more
          // often per operation: what was refused gets another try.
          if (what.rfind("mix: ", 0) == 0 || what.rfind("no ", 0) == 0) refused.clear();
          changed = found = true;
          break;  // the candidates of the smaller configuration next
        }
        refused[what] = total_ops(cfg_);
      }
    }
    if (!changed) break;
  }
}

Script Shrinker::record_script() {
  char path[] = "/tmp/faultline-shrink-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) return {};
  ::close(fd);
  Config k = cfg_;
  const Outcome r = run_one(k, {"--record-script", path});
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::remove(path);
  Script s;
  if (!same(r) || parse_script(text, s)) return {};
  return s;
}

// ddmin on the script's entries: test complements of n chunks first (the
// common case is a few entries out of thousands), then chunks; n doubles
// when nothing smaller fails.  Ends 1-minimal unless time runs out.
// The index of the first script of `cands` that fails the same way, or
// cands.size(): run jobs_ at a time, in order.
std::size_t Shrinker::first_failing(const std::vector<Script>& cands) {
  for (std::size_t at = 0; at < cands.size() && !schedule_time_spent(); at += static_cast<std::size_t>(jobs_)) {
    const std::size_t n = std::min(cands.size() - at, static_cast<std::size_t>(jobs_));
    std::vector<char> fails(n, 0);
    std::vector<std::thread> ts;
    for (std::size_t i = 0; i < n; ++i)
      ts.emplace_back([&, i] { fails[i] = script_fails(cands[at + i]) ? 1 : 0; });
    for (auto& t : ts) t.join();
    for (std::size_t i = 0; i < n; ++i)
      if (fails[i] != 0) return at + i;
  }
  return cands.size();
}

// ddmin on the script's entries (Zeller and Hildebrandt): the complements of
// n chunks first (the common case keeps few entries of many), then the
// chunks; n doubles when nothing smaller fails.  Ends 1-minimal (no single
// entry can go) unless the budget runs out.
Script Shrinker::ddmin(Script s) {
  if (script_fails(Script{})) return {};
  using Entries = Script;
  Entries cur = std::move(s);
  auto as_script = [](const Entries& v) { return v; };
  // First the shortest prefix that fails: entries past the failure (a run
  // goes on after a data oracle saw it) do not change what came before,
  // so this is a binary search.
  std::size_t lo = 0, hi = cur.size();  // the prefix of hi entries fails; of lo, not known to
  while (hi - lo > 1 && !schedule_time_spent()) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (script_fails(as_script({cur.begin(), cur.begin() + static_cast<long>(mid)})))
      hi = mid;
    else
      lo = mid;
  }
  cur.resize(hi);
  std::printf("  the first %zu of them fail the same way\n", hi);
  std::fflush(stdout);
  std::size_t n = 2;
  while (cur.size() >= 2 && !schedule_time_spent()) {
    const std::size_t chunk = (cur.size() + n - 1) / n;
    std::vector<Entries> complements, parts;
    for (std::size_t start = 0; start < cur.size(); start += chunk) {
      const std::size_t end = std::min(cur.size(), start + chunk);
      Entries c(cur.begin(), cur.begin() + static_cast<long>(start));
      c.insert(c.end(), cur.begin() + static_cast<long>(end), cur.end());
      complements.push_back(std::move(c));
      parts.emplace_back(cur.begin() + static_cast<long>(start), cur.begin() + static_cast<long>(end));
    }
    std::vector<Script> cs;
    for (const Entries& c : complements) cs.push_back(as_script(c));
    if (const std::size_t i = first_failing(cs); i < cs.size()) {
      cur = complements[i];
      n = std::max<std::size_t>(n - 1, 2);
      continue;
    }
    if (parts.size() > 2) {  // with two chunks, a chunk is the other's complement: tried
      std::vector<Script> ps;
      for (const Entries& c : parts) ps.push_back(as_script(c));
      if (const std::size_t i = first_failing(ps); i < ps.size()) {
        cur = parts[i];
        n = 2;
        continue;
      }
    }
    if (n >= cur.size()) break;
    n = std::min(cur.size(), n * 2);
  }
  return as_script(cur);
}

// With the schedule written down, a thread the failure does not need can go
// in one run: the script names workers by name, so its other entries keep
// their meaning (the entries by or for that thread go with it).  Fewer
// operations likewise: the entries past the end are never reached.  Each
// candidate is one deterministic run; passes until none is kept.
bool Shrinker::reduce_under_script(Script& s) {
  std::printf("  threads and operations, the schedule held:\n");
  std::fflush(stdout);
  bool any = false;
  for (bool found = true; found && !schedule_time_spent();) {
    found = false;
    std::vector<std::pair<std::string, Config>> cands;
    std::vector<Script> scripts;
    for (int p = 1; p <= cfg_.processes; ++p)
      for (int j = 0; j < cfg_.workers; ++j) {
        if (cfg_.started_workers() <= 1 || !cfg_.worker_started(static_cast<std::uint32_t>(p), j)) continue;
        const std::string name = fmt::format("p{}.t{}", p, j);
        Config k = cfg_;
        k.only_workers = started_without(cfg_, p, j);
        Script t;
        for (const ScriptEntry& e : s)
          if (e.at.by != name && e.worker != name) t.push_back(e);
        cands.emplace_back("without thread " + name, k);
        scripts.push_back(std::move(t));
      }
    for (std::size_t i = 0; i < cands.size(); ++i) {
      Config& k = cands[i].second;
      k.sched = SchedKind::kScript;
      k.script = format_script(scripts[i]);
    }
    for (std::size_t at = 0; at < cands.size() && !found && !schedule_time_spent(); at += static_cast<std::size_t>(jobs_)) {
      const std::size_t n = std::min(cands.size() - at, static_cast<std::size_t>(jobs_));
      std::vector<char> fails(n, 0);
      std::vector<std::thread> ts;
      for (std::size_t i = 0; i < n; ++i)
        ts.emplace_back([&, i] { fails[i] = !cands[at + i].second.validate() && same(run_one(cands[at + i].second)) ? 1 : 0; });
      for (auto& t : ts) t.join();
      for (std::size_t i = 0; i < n; ++i)
        if (fails[i] != 0) {
          cfg_ = cands[at + i].second;
          s = scripts[at + i];
          std::printf("    %-30s fails the same way: %s\n", cands[at + i].first.c_str(), size_text(cfg_).c_str());
          std::fflush(stdout);
          found = any = true;
          break;
        }
    }
    if (found) continue;
    // --ops, bisected with the schedule held: fewer operations are the same
    // run cut short (the entries past the end are never reached).
    Config k = cfg_;
    k.sched = SchedKind::kScript;
    k.script = format_script(s);
    std::uint64_t lo = 0, hi = cfg_.ops;
    while (hi - lo > 1 && !schedule_time_spent()) {
      k.ops = lo + (hi - lo) / 2;
      if (!k.validate() && same(run_one(k)))
        hi = k.ops;
      else
        lo = k.ops;
    }
    if (hi < cfg_.ops) {
      std::printf("    %-30s fails the same way\n", fmt::format("ops {} -> {}", cfg_.ops, hi).c_str());
      std::fflush(stdout);
      k.ops = hi;
      cfg_ = k;
      found = any = true;
    }
  }
  return any;
}

// A script as printed: whole up to 400 characters.
std::string abbreviated(const std::string& script) {
  if (script.size() <= 400) return script;
  const std::size_t cut = script.rfind(',', 400);
  return script.substr(0, cut) + fmt::format(",... ({} entries)", std::count(script.begin(), script.end(), ',') + 1);
}

// The lines of an --explain-decision run's output that explain it.
std::string explanation_in(const std::string& output) {
  std::istringstream in(output);
  std::string out;
  bool in_it = false;
  for (std::string l; std::getline(in, l);) {
    if (l.rfind("decision ", 0) == 0) in_it = true;
    else if (in_it && !l.empty() && l[0] != ' ') in_it = false;
    if (in_it) out += l + "\n";
  }
  return out;
}

int Shrinker::run() {
  std::vector<std::string> line = o_.line;
  if (!line.empty() && (line.front() == "faultline" || line.front().ends_with("/faultline"))) line.erase(line.begin());
  if (line.empty()) {
    std::fprintf(stderr, "faultline: shrink: give the failing run's replay line (its options)\n");
    return 2;
  }
  for (const std::string& w : line)
    if (w == "shrink" || w == "sweep" || w == "selftest" || w == "campaign") {
      std::fprintf(stderr, "faultline: shrink: '%s' in the line: shrink takes one run's replay line\n", w.c_str());
      return 2;
    }
  if (auto e = parse_run_args(line, cfg_)) {
    std::fprintf(stderr, "faultline: shrink: %s\n", e->c_str());
    return 2;
  }
  cfg_.quiet = true;
  cfg_.json_path.clear();
  cfg_.trace_path.clear();
  cfg_.record_script_path.clear();
  cfg_.explain_decision.clear();
  cfg_.require_reach = false;
  // The same run with PCT's steps written down: then fewer --ops cut it
  // short rather than move its change points, and --ops can be bisected.
  if (deterministic() && cfg_.sched == SchedKind::kPct && cfg_.pct_steps == 0) cfg_.pct_steps = cfg_.pct_steps_used();
  const Config before = cfg_;
  std::printf("faultline shrink: %.0f s budget, %d runs at a time\nbefore: %s\n  %s\n", o_.budget_s, jobs_,
              before.replay_line().c_str(), size_text(before).c_str());
  std::fflush(stdout);

  // The failure to keep.  OS threads may need a few tries.
  Outcome first;
  timeout_s_ = 600;
  for (int i = 0; i < (deterministic() ? 1 : 5) && !first.failed; ++i) first = run_one(cfg_);
  if (!first.failed) {
    std::fprintf(stderr, "faultline: shrink: the line does not fail%s: nothing to shrink\n",
                 deterministic() ? "" : " (5 tries)");
    return 2;
  }
  shape_ = first.shape;
  first_ = first.first;
  fail_output_ = first.output;
  run_s_ = first.seconds;
  // A shrunk run is smaller: it gets a few times the original's time.
  timeout_s_ = std::clamp(first.seconds * 4 + 10, 10.0, 600.0);
  std::printf("fails: %s\n", first.first.c_str());

  if (!deterministic()) {
    Config k = cfg_;
    k.executor = ExecutorKind::kFibers;
    k.sched = SchedKind::kRandom;
    std::printf("step 0: the same failure under deterministic fibers (seeds %llu..%llu)\n",
                static_cast<unsigned long long>(k.seed), static_cast<unsigned long long>(k.seed + 63));
    std::fflush(stdout);
    if (fails_with_some_seed(k, 64, 1)) {
      std::printf("  found: seed %llu\n", static_cast<unsigned long long>(k.seed));
      cfg_ = k;
    } else {
      std::printf("  not found: the configuration is shrunk under OS threads, three tries a candidate\n");
    }
  }

  if (o_.schedule_only) {
    std::printf("step 1: the configuration is kept (--schedule-only)\n");
  } else {
    std::printf("step 1: the configuration\n");
    std::fflush(stdout);
    reduce_configuration();
    std::printf("  -> %s\n", size_text(cfg_).c_str());
  }

  nlohmann::ordered_json j;
  j["before"] = before.replay_line();
  j["failure"] = first_;
  int code = 0;
  std::string decision_report, flipped_line;
  std::size_t recorded = 0, kept = 0;
  if (deterministic()) {
    std::printf("step 2: the schedule\n");
    std::fflush(stdout);
    Script s0 = record_script();
    if (s0.size() > 64) {
      std::printf("  %zu choices differ from the default: a failure with fewer preemptions, under PCT\n", s0.size());
      std::fflush(stdout);
      const Config saved = cfg_;
      if (hunt_few_preemptions()) {
        Script s1 = record_script();
        if (!s1.empty() && s1.size() < s0.size())
          s0 = std::move(s1);
        else
          cfg_ = saved;
      }
    }
    recorded = s0.size();
    if (s0.empty() && !script_fails(Script{})) {
      std::printf("  could not record a script that fails the same way: the schedule is left as it is\n");
      code = 1;
    } else {
      std::printf("  %zu choices differ from the default (run on; else the lowest id)\n", s0.size());
      std::fflush(stdout);
      Script min = ddmin(s0);
      std::printf("  ddmin%s: %zu of them needed: %s\n", schedule_time_spent() ? " (stopped by the budget)" : "", min.size(),
                  min.empty() ? "(none)" : abbreviated(format_script(min)).c_str());
      std::fflush(stdout);
      if (!o_.schedule_only && reduce_under_script(min)) {
        min = ddmin(min);
        std::printf("  ddmin again: %zu entries: %s\n", min.size(), min.empty() ? "(none)" : abbreviated(format_script(min)).c_str());
      }
      kept = min.size();
      cfg_.sched = SchedKind::kScript;
      cfg_.script = format_script(min);
      std::printf("step 3: the decisive decision\n");
      std::fflush(stdout);
      if (min.empty()) {
        std::printf("  none: the run fails under the default schedule, no preemption needed\n");
        decision_report = "none: fails without any preemption";
      } else {
        // The latest entry whose flip makes the run pass; failing that (a
        // mutant may fail the flipped run elsewhere), the latest whose flip
        // avoids this failure.  The flips get a tenth of the budget beyond it.
        std::optional<Place> decisive, avoiding;
        std::string avoiding_line, avoiding_first;
        int tried = 0;
        for (std::size_t i = min.size(); i-- > 0 && tried < 24 && elapsed() < o_.budget_s * 1.1; ++tried) {
          Script flipped = min;
          flipped.erase(flipped.begin() + static_cast<long>(i));
          Config k = cfg_;
          k.script = format_script(flipped);
          const Outcome r = run_one(k);
          if (r.ran && !r.failed) {
            decisive = min[i].at;
            flipped_line = k.replay_line();
            break;
          }
          if (!avoiding && r.ran && !same(r)) {
            avoiding = min[i].at;
            avoiding_line = k.replay_line();
            avoiding_first = r.first;
          }
        }
        const std::optional<Place> shown = decisive ? decisive : avoiding;
        if (!shown) {
          std::printf("  no flip of the last %d entries avoids this failure%s\n", tried,
                      elapsed() >= o_.budget_s * 1.1 ? " (the budget ran out)" : "");
          code = 1;
        } else {
          if (!decisive)
            std::printf("  no single flip makes the run pass (the mutant fails it elsewhere); the latest flip that"
                        " avoids this failure:\n");
          const Outcome r = run_one(cfg_, {"--explain-decision", format_place(*shown)});
          decision_report = explanation_in(r.output);
          std::printf("%s", decision_report.c_str());
          if (decisive) {
            std::printf("  flipped (the default choice there), the run passes:\n  %s\n", flipped_line.c_str());
          } else {
            flipped_line = avoiding_line;
            std::printf("  flipped (the default choice there), the run fails another way: %s\n  %s\n",
                        avoiding_first.c_str(), flipped_line.c_str());
          }
          j["decisive_passes"] = decisive.has_value();
        }
      }
    }
  } else {
    code = 1;
  }
  const bool timed_out = out_of_time();
  const std::string after = cfg_.replay_line();
  std::printf("after: %s\n  %s\n",
              after.size() <= 2000 ? after.c_str() : (abbreviated(after) + " (the whole line: --json)").c_str(),
              size_text(cfg_).c_str());
  std::printf("shrink: %llu runs in %.1f s%s; %s -> %s operations%s\n", static_cast<unsigned long long>(runs_.load()),
              elapsed(), timed_out ? " (the budget ran out: the best so far)" : "",
              std::to_string(total_ops(before)).c_str(), std::to_string(total_ops(cfg_)).c_str(),
              deterministic() ? fmt::format(", {} recorded choices -> {}", recorded, kept).c_str() : "");
  j["after"] = cfg_.replay_line();
  j["operations_before"] = total_ops(before);
  j["operations_after"] = total_ops(cfg_);
  j["workers_after"] = cfg_.started_workers();
  j["recorded_choices"] = recorded;
  j["script_entries"] = kept;
  j["decision"] = decision_report;
  j["flipped_passes"] = flipped_line;
  j["runs"] = runs_.load();
  j["seconds"] = elapsed();
  j["budget_ran_out"] = timed_out;
  if (!o_.json_path.empty() && !write_file(o_.json_path, j.dump(2) + "\n")) {
    std::printf("faultline: --json '%s': could not write it\n", o_.json_path.c_str());
    if (code == 0) code = 2;
  }
  std::fflush(stdout);
  return code;
}

}  // namespace

int shrink_command(const ShrinkOptions& o) {
  Shrinker s(o);
  return s.run();
}

}  // namespace faultline::stress
