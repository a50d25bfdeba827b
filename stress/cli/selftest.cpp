#include "stress/cli/selftest.h"

#include <fmt/format.h>
#include <tbb/parallel_for_each.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <cstdio>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "stress/cli/sweep.h"

namespace faultline::stress {

std::vector<std::string> hunting_line(vm::Mutant m) {
  using M = vm::Mutant;
  switch (m) {
    // The mixed scenario, short: most of the fault's windows within a few
    // thousand operations.
    case M::kNoWriteProtectAtFork:
    case M::kMprotectPastEnd:
    case M::kSkipTimestampRecheck:
    case M::kBusyPageTaken:
    case M::kNoDeadCheck:
    case M::kReadMapsBackingWritable:
    case M::kBusyWakeupLost:
    case M::kFirstPageLeaked:
    case M::kQueueWithoutLock:
    case M::kPrefaultTakesBusy:
    case M::kPageoutNoRevalidate:
    case M::kMsleepEarlyRelease:
    case M::kRevalidateKeepsProt:
    case M::kMprotectKeepsTimestamp:
    case M::kVmWaitSkipped:
    case M::kVnodeWriteLost:
      return {"--scenario", "mixed", "--ops", "3000"};
    // Stores through a translation the mprotect left writable: the scratch
    // region's mprotects, and writes to it.
    case M::kMprotectKeepsWrite:
      return {"--scenario", "mprotect-munmap", "--ops", "3000"};
    // A COW copy left clean is lost only once a collapse took its source and
    // pageout freed it: many forks, children that live (run_test's Mutants).
    case M::kCleanCowCopy:
      return {"--scenario", "mixed", "--ops", "600", "--child-ops", "100", "--max-forks", "200"};
    case M::kNoEofCheck:
      return {"--scenario", "private-file", "--ops", "2000"};
    case M::kWireKeepsMaxWrite:
      return {"--scenario", "wiring", "--mix", "mlock-none=5"};
    case M::kMunmapKeepsTranslations:
      return {"--scenario", "file-storm", "--ops", "3000"};
    // The device pager's moving pages are what the re-lookup is for.
    case M::kNoPagerRelookup:
      return {"--scenario", "mixed", "--ops", "3000", "--mix", "dev-read=20"};
    // SIGBUS past the end of the file: the truncator's cuts.
    case M::kLookupDoneMissing:
      return {"--scenario", "truncate", "--ops", "3000"};
    // The pager's error path: injected read errors.
    case M::kPagerErrorLeavesBusy:
      return {"--scenario", "mixed", "--ops", "3000", "--io-error-ppm", "20000"};
    case M::kUnwireKeepsWiring:
      return {"--scenario", "wiring", "--ops", "3000"};
    case M::kNone:
    case M::kCount:
      break;
  }
  return {"--scenario", "mixed", "--ops", "3000"};
}

std::string oracle_of(const std::string& first, const std::string& why) {
  static const std::regex kFail(R"(^FAIL \[([^\]]+)\])");
  std::smatch mt;
  if (std::regex_search(first, mt, kFail)) return mt[1].str();
  if (first.rfind("panic:", 0) == 0) return "panic";
  if (first.find("AddressSanitizer") != std::string::npos) return "asan";
  if (first.find("ThreadSanitizer") != std::string::npos) return "tsan";
  if (first.find("runtime error:") != std::string::npos) return "ubsan";
  if (!why.empty()) return why.find("killed by signal") != std::string::npos ? "crash" : "timeout";
  return first.empty() ? "?" : "other";
}

std::string failure_signature(const std::string& first) {
  // Addresses, and a sanitizer's "==pid==" prefix.
  static const std::regex kAddr("0x[0-9a-fA-F]+");
  static const std::regex kPid("==[0-9]+==");
  return std::regex_replace(std::regex_replace(first, kAddr, "0x_"), kPid, "==_==");
}

namespace {

struct Row {
  std::string name;   // the mutant's, or "control"
  std::string lines;  // the seed lines it breaks
  std::vector<std::string> line;
  bool killed = false;
  std::string oracle;
  std::string first;   // the first failure line
  std::uint64_t seed = 0;
  std::uint64_t seeds_tried = 0;
  double seconds = 0;  // to the kill (or the budget spent)
  bool replay_confirmed = false;
  std::string replay;
  std::string note;  // why the replay did not confirm, or what the control met
  bool confirm = true;  // replay the kill (deterministic runs only)
};

std::string line_text(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& w : v) s += (s.empty() ? "" : " ") + w;
  return s;
}

std::string replay_of(const std::string& output) {
  std::istringstream in(output);
  for (std::string l; std::getline(in, l);)
    if (l.rfind("replay: ", 0) == 0) return l.substr(8);
  return "";
}

// Seeds 1, 2, ... of `line` (with --mutant when `m` is one) until a run
// fails or `budget_s` is spent.
void hunt(const SelftestOptions& o, vm::Mutant m, Row& row) {
  const auto t0 = std::chrono::steady_clock::now();
  for (std::uint64_t seed = 1;; ++seed) {
    const double spent = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (spent >= o.budget_s) break;
    std::vector<std::string> args = row.line;
    if (m != vm::Mutant::kNone) {
      args.push_back("--mutant");
      args.push_back(vm::mutant_name(m));
    }
    if (!o.sched.empty()) {
      args.push_back("--sched");
      args.push_back(o.sched);
    }
    args.push_back("--seed");
    args.push_back(std::to_string(seed));
    args.push_back("--quiet");
    // One seed may overrun the budget by its own length, up to a minute.
    const ChildRun r = run_faultline_child(o.self_exe, args, 60);
    row.seeds_tried = seed;
    if (r.code == 0) continue;
    row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    row.first = first_failure_line(r.output);
    row.oracle = oracle_of(row.first, r.why);
    row.seed = seed;
    row.replay = replay_of(r.output);
    if (r.code != 1 || row.oracle == "timeout" || row.replay.empty()) {
      // A usage error, a run killed at the deadline, or no replay line: not
      // a verdict of the harness's.
      row.note = fmt::format("seed {}: exit {} {} {}", seed, r.code, r.why, row.first);
      return;
    }
    row.killed = true;
    if (!row.confirm) return;
    // The replay line in a fresh process must fail the same way.
    std::vector<std::string> again = words(row.replay);
    if (!again.empty() && again.front() == "faultline") again.erase(again.begin());
    again.push_back("--quiet");
    const ChildRun rr = run_faultline_child(o.self_exe, again, 120);
    const std::string first2 = first_failure_line(rr.output);
    row.replay_confirmed = rr.code == 1 && failure_signature(first2) == failure_signature(row.first);
    if (!row.replay_confirmed)
      row.note = fmt::format("the replay {}: {}", rr.code == 0 ? "passed" : "failed otherwise", first2);
    return;
  }
  row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int compare_command(const SelftestOptions& o, const std::vector<vm::Mutant>& mutants, int jobs) {
  const auto& policies = compared_schedulers();
  std::printf("faultline selftest --compare-schedulers: %zu mutants under %zu schedulers, %.0f s of seeds each,"
              " %d at a time\n",
              mutants.size(), policies.size(), o.budget_s, jobs);
  std::fflush(stdout);
  std::vector<Row> rows;
  std::vector<vm::Mutant> which;
  std::vector<std::size_t> policy_of;
  for (std::size_t p = 0; p < policies.size(); ++p)
    for (vm::Mutant m : mutants) {
      Row r;
      r.name = vm::mutant_name(m);
      r.lines = vm::mutant_lines(m);
      r.line = hunting_line(m);
      for (const std::string& a : policies[p].args) r.line.push_back(a);
      r.confirm = policies[p].deterministic;
      rows.push_back(r);
      which.push_back(m);
      policy_of.push_back(p);
    }
  std::vector<std::size_t> order(rows.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  SelftestOptions po = o;
  po.sched.clear();  // each policy's own
  const auto t0 = std::chrono::steady_clock::now();
  std::mutex out_mtx;
  tbb::task_arena arena(jobs);
  arena.execute([&] {
    tbb::parallel_for_each(order.begin(), order.end(), [&](std::size_t i) {
      hunt(po, which[i], rows[i]);
      std::lock_guard<std::mutex> g(out_mtx);
      const Row& r = rows[i];
      std::printf("[%6.1fs] %-16s %s: %s\n",
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                  policies[policy_of[i]].name, r.name.c_str(),
                  r.killed ? fmt::format("killed by {} at seed {} in {:.2f} s", r.oracle, r.seed, r.seconds).c_str()
                           : fmt::format("SURVIVED {} seeds", r.seeds_tried).c_str());
      std::fflush(stdout);
    });
  });
  // Seconds to kill, mutant by scheduler, and the median of each column.
  std::printf("\n%-28s", "seconds to kill");
  for (const auto& p : policies) std::printf(" %16s", p.name);
  std::printf("\n");
  std::vector<std::vector<double>> times(policies.size());
  for (std::size_t k = 0; k < mutants.size(); ++k) {
    std::printf("%-28s", vm::mutant_name(mutants[k]));
    for (std::size_t p = 0; p < policies.size(); ++p) {
      const Row& r = rows[p * mutants.size() + k];
      const double t = r.killed ? r.seconds : std::numeric_limits<double>::infinity();
      times[p].push_back(t);
      std::printf(" %16s", r.killed ? fmt::format("{:.2f}", t).c_str() : "survived");
    }
    std::printf("\n");
  }
  std::printf("%-28s", "median");
  std::vector<double> medians;
  for (std::size_t p = 0; p < policies.size(); ++p) {
    medians.push_back(median_time_to_kill(times[p]));
    std::printf(" %16s", std::isinf(medians.back()) ? "survived" : fmt::format("{:.3f}", medians.back()).c_str());
  }
  std::printf("\n%-28s", "killed");
  for (std::size_t p = 0; p < policies.size(); ++p) {
    std::size_t n = 0;
    for (double t : times[p]) n += std::isinf(t) ? 0 : 1;
    std::printf(" %16s", fmt::format("{}/{}", n, mutants.size()).c_str());
  }
  std::printf("\n");
  if (!o.json_path.empty()) {
    nlohmann::json j;
    j["faultline"] = "selftest-compare-schedulers";
    j["budget_s"] = o.budget_s;
    for (std::size_t p = 0; p < policies.size(); ++p) {
      nlohmann::json x;
      x["scheduler"] = policies[p].name;
      x["median_seconds_to_kill"] = std::isinf(medians[p]) ? nlohmann::json(nullptr) : nlohmann::json(medians[p]);
      for (std::size_t k = 0; k < mutants.size(); ++k) {
        const Row& r = rows[p * mutants.size() + k];
        x["mutants"][r.name] = {{"killed", r.killed}, {"seconds", r.seconds}, {"seed", r.seed},
                                {"seeds_tried", r.seeds_tried}, {"oracle", r.oracle}};
      }
      j["schedulers"].push_back(x);
    }
    if (!write_file(o.json_path, j.dump(2) + "\n")) {
      std::fprintf(stderr, "faultline: cannot write %s\n", o.json_path.c_str());
      return 2;
    }
  }
  return 0;
}

}  // namespace

const std::vector<SchedulerPolicy>& compared_schedulers() {
  static const std::vector<SchedulerPolicy> k = {
      {"fibers-random", {"--executor", "fibers", "--sched", "random"}, true},
      {"fibers-pct", {"--executor", "fibers", "--sched", "pct"}, true},
      {"fibers-pos", {"--executor", "fibers", "--sched", "pos"}, true},
      {"threads", {"--executor", "threads"}, false},
      {"threads-perturbed", {"--executor", "threads", "--perturb-ppm", "20000"}, false},
  };
  return k;
}

double median_time_to_kill(std::vector<double> v) {
  if (v.empty()) return std::numeric_limits<double>::infinity();
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int selftest_command(const SelftestOptions& o) {
  std::vector<vm::Mutant> mutants = o.mutants;
  if (mutants.empty())
    for (int i = 1; i < static_cast<int>(vm::Mutant::kCount); ++i) mutants.push_back(static_cast<vm::Mutant>(i));
  std::vector<Row> rows;
  std::vector<vm::Mutant> which;
  for (vm::Mutant m : mutants) {
    Row r;
    r.name = vm::mutant_name(m);
    r.lines = vm::mutant_lines(m);
    r.line = hunting_line(m);
    rows.push_back(r);
    which.push_back(m);
  }
  // The control: each distinct hunting line with no mutant, same budget.
  std::map<std::string, bool> seen;
  if (o.control)
    for (vm::Mutant m : mutants) {
      const std::vector<std::string> l = hunting_line(m);
      if (seen.emplace(line_text(l), true).second) {
        Row r;
        r.name = "control";
        r.line = l;
        rows.push_back(r);
        which.push_back(vm::Mutant::kNone);
      }
    }
  const int jobs = o.jobs > 0 ? o.jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (o.compare) return compare_command(o, mutants, jobs);
  std::printf("faultline selftest: %zu mutants and %zu control lines, %.0f s of seeds each, %d at a time\n",
              mutants.size(), rows.size() - mutants.size(), o.budget_s, jobs);
  std::fflush(stdout);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::size_t> order(rows.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::mutex out_mtx;
  tbb::task_arena arena(jobs);
  arena.execute([&] {
    tbb::parallel_for_each(order.begin(), order.end(), [&](std::size_t i) {
      hunt(o, which[i], rows[i]);
      const Row& r = rows[i];
      std::lock_guard<std::mutex> g(out_mtx);
      const double at = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (r.name == "control")
        std::printf("[%6.1fs] control %s: %s\n", at, line_text(r.line).c_str(),
                    r.killed || !r.note.empty() ? ("FAILED: " + r.first + r.note).c_str()
                                                : fmt::format("clean, {} seeds", r.seeds_tried).c_str());
      else
        std::printf("[%6.1fs] %s: %s\n", at, r.name.c_str(),
                    r.killed ? fmt::format("killed by {} at seed {} in {:.1f} s{}", r.oracle, r.seed, r.seconds,
                                           r.replay_confirmed ? ", replay confirmed" : ", REPLAY NOT CONFIRMED")
                                   .c_str()
                             : fmt::format("SURVIVED {} seeds{}", r.seeds_tried, r.note.empty() ? "" : " (" + r.note + ")")
                                   .c_str());
      std::fflush(stdout);
    });
  });
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // The matrix.
  std::printf("\n%-28s %-40s %-7s %-22s %6s %6s %9s %s\n", "mutant", "seed lines", "killed", "oracle", "seed",
              "tried", "to kill", "replay");
  int survivors = 0, unconfirmed = 0, control_failed = 0;
  for (const Row& r : rows) {
    if (r.name == "control") {
      const bool clean = !r.killed && r.note.empty();
      if (!clean) ++control_failed;
      std::printf("%-28s %-40s %-7s %-22s %6s %6llu %8.1fs %s\n", "control (no mutant)",
                  line_text(r.line).substr(0, 40).c_str(), clean ? "clean" : "FAILED",
                  clean ? "-" : r.oracle.c_str(), clean ? "-" : std::to_string(r.seed).c_str(),
                  static_cast<unsigned long long>(r.seeds_tried), r.seconds, "-");
      continue;
    }
    if (!r.killed) ++survivors;
    if (r.killed && !r.replay_confirmed) ++unconfirmed;
    std::printf("%-28s %-40s %-7s %-22s %6s %6llu %8.1fs %s\n", r.name.c_str(), r.lines.substr(0, 40).c_str(),
                r.killed ? "yes" : "NO", r.killed ? r.oracle.substr(0, 22).c_str() : "-",
                r.killed ? std::to_string(r.seed).c_str() : "-", static_cast<unsigned long long>(r.seeds_tried),
                r.seconds, r.killed ? (r.replay_confirmed ? "confirmed" : "NOT CONFIRMED") : "-");
  }
  std::printf("\n%zu of %zu mutants killed, %d replays not confirmed, control %s; %.1f s\n",
              mutants.size() - static_cast<std::size_t>(survivors), mutants.size(), unconfirmed,
              control_failed == 0 ? "clean" : "FAILED", total);

  if (!o.json_path.empty()) {
    nlohmann::json j;
    j["faultline"] = "selftest";
    j["budget_s"] = o.budget_s;
    j["jobs"] = jobs;
    j["seconds"] = total;
    for (const Row& r : rows) {
      nlohmann::json x;
      x["mutant"] = r.name;
      x["seed_lines"] = r.lines;
      x["line"] = line_text(r.line);
      x["killed"] = r.killed;
      x["oracle"] = r.oracle;
      x["first_failure"] = r.first;
      x["seed"] = r.seed;
      x["seeds_tried"] = r.seeds_tried;
      x["seconds"] = r.seconds;
      x["replay"] = r.replay;
      x["replay_confirmed"] = r.replay_confirmed;
      x["note"] = r.note;
      j[r.name == "control" ? "control" : "mutants"].push_back(x);
    }
    j["pass"] = survivors == 0 && unconfirmed == 0 && control_failed == 0;
    if (!write_file(o.json_path, j.dump(2) + "\n")) {
      std::fprintf(stderr, "faultline: cannot write %s\n", o.json_path.c_str());
      return 2;
    }
  }
  return survivors == 0 && unconfirmed == 0 && control_failed == 0 ? 0 : 1;
}

}  // namespace faultline::stress
