#include "stress/cli/cli.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <string>
#include <utility>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "locking/kassert.h"
#include "stress/cli/campaign.h"
#include "stress/run.h"
#include "stress/scenario.h"
#include "stress/cli/selftest.h"
#include "stress/cli/shrink.h"
#include "stress/cli/sweep.h"

namespace faultline::stress {

namespace {

// Strict unsigned 64-bit parse: decimal or 0x-hex, nothing else.
std::optional<std::uint64_t> parse_u64(const std::string& s) {
  std::uint64_t v = 0;
  int base = 10;
  std::string_view t = s;
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
    base = 16;
    t.remove_prefix(2);
  }
  if (t.empty()) return std::nullopt;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v, base);
  if (ec != std::errc() || end != t.data() + t.size()) return std::nullopt;
  return v;
}

// Output files are checked before anything runs: the first of `files`
// (flag, path; an empty path is not asked for) that cannot be written.
std::optional<std::string> unwritable(std::initializer_list<std::pair<const char*, std::string>> files) {
  for (const auto& [flag, path] : files) {
    if (path.empty()) continue;
    std::FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) return fmt::format("{} '{}': cannot write it: {}", flag, path, std::strerror(errno));
    std::fclose(f);
  }
  return std::nullopt;
}

int usage_error(const std::string& msg) {
  std::fprintf(stderr, "faultline: %s\n", msg.c_str());
  return 2;
}

struct Parsed {
  Config cfg;
  CLI::Option* seed_opt = nullptr;
  CLI::Option* sched_seed_opt = nullptr;
  std::string sched_seed_text;
  std::string seed_text, executor_text = "fibers", sched_text = "random", mix_text;
  bool no_pagedaemon = false, no_truncator = false;
  std::string mutant_text;
  std::vector<std::string> no_fix;
  bool list = false;
};

// Every option, bound to `p`; `copy` moves a given option's value from the
// parsed config onto the scenario's defaults.
struct OptionCopy {
  CLI::Option* opt;
  std::function<void(Config& to, const Config& from)> copy;
};

std::vector<OptionCopy> add_run_options(CLI::App& app, Parsed& p) {
  std::vector<OptionCopy> copies;
  Config& c = p.cfg;
  auto bind = [&](const char* name, auto Config::*field, const char* help) {
    CLI::Option* o = app.add_option(name, c.*field, help);
    copies.push_back({o, [field](Config& to, const Config& from) { to.*field = from.*field; }});
  };
  app.add_option("--scenario,-s", c.scenario, "scenario: " + scenario_names() + " (default mixed)");
  app.add_option("--executor,-e", p.executor_text, "threads | fibers (deterministic) | fibers-mt (K OS threads)");
  app.add_option("--sched", p.sched_text,
                 "deterministic fibers: random | pct | pos (partial order sampling) | script (--script's schedule)");
  p.seed_opt =
      app.add_option("--seed", p.seed_text, "the run's seed (decimal or 0x-hex); everything random derives from it");
  p.sched_seed_opt = app.add_option(
      "--sched-seed", p.sched_seed_text,
      "the schedule's own seed (the deterministic policy's choices, or the threads' perturbation); default: --seed,\n"
      "which then still draws every operation: one workload under many schedules");
  bind("--only-workers", &Config::only_workers,
       "start only these threads of the initial processes, e.g. p1.t0,p2.t3 (each draws the operations it\n"
       "would draw with all of them started; faultline shrink leaves out the threads a failure does not need)");
  bind("--pct-depth", &Config::pct_depth, "PCT: bug depth d (d-1 priority change points)");
  bind("--pct-steps", &Config::pct_steps,
       "PCT: the steps its change points are drawn from (default 0: 20 per operation of the initial threads\n"
       "plus 1000); given, fewer --ops cut the same run short");
  bind("--os-threads", &Config::os_threads, "fibers-mt: OS threads carrying the fibers");
  bind("--processes,-p", &Config::processes, "initial processes");
  bind("--workers,-w", &Config::workers, "threads per initial process");
  bind("--child-workers", &Config::child_workers, "threads per forked child");
  bind("--child-ops", &Config::child_ops, "operations per child thread");
  bind("--max-processes", &Config::max_live_processes, "live processes at most (forks beyond are skipped)");
  bind("--max-forks", &Config::max_forks, "forks in the whole run, children's included (beyond: skipped)");
  bind("--ops,-n", &Config::ops, "operations per thread of an initial process");
  bind("--duration", &Config::duration_s, "threads, fibers-mt: stop starting operations after this many seconds");
  bind("--pages", &Config::pages, "physical pages (memory pressure)");
  bind("--anon-pages", &Config::anon_pages, "anonymous pages per process");
  bind("--scratch-pages", &Config::scratch_pages, "scratch (mprotected) pages per process");
  bind("--churn-pages", &Config::churn_pages, "churn (munmapped) pages per process");
  bind("--file-pages", &Config::file_pages, "pages of the shared file");
  bind("--device-pages", &Config::device_pages, "pages of the device every process maps");
  bind("--io-latency-us", &Config::io_latency_us, "pager I/O time, microseconds");
  bind("--io-error-ppm", &Config::io_error_ppm, "pager I/O errors, parts per million");
  bind("--perturb-ppm", &Config::perturb_ppm, "threads, fibers-mt: chance of a seeded yield (or, threads only, short delay) per schedule point");
  bind("--max-steps", &Config::max_steps, "deterministic fibers: schedule-point budget (0: none)");
  bind("--stall-steps", &Config::stall_steps,
       "deterministic fibers: fail (livelock) if no operation completes in this many schedule points"
       " (default 50000000; 0: off)");
  bind("--check-every", &Config::check_every,
       "stop everything every this many operations for a quiescent check of the data and the invariants"
       " (0: only at the end)");
  bind("--watchdog", &Config::watchdog_s, "fail if no operation completes for this many seconds");
  bind("--expect-digest", &Config::expect_digest, "deterministic fibers: fail unless the schedule digest is this");
  bind("--script", &Config::script,
       "--sched script: the choices that differ from the default schedule (run on; else the lowest id), as\n"
       "PLACE:NAME,... in the order made (run worker NAME there), a PLACE being BY@POINT[.AFTER]: the choice\n"
       "made when worker BY (by name: p2.t1, pagedaemon, ...) reached its POINT-th schedule point, or the\n"
       "AFTER-th one after it (BY blocked, slept or ended); BY -: before any worker ran (faultline shrink prints\n"
       "one; --record-script writes one)");
  bind("--record-script", &Config::record_script_path,
       "deterministic fibers: write the run's choices that differ from the default here (a --script's text)");
  bind("--explain-decision", &Config::explain_decision,
       "deterministic fibers: at the choice made at PLACE (as in --script), print the worker that ran and the\n"
       "one the default would have run,\n"
       "each with its code site and the locks it held");
  bind("--trace", &Config::trace_path, "write a Chrome trace-event JSON of the run here (opens in Perfetto)");
  bind("--json", &Config::json_path,
       "write the run's summary as JSON here: configuration, verdict, counters, retry paths, lock profile,"
       " replay line, digest");
  bind("--trace-events", &Config::trace_events, "--trace: record at most this many slices (default 1000000, about 90 MB of JSON)");
  app.add_option("--mix", p.mix_text, "operation weights, e.g. read=40,write=40,fork=2 (others keep the scenario's)");
  app.add_flag("--no-pagedaemon", p.no_pagedaemon, "no pageout daemon");
  app.add_flag("--no-truncator", p.no_truncator, "no truncator");
  // The lists come from the catalogues, so the help cannot fall behind them.
  std::string mutants, fixes;
  for (int i = 1; i < static_cast<int>(vm::Mutant::kCount); ++i)
    mutants += std::string(mutants.empty() ? "" : ", ") + vm::mutant_name(static_cast<vm::Mutant>(i));
  for (unsigned f = 0; f < static_cast<unsigned>(vm::Fix::kCount); ++f)
    fixes += std::string(fixes.empty() ? "" : ", ") + vm::fix_name(static_cast<vm::Fix>(f));
  app.add_option("--mutant", p.mutant_text,
                 "self-test: inject a known protocol fault (" + mutants + "); the run must fail");
  app.add_option("--no-fix", p.no_fix,
                 "turn off a fix of a 7.x race (repeatable; 'all' for 7.x as written; faultline list fixes): " + fixes);
  CLI::Option* ab = app.add_flag("--abort-on-report", c.abort_on_report, "lock checker aborts at the first report");
  copies.push_back({ab, [](Config& to, const Config& from) { to.abort_on_report = from.abort_on_report; }});
  CLI::Option* nc = app.add_flag("--no-lock-checker", c.no_lock_checker,
                                 "lock-order checker off (misuse and failed ownership assertions still abort), to"
                                 " measure what it costs");
  copies.push_back({nc, [](Config& to, const Config& from) { to.no_lock_checker = from.no_lock_checker; }});
  CLI::Option* np = app.add_flag("--no-lock-profile", c.no_lock_profile,
                                 "lock profiling off (no lock profile in the summary), to measure what it costs");
  copies.push_back({np, [](Config& to, const Config& from) { to.no_lock_profile = from.no_lock_profile; }});
  ab->excludes(nc);
  CLI::Option* rr = app.add_flag("--require-reach", c.require_reach,
                                 "fail the run if a window of the reach catalogue (faultline list windows) was never entered");
  copies.push_back({rr, [](Config& to, const Config& from) { to.require_reach = from.require_reach; }});
  CLI::Option* pr = app.add_flag("--print-reach", c.print_reach,
                                 "print the reach table's counts on one line, 'reach-counts: n,n,...' in catalogue"
                                 " order (a sweep's children do, for the sweep's table)");
  copies.push_back({pr, [](Config& to, const Config& from) { to.print_reach = from.print_reach; }});
  CLI::Option* q = app.add_flag("--quiet,-q", c.quiet, "only the verdict and failures");
  copies.push_back({q, [](Config& to, const Config& from) { to.quiet = from.quiet; }});
  return copies;
}

// The scenario's defaults, then every option given on the command line.
std::optional<std::string> resolve(const Parsed& p, const std::vector<OptionCopy>& copies, Config& out) {
  const Scenario* sc = find_scenario(p.cfg.scenario);
  if (sc == nullptr)
    return fmt::format("--scenario '{}' is not a scenario (known: {})", p.cfg.scenario, scenario_names());
  Config c;
  c.scenario = sc->name;
  sc->apply(c);
  bool max_given = false;
  for (const OptionCopy& oc : copies) {
    if (oc.opt->count() == 0) continue;
    oc.copy(c, p.cfg);
    max_given |= oc.opt->check_lname("max-processes");
  }
  // Unless set, the live-process limit leaves room for forks above however
  // many initial processes were asked for.
  if (!max_given && c.max_live_processes < c.processes + 6) c.max_live_processes = c.processes + 6;
  auto ex = parse_executor(p.executor_text);
  if (!ex) return fmt::format("--executor '{}' is not one of threads, fibers, fibers-mt", p.executor_text);
  c.executor = *ex;
  auto sched = parse_sched(p.sched_text);
  if (!sched) return fmt::format("--sched '{}' is not one of random, pct, pos, script", p.sched_text);
  c.sched = *sched;
  if (p.seed_opt->count() != 0) {
    auto seed = parse_u64(p.seed_text);
    if (!seed) return fmt::format("--seed '{}' is not an unsigned 64-bit integer (decimal or 0x-hex)", p.seed_text);
    c.seed = *seed;
  }
  if (p.sched_seed_opt->count() != 0) {
    auto seed = parse_u64(p.sched_seed_text);
    if (!seed)
      return fmt::format("--sched-seed '{}' is not an unsigned 64-bit integer (decimal or 0x-hex)", p.sched_seed_text);
    c.sched_seed = *seed;
  }
  if (!p.mix_text.empty())
    if (auto e = parse_mix(p.mix_text, c.mix)) return e;
  if (p.no_pagedaemon) c.pagedaemon = false;
  if (p.no_truncator) c.truncator = false;
  if (!p.mutant_text.empty()) {
    bool found = false;
    std::string known;
    for (int i = 0; i < static_cast<int>(vm::Mutant::kCount); ++i) {
      const auto m = static_cast<vm::Mutant>(i);
      known += std::string(known.empty() ? "" : ", ") + vm::mutant_name(m);
      if (p.mutant_text == vm::mutant_name(m)) {
        c.mutant = m;
        found = true;
      }
    }
    if (!found) return fmt::format("--mutant '{}' is not a known mutant ({})", p.mutant_text, known);
  }
  for (const std::string& name : p.no_fix) {
    std::string known = "all";
    bool found = name == "all";
    if (found) c.fixes = 0;
    for (unsigned f = 0; f < static_cast<unsigned>(vm::Fix::kCount); ++f) {
      known += std::string(", ") + vm::fix_name(static_cast<vm::Fix>(f));
      if (name == vm::fix_name(static_cast<vm::Fix>(f))) {
        c.fixes &= ~(1u << f);
        found = true;
      }
    }
    if (!found) return fmt::format("--no-fix '{}' is not a known fix ({})", name, known);
  }
  if (auto e = c.validate()) return e;
  out = c;
  return std::nullopt;
}

// --json: the summary of a run that ended, or of one that could not; the
// verdict first, then what run_once reported.
bool write_json(const std::string& path, const nlohmann::ordered_json& report, const Config& cfg, int code,
                const std::string& verdict, const std::vector<Failure>& failures) {
  nlohmann::ordered_json j;
  j["faultline"] = {{"version", FL_VERSION}, {"invariants", invariants_compiled_in()}};
  j["verdict"] = verdict;
  j["pass"] = code == 0;
  j["exit_code"] = code;
  j["replay"] = cfg.replay_line();
  j["config"] = cfg.to_json();
  for (const auto& [key, value] : report.items())
    if (!j.contains(key) && key != "failures") j[key] = value;
  j["failures"] = failures_json(failures);
  return write_file(path, j.dump(2) + "\n");
}

int run_command(const Config& cfg) {
  RunOptions opts;
  opts.progress = !cfg.quiet;
  opts.handle_sigint = true;
  opts.handle_crash = true;
  if (!cfg.json_path.empty()) {
    // Written now, so a run that dies of a signal still leaves a verdict;
    // replaced when the run ends.
    write_json(cfg.json_path, nlohmann::ordered_json::object(), cfg, 1,
               "FAIL (the run did not finish: it crashed or was killed; its output has the report)", {});
    opts.on_fatal = [&cfg](const std::string& verdict, const std::vector<Failure>& failures) {
      write_json(cfg.json_path, nlohmann::ordered_json::object(), cfg, 1, verdict, failures);
    };
  }
  RunResult r = run_once(cfg, opts);
  if (!cfg.quiet) std::printf("%s", r.summary.c_str());
  int code = r.exit_code;
  std::string verdict = r.verdict;
  if (!cfg.expect_digest.empty()) {
    const std::string got = fmt::format("{:016x}", r.digest);
    auto want = parse_u64(cfg.expect_digest.rfind("0x", 0) == 0 ? cfg.expect_digest : "0x" + cfg.expect_digest);
    if (!want || *want != r.digest) {
      verdict = fmt::format("FAIL (schedule digest {} is not the expected {})", got, cfg.expect_digest);
      if (code == 0) code = 1;
    }
  }
  for (const Failure& f : r.failures) std::printf("FAIL [%s] %s\n", f.oracle.c_str(), f.what.c_str());
  if (cfg.print_reach) {
    std::string counts;
    for (const vm::ReachRow& row : r.reach) counts += fmt::format("{}{}", counts.empty() ? "" : ",", row.count);
    std::printf("reach-counts: %s\n", counts.c_str());
  }
  std::printf("%s: %s\n", code == 0 ? "pass" : "verdict", verdict.c_str());
  if (code != 0) std::printf("replay: %s\n", cfg.replay_line().c_str());
  if (!cfg.json_path.empty()) {
    if (!cfg.expect_digest.empty()) r.report["expect_digest"] = cfg.expect_digest;
    if (!write_json(cfg.json_path, r.report, cfg, code, verdict, r.failures)) {
      std::printf("faultline: --json '%s': could not write it: %s\n", cfg.json_path.c_str(), std::strerror(errno));
      if (code == 0) code = 2;
    }
  }
  std::fflush(stdout);
  return code;
}

// One run's options, as on the command line, into a Config.
std::optional<std::string> config_of(const std::vector<std::string>& args, Config& out) {
  CLI::App app;
  Parsed p;
  std::vector<OptionCopy> copies = add_run_options(app, p);
  std::vector<std::string> rev(args.rbegin(), args.rend());
  try {
    app.parse(rev);
  } catch (const CLI::ParseError& e) {
    return e.what();
  }
  return resolve(p, copies, out);
}

int campaign_command(bool quiet, const std::string& json_path) {
  const std::vector<CampaignRun>& runs = default_campaign();
  std::vector<Config> cfgs(runs.size());
  for (std::size_t i = 0; i < runs.size(); ++i)
    if (auto e = config_of(runs[i].args, cfgs[i]))
      return usage_error(fmt::format("campaign run {}: {}", runs[i].name, *e));
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<vm::ReachRow> total;
  std::vector<std::string> firsts;
  nlohmann::ordered_json jruns = nlohmann::ordered_json::array();
  int code = 0;
  std::vector<std::string> failed_runs;
  std::printf("faultline: the default campaign, %zu runs one after another; the reach tables summed, and every"
              " window of the catalogue must be entered (faultline list windows)\n",
              runs.size());
  for (std::size_t i = 0; i < runs.size(); ++i) {
    Config cfg = cfgs[i];
    cfg.quiet = quiet;
    std::printf("=== run %zu/%zu, %s: %s\n    %s\n", i + 1, runs.size(), runs[i].name, runs[i].why,
                cfg.replay_line().c_str());
    std::fflush(stdout);
    RunOptions opts;
    opts.progress = !quiet;
    opts.handle_sigint = true;
    opts.handle_crash = true;
    const RunResult r = run_once(cfg, opts);
    // The first run's whole summary (the campaign's main run); one line of
    // the others.
    if (i == 0 && !quiet) {
      std::printf("%s", r.summary.c_str());
    } else {
      std::size_t entered = 0;
      for (const vm::ReachRow& row : r.reach) entered += row.count != 0;
      std::printf("  %llu operations in %.1f s, %zu windows entered\n", static_cast<unsigned long long>(r.ops),
                  r.seconds, entered);
    }
    for (const Failure& f : r.failures) std::printf("FAIL [%s] %s\n", f.oracle.c_str(), f.what.c_str());
    std::printf("run %zu/%zu %s: %s\n", i + 1, runs.size(), runs[i].name, r.verdict.c_str());
    if (r.exit_code != 0) {
      std::printf("replay: %s\n", cfg.replay_line().c_str());
      code = std::max(code, r.exit_code);
      failed_runs.push_back(runs[i].name);
    }
    std::fflush(stdout);
    if (total.empty()) {
      total = r.reach;
      firsts.assign(total.size(), "-");
    } else {
      for (std::size_t k = 0; k < total.size(); ++k) total[k].count += r.reach[k].count;
    }
    for (std::size_t k = 0; k < total.size(); ++k)
      if (firsts[k] == "-" && r.reach[k].first)
        firsts[k] = fmt::format("{}: {}", runs[i].name, *r.reach[k].first);
    jruns.push_back({{"name", runs[i].name},
                     {"why", runs[i].why},
                     {"replay", cfg.replay_line()},
                     {"pass", r.exit_code == 0},
                     {"verdict", r.verdict},
                     {"seconds", r.seconds},
                     {"operations", r.ops},
                     {"reach", reach_json(r.reach)}});
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("campaign %s", format_reach(total, "first (run: ops)", firsts).c_str());
  const std::vector<std::string> never = unreached(total);
  std::string verdict;
  if (!never.empty()) {
    std::printf("FAIL [reach] %s\n", never_reached_message(never).c_str());
    code = std::max(code, 1);
  }
  std::printf("campaign: %zu runs in %.1f s; %zu of them failed; %zu windows never reached\n", runs.size(), secs,
              failed_runs.size(), never.size());
  if (code == 0)
    verdict = "PASS";
  else
    verdict = fmt::format("FAIL ({}{}{})", failed_runs.empty() ? "" : "runs failed: ",
                          fmt::join(failed_runs, ", "),
                          never.empty() ? "" : fmt::format("{}{} windows never reached", failed_runs.empty() ? "" : "; ",
                                                           never.size()));
  std::printf("%s: %s\n", code == 0 ? "pass" : "verdict", verdict.c_str());
  if (!json_path.empty()) {
    nlohmann::ordered_json j;
    j["faultline"] = {{"version", FL_VERSION}, {"invariants", invariants_compiled_in()}};
    j["campaign"] = true;
    j["verdict"] = verdict;
    j["pass"] = code == 0;
    j["exit_code"] = code;
    j["seconds"] = secs;
    j["runs"] = jruns;
    j["reach"] = reach_json(total);
    j["never_reached"] = never;
    if (!write_file(json_path, j.dump(2) + "\n")) {
      std::printf("faultline: --json '%s': could not write it: %s\n", json_path.c_str(), std::strerror(errno));
      if (code == 0) code = 2;
    }
  }
  std::fflush(stdout);
  return code;
}

}  // namespace

std::optional<std::string> parse_run_args(const std::vector<std::string>& args, Config& out) {
  return config_of(args, out);
}

// `faultline shrink [--budget S] [--seeds K] [--jobs N] [--json F] [--] LINE`:
// LINE is a replay line, as words or as one quoted string.  Its own
// options come first; the first word they do not know starts the line.
int shrink_main(const std::vector<std::string>& args) {
  ShrinkOptions so;
  std::size_t i = 1;
  auto value = [&]() -> std::optional<std::string> {
    if (i + 1 >= args.size()) return std::nullopt;
    ++i;
    return args[i];
  };
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a == "--schedule-only") {
      so.schedule_only = true;
      continue;
    }
    if (a == "--help" || a == "-h") {
      std::printf(
          "faultline shrink [--budget S] [--seeds K] [--jobs N] [--json FILE] [--schedule-only] [--] REPLAY-LINE\n"
          "  Shrinks a failing run: processes, workers, single threads, operations, children, pages, daemons and\n"
          "  the operation mix while some seed still fails the same way (the same oracle, the same first failure\n"
          "  line but for numbers); then, under deterministic fibers, the recorded schedule to a 1-minimal set of\n"
          "  preemptions (ddmin), threads and operations again with that schedule held, and the decisive\n"
          "  decision: the latest one whose flip makes the run pass, explained with both workers' code sites\n"
          "  and held locks.  Prints the replay line before and after.\n"
          "  --budget S   seconds for the whole shrink (default 300); the best so far is printed when it runs out\n"
          "  --seeds K    seeds tried per candidate configuration (default 8)\n"
          "  --jobs N     runs at a time (default: the machine's cores)\n"
          "  --json FILE  before, after and the decision as JSON\n"
          "  --schedule-only  keep the line's configuration: only the schedule and the decisive decision\n");
      return 0;
    }
    if (a == "--budget" || a == "--seeds" || a == "--jobs" || a == "-j" || a == "--json") {
      auto v = value();
      if (!v) return usage_error(fmt::format("shrink: {} needs a value", a));
      if (a == "--json") {
        so.json_path = *v;
        continue;
      }
      char* end = nullptr;
      const double d = std::strtod(v->c_str(), &end);
      if (end == v->c_str() || *end != '\0' || !std::isfinite(d))
        return usage_error(fmt::format("shrink: {} '{}' is not a number", a, *v));
      if (a == "--budget") {
        if (d <= 0 || d > 86400) return usage_error(fmt::format("shrink: --budget {} is out of range (0..86400 seconds, not 0)", *v));
        so.budget_s = d;
      } else if (a == "--seeds") {
        if (d < 1 || d > 10000 || d != static_cast<int>(d))
          return usage_error(fmt::format("shrink: --seeds {} is out of range (1..10000)", *v));
        so.seeds = static_cast<int>(d);
      } else {
        if (d < 0 || d > 4096 || d != static_cast<int>(d))
          return usage_error(fmt::format("shrink: --jobs {} is out of range (0..4096)", *v));
        so.jobs = static_cast<int>(d);
      }
      continue;
    }
    break;
  }
  for (; i < args.size(); ++i) {
    std::istringstream in(args[i]);
    for (std::string w; in >> w;) so.line.push_back(w);
  }
  if (auto e = unwritable({{"--json", so.json_path}})) return usage_error(*e);
  return shrink_command(so);
}

int cli_main(const std::vector<std::string>& args) {
  if (!args.empty() && args[0] == "shrink") return shrink_main(args);
  CLI::App app{"faultline: stress FreeBSD 7's page-fault protocol with threads and fibers.\n"
               "With no arguments, runs the default campaign (scenario mixed, deterministic fibers).\n"
               "faultline shrink [...] REPLAY-LINE shrinks a failing run (faultline shrink --help)."};
  app.set_help_all_flag("--help-all");
  Parsed p;
  std::vector<OptionCopy> copies = add_run_options(app, p);
  CLI::App* list = app.add_subcommand(
      "list",
      "list the scenarios, the fixes of 7.x races (list fixes), the protocol mutants (list mutants), or the reach\n"
      "catalogue (list windows)");
  std::string list_what = "scenarios";
  list->add_option("what", list_what, "scenarios (default), fixes, mutants or windows")
      ->check(CLI::IsMember({"scenarios", "fixes", "mutants", "windows"}));
  CLI::App* campaign = app.add_subcommand(
      "campaign",
      "the default campaign (what faultline runs with no arguments): the mixed scenario's long run, then short runs\n"
      "aimed at the windows it does not enter; fails if a run fails or a window of the catalogue is never entered.\n"
      "Takes --quiet and --json only");
  campaign->fallthrough();
  CLI::App* sweep = app.add_subcommand(
      "sweep",
      "run a range of seeds, each in its own process, on all cores; the run options (before or after\n"
      "'sweep') apply to every seed.  Shards: --shard i/N, or GTEST_SHARD_INDEX and GTEST_TOTAL_SHARDS");
  sweep->fallthrough();
  std::string seeds_text = "1..100", shard_text;
  int jobs = 0;
  double timeout_s = 600;
  sweep->add_option("--seeds", seeds_text, "seeds A..B (inclusive) or one seed (default 1..100)");
  sweep->add_option("--jobs,-j", jobs, "runs at a time (default: the machine's cores)");
  sweep->add_option("--shard", shard_text, "this job's share i/N of the seeds: every N-th, from the i-th");
  sweep->add_option("--timeout", timeout_s, "seconds a seed may take before it is killed and failed (default 600)");
  bool swarm = false;
  sweep->add_flag("--swarm", swarm,
                  "swarm testing: each seed draws its own mix (some operations off), memory, sizes, workers, children\n"
                  "and I/O latency and errors from the seed; a failing seed's replay line is its drawn configuration");
  std::string junit_path;
  sweep->add_option("--junit", junit_path,
                    "write JUnit XML here: one test case per seed, a failing seed with its first failure and replay line");
  CLI::App* selftest = app.add_subcommand(
      "selftest",
      "prove the harness has teeth: hunt each protocol mutant (faultline list mutants) with seeds of its line, each\n"
      "in its own process, until an oracle fails the run; replay the failure in a fresh process; a control row\n"
      "runs the same lines with no mutant.  Prints the kill matrix; fails if a mutant survives, a replay does not\n"
      "fail the same way, or the control fails");
  double budget_s = 20;
  int st_jobs = 0;
  std::string st_mutants, st_sched, st_json;
  bool no_control = false;
  selftest->add_option("--budget", budget_s, "seconds of seeds per mutant and per control line (default 20)");
  selftest->add_option("--jobs,-j", st_jobs, "mutants hunted at a time (default: the machine's cores)");
  selftest->add_option("--mutants", st_mutants, "a comma-separated subset of the catalogue (default: all)");
  selftest->add_option("--sched", st_sched, "the deterministic scheduler of every run: random | pct | pos");
  selftest->add_option("--json", st_json, "write the kill matrix as JSON here");
  selftest->add_flag("--no-control", no_control, "no control row");
  bool compare = false;
  selftest->add_flag("--compare-schedulers", compare,
                     "hunt every mutant under each scheduler (deterministic fibers random, PCT and POS, OS threads plain\n"
                     "and perturbed) and print the seconds to kill, mutant by scheduler, with each one's median");
  app.set_version_flag("--version", std::string("faultline ") + FL_VERSION);
  std::vector<std::string> rev(args.rbegin(), args.rend());
  try {
    app.parse(rev);
  } catch (const CLI::CallForHelp& e) {
    std::printf("%s", app.help().c_str());
    return 0;
  } catch (const CLI::CallForVersion& e) {
    std::printf("%s\n", e.what());
    return 0;
  } catch (const CLI::CallForAllHelp& e) {
    std::printf("%s", app.help("", CLI::AppFormatMode::All).c_str());
    return 0;
  } catch (const CLI::ParseError& e) {
    return usage_error(e.what());
  }
  if (list->parsed()) {
    if (list_what == "fixes") {
      // Each on by default; --no-fix NAME turns it off (7.x as written there).
      for (unsigned f = 0; f < static_cast<unsigned>(vm::Fix::kCount); ++f)
        std::printf("%s\n    %s\n", vm::fix_name(static_cast<vm::Fix>(f)), vm::fix_what(static_cast<vm::Fix>(f)));
      return 0;
    }
    if (list_what == "mutants") {
      // Off by default; --mutant NAME turns one on (self-tests: the harness
      // must fail the run).
      for (int i = 1; i < static_cast<int>(vm::Mutant::kCount); ++i) {
        const auto m = static_cast<vm::Mutant>(i);
        std::printf("%-28s %s\n    %s\n", vm::mutant_name(m), vm::mutant_lines(m), vm::mutant_what(m));
      }
      std::printf("%d mutants\n", static_cast<int>(vm::Mutant::kCount) - 1);
      return 0;
    }
    if (list_what == "windows") {
      // The reach catalogue: what --require-reach asks a run to enter.
      for (const vm::Window& w : vm::reach_catalogue())
        std::printf("%-26s %-40s %s\n", w.name, w.where, w.what);
      std::printf("%zu windows\n", vm::reach_catalogue().size());
      return 0;
    }
    for (const Scenario& s : scenarios()) std::printf("%-16s %s\n", s.name, s.what);
    return 0;
  }
  if (selftest->parsed()) {
    if (args.size() < 1 || campaign->parsed() || sweep->parsed())
      return usage_error("selftest: not with campaign or sweep");
    for (const CLI::Option* o : app.get_options())
      if (o->count() != 0)
        return usage_error(fmt::format("selftest: {} is a run option (each mutant has its own line; see"
                                       " faultline list mutants)",
                                       o->get_name()));
    SelftestOptions so;
    if (!std::isfinite(budget_s) || budget_s <= 0 || budget_s > 86400)
      return usage_error(fmt::format("--budget {} is out of range (0..86400 seconds, not 0)", budget_s));
    so.budget_s = budget_s;
    if (st_jobs < 0 || st_jobs > 4096) return usage_error(fmt::format("--jobs {} is out of range (0..4096)", st_jobs));
    so.jobs = st_jobs;
    if (!st_sched.empty() && st_sched != "random" && st_sched != "pct" && st_sched != "pos")
      return usage_error(fmt::format("--sched '{}' is not one of random, pct, pos", st_sched));
    so.sched = st_sched;
    std::istringstream in(st_mutants);
    for (std::string name; std::getline(in, name, ',');) {
      bool found = false;
      for (int i = 1; i < static_cast<int>(vm::Mutant::kCount); ++i)
        if (name == vm::mutant_name(static_cast<vm::Mutant>(i))) {
          so.mutants.push_back(static_cast<vm::Mutant>(i));
          found = true;
        }
      if (!found) return usage_error(fmt::format("--mutants: '{}' is not a known mutant (faultline list mutants)", name));
    }
    if (auto e = unwritable({{"--json", st_json}})) return usage_error(*e);
    so.json_path = st_json;
    so.control = !no_control;
    so.compare = compare;
    if (compare && !st_sched.empty()) return usage_error("--compare-schedulers runs every scheduler: not with --sched");
    return selftest_command(so);
  }
  if (args.empty() || campaign->parsed()) {
    if (sweep->parsed()) return usage_error("campaign and sweep: one at a time");
    for (const CLI::Option* o : app.get_options())
      if (o->count() != 0 && !o->check_lname("quiet") && !o->check_lname("json"))
        return usage_error(fmt::format("campaign: {} is not a campaign option (it takes --quiet and --json; a"
                                       " single run takes the others)",
                                       o->get_name()));
    if (auto e = unwritable({{"--json", p.cfg.json_path}})) return usage_error(*e);
    return campaign_command(p.cfg.quiet, p.cfg.json_path);
  }
  Config cfg;
  if (auto err = resolve(p, copies, cfg)) return usage_error(*err);
  if (sweep->parsed()) {
    SweepOptions so;
    if (auto e = parse_seed_range(seeds_text, so)) return usage_error(*e);
    if (jobs < 0 || jobs > 4096) return usage_error(fmt::format("--jobs {} is out of range (0..4096)", jobs));
    so.jobs = jobs;
    if (!std::isfinite(timeout_s) || timeout_s <= 0 || timeout_s > 86400)
      return usage_error(fmt::format("--timeout {} is out of range (0..86400 seconds, not 0)", timeout_s));
    so.timeout_s = timeout_s;
    so.swarm = swarm;
    if (!shard_text.empty()) {
      if (auto e = parse_shard(shard_text, so)) return usage_error(*e);
    } else {
      const char* n = std::getenv("GTEST_TOTAL_SHARDS");
      const char* i = std::getenv("GTEST_SHARD_INDEX");
      if ((n != nullptr) != (i != nullptr))
        return usage_error("GTEST_TOTAL_SHARDS and GTEST_SHARD_INDEX must be set together");
      if (n != nullptr)
        if (auto e = parse_shard(std::string(i) + "/" + n, so))
          return usage_error(fmt::format("GTEST_SHARD_INDEX={} GTEST_TOTAL_SHARDS={}: {}", i, n, *e));
    }
    if (!cfg.expect_digest.empty()) return usage_error("--expect-digest names one run's schedule: not with sweep");
    if (!cfg.trace_path.empty()) return usage_error("--trace writes one run's trace: not with sweep (trace a seed's replay line)");
    if (auto e = unwritable({{"--junit", junit_path}, {"--json", cfg.json_path}})) return usage_error(*e);
    so.junit_path = junit_path;
    so.json_path = cfg.json_path;
    return sweep_command(cfg, so);
  }
  if (auto e = unwritable({{"--trace", cfg.trace_path}, {"--json", cfg.json_path}, {"--record-script", cfg.record_script_path}}))
    return usage_error(*e);
  return run_command(cfg);
}

}  // namespace faultline::stress
