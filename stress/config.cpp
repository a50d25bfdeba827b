#include "stress/config.h"

#include <charconv>
#include <cmath>

#include <fmt/format.h>

#include "stress/scenario.h"
#include "stress/sched/policy.h"

namespace faultline::stress {

const char* executor_name(ExecutorKind e) noexcept {
  switch (e) {
    case ExecutorKind::kThreads: return "threads";
    case ExecutorKind::kFibers: return "fibers";
    case ExecutorKind::kFibersMt: return "fibers-mt";
  }
  return "?";
}

std::optional<ExecutorKind> parse_executor(std::string_view s) noexcept {
  for (auto e : {ExecutorKind::kThreads, ExecutorKind::kFibers, ExecutorKind::kFibersMt})
    if (s == executor_name(e)) return e;
  return std::nullopt;
}

const char* sched_name(SchedKind s) noexcept {
  switch (s) {
    case SchedKind::kRandom: return "random";
    case SchedKind::kPct: return "pct";
    case SchedKind::kPos: return "pos";
    case SchedKind::kScript: return "script";
  }
  return "?";
}

std::optional<SchedKind> parse_sched(std::string_view s) noexcept {
  for (auto k : {SchedKind::kRandom, SchedKind::kPct, SchedKind::kPos, SchedKind::kScript})
    if (s == sched_name(k)) return k;
  return std::nullopt;
}

const char* op_name(Op op) noexcept {
  switch (op) {
    case Op::kRead: return "read";
    case Op::kWrite: return "write";
    case Op::kFileRead: return "file-read";
    case Op::kFork: return "fork";
    case Op::kProtect: return "mprotect";
    case Op::kChurn: return "munmap";
    case Op::kWire: return "mlock";
    case Op::kAdvise: return "madvise";
    case Op::kSend: return "send";
    case Op::kDevRead: return "dev-read";
    case Op::kFileWrite: return "file-write";
    case Op::kWireNone: return "mlock-none";
    case Op::kFilePrivate: return "file-private";
    case Op::kWireFile: return "mlock-file";
    case Op::kSendFile: return "send-file";
    case Op::kProtectFile: return "mprotect-file";
    case Op::kAdviseFile: return "madvise-file";
    case Op::kUnmapFile: return "munmap-file";
    case Op::kWirePrivate: return "mlock-private";
    case Op::kProtectPrivate: return "mprotect-private";
    case Op::kUnmapPrivate: return "munmap-private";
    case Op::kCount: break;
  }
  return "?";
}

std::optional<Op> parse_op(std::string_view s) noexcept {
  for (std::size_t i = 0; i < kOps; ++i)
    if (s == op_name(static_cast<Op>(i))) return static_cast<Op>(i);
  return std::nullopt;
}

std::optional<std::string> parse_mix(std::string_view text, Mix& mix) {
  Mix out = mix;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view part = text.substr(pos, comma - pos);
    pos = comma + 1;
    if (part.empty()) {
      if (comma == text.size()) break;
      return fmt::format("--mix '{}': empty entry", text);
    }
    const std::size_t eq = part.find('=');
    if (eq == std::string_view::npos)
      return fmt::format("--mix '{}': '{}' is not op=weight", text, part);
    const std::string_view name = part.substr(0, eq), weight = part.substr(eq + 1);
    const auto op = parse_op(name);
    if (!op) {
      std::string names;
      for (std::size_t i = 0; i < kOps; ++i) names += (i ? ", " : "") + std::string(op_name(static_cast<Op>(i)));
      return fmt::format("--mix: unknown operation '{}' (known: {})", name, names);
    }
    std::uint32_t w = 0;
    auto [end, ec] = std::from_chars(weight.data(), weight.data() + weight.size(), w);
    if (ec != std::errc() || end != weight.data() + weight.size() || w > 1000000)
      return fmt::format("--mix: weight '{}' of {} is not an integer in 0..1000000", weight, name);
    out[static_cast<std::size_t>(*op)] = w;
  }
  mix = out;
  return std::nullopt;
}

std::string format_mix(const Mix& mix) {
  // Every operation, zeros too: --mix changes only the weights it names, so
  // a replay line that left out a zero would run the scenario's weight.
  std::string out;
  for (std::size_t i = 0; i < kOps; ++i) {
    if (!out.empty()) out += ',';
    out += fmt::format("{}={}", op_name(static_cast<Op>(i)), mix[i]);
  }
  return out;
}

namespace {

// --only-workers' list as (pid, thread) pairs, or a message naming the bad
// part.
std::optional<std::string> parse_workers(const std::string& text, int processes, int workers,
                                         std::vector<std::pair<std::uint32_t, int>>* out) {
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    const std::string_view part = std::string_view(text).substr(pos, end - pos);
    std::uint32_t pid = 0;
    int j = -1;
    const std::size_t dot = part.find(".t");
    const char* b = part.data();
    if (part.size() < 4 || part[0] != 'p' || dot == std::string_view::npos ||
        std::from_chars(b + 1, b + dot, pid).ptr != b + dot ||
        std::from_chars(b + dot + 2, b + part.size(), j).ptr != b + part.size())
      return fmt::format("--only-workers: '{}' is not a thread pP.tJ (as the run names them: p1.t0, p2.t3, ...)",
                         part);
    if (pid < 1 || pid > static_cast<std::uint32_t>(processes) || j < 0 || j >= workers)
      return fmt::format("--only-workers: '{}' is not a thread of the initial processes (p1..p{}, t0..t{})", part,
                         processes, workers - 1);
    for (const auto& [q, k] : *out)
      if (q == pid && k == j) return fmt::format("--only-workers: '{}' is named twice", part);
    out->emplace_back(pid, j);
    pos = end + 1;
  }
  return std::nullopt;
}

}  // namespace

bool Config::worker_started(std::uint32_t pid, int j) const {
  if (only_workers.empty()) return true;
  std::vector<std::pair<std::uint32_t, int>> list;
  if (parse_workers(only_workers, processes, workers, &list)) return true;  // validate() refuses it
  for (const auto& [q, k] : list)
    if (q == pid && k == j) return true;
  return false;
}

int Config::started_workers() const {
  if (only_workers.empty()) return processes * workers;
  std::vector<std::pair<std::uint32_t, int>> list;
  if (parse_workers(only_workers, processes, workers, &list)) return processes * workers;
  return static_cast<int>(list.size());
}

std::vector<std::string> Config::fixes_off() const {
  std::vector<std::string> off;
  for (unsigned f = 0; f < static_cast<unsigned>(vm::Fix::kCount); ++f)
    if ((fixes >> f & 1u) == 0) off.emplace_back(vm::fix_name(static_cast<vm::Fix>(f)));
  return off;
}

std::optional<std::string> Config::validate() const {
  auto range = [](const char* flag, auto v, auto lo, auto hi) -> std::optional<std::string> {
    if (v < lo || v > hi) return fmt::format("{} {} is out of range ({}..{})", flag, v, lo, hi);
    return std::nullopt;
  };
  if (!find_scenario(scenario))
    return fmt::format("unknown scenario '{}' (known: {})", scenario, scenario_names());
  if (auto e = range("--processes", processes, 1, 100000)) return e;
  if (!script.empty()) {
    if (executor != ExecutorKind::kFibers || sched != SchedKind::kScript)
      return fmt::format("--script '{}' needs --executor fibers --sched script", script);
    Script parsed;
    if (auto e = parse_script(script, parsed)) return e;
  }
  if (!explain_decision.empty()) {
    Place p;
    if (auto e = parse_place(explain_decision, p)) return "--explain-decision: " + *e;
  }
  if ((!record_script_path.empty() || !explain_decision.empty()) && executor != ExecutorKind::kFibers)
    return fmt::format("{} needs --executor fibers (a deterministic schedule)",
                       !explain_decision.empty() ? "--explain-decision" : "--record-script");
  // A page holds 512 eight-byte slots at 4 KiB: one per thread of a process.
  if (auto e = range("--workers", workers, 1, 512)) return e;
  // A child keeps its parent's slot layout: one slot per parent thread.
  if (auto e = range("--child-workers", child_workers, 1, workers)) return e;
  if (auto e = range("--child-ops", child_ops, 0, 100000000)) return e;
  if (auto e = range("--max-processes", max_live_processes, processes, 1000000)) return e;
  if (auto e = range("--max-forks", max_forks, 0, 100000000)) return e;
  if (auto e = range("--ops", ops, std::uint64_t{1}, std::uint64_t{1} << 40)) return e;
  if (auto e = range("--pages", pages, 32u, 1u << 22)) return e;
  if (auto e = range("--anon-pages", anon_pages, 1u, 1u << 20)) return e;
  if (auto e = range("--scratch-pages", scratch_pages, 1u, 1u << 16)) return e;
  if (auto e = range("--churn-pages", churn_pages, 1u, 1u << 16)) return e;
  if (auto e = range("--file-pages", file_pages, 1u, 1u << 20)) return e;
  if (auto e = range("--device-pages", device_pages, 1u, 1u << 16)) return e;
  if (auto e = range("--os-threads", os_threads, 1, 1024)) return e;
  if (auto e = range("--pct-depth", pct_depth, 1, 64)) return e;
  if (auto e = range("--pct-steps", pct_steps, std::uint64_t{0}, std::uint64_t{1} << 40)) return e;
  if (auto e = range("--io-latency-us", io_latency_us, 0u, 1000000u)) return e;
  if (auto e = range("--io-error-ppm", io_error_ppm, 0u, 1000000u)) return e;
  if (auto e = range("--perturb-ppm", perturb_ppm, 0u, 1000000u)) return e;
  if (auto e = range("--check-every", check_every, std::uint64_t{0}, std::uint64_t{1} << 40)) return e;
  if (auto e = range("--trace-events", trace_events, std::uint64_t{1}, std::uint64_t{100000000})) return e;
  if (!std::isfinite(duration_s) || duration_s < 0 || duration_s > 86400)
    return fmt::format("--duration {} is out of range (0..86400 seconds)", duration_s);
  if (!std::isfinite(watchdog_s) || watchdog_s <= 0 || watchdog_s > 86400)
    return fmt::format("--watchdog {} is out of range (0..86400 seconds, not 0)", watchdog_s);
  const std::uint64_t threads = static_cast<std::uint64_t>(processes) * static_cast<std::uint64_t>(workers);
  if (executor == ExecutorKind::kThreads && threads > 20000)
    return fmt::format("--processes x --workers = {} OS threads is more than 20000", threads);
  if (threads > 1000000) return fmt::format("--processes x --workers = {} is more than 1000000 workers", threads);
  if (executor == ExecutorKind::kFibers && duration_s > 0)
    return "--duration cannot bound a deterministic fibers run (it would read the clock): use --ops";
  if (executor != ExecutorKind::kFibers && !expect_digest.empty())
    return fmt::format("--expect-digest needs --executor fibers (got {})", executor_name(executor));
  if (executor != ExecutorKind::kFibers && max_steps != 0)
    return fmt::format("--max-steps needs --executor fibers (got {})", executor_name(executor));
  if (!only_workers.empty()) {
    std::vector<std::pair<std::uint32_t, int>> list;
    if (auto e = parse_workers(only_workers, processes, workers, &list)) return e;
  }
  std::uint64_t total = 0;
  for (auto w : mix) total += w;
  if (total == 0) return "--mix: every operation has weight 0";
  return std::nullopt;
}

std::string Config::replay_line() const {
  std::string s = fmt::format(
      "faultline --scenario {} --executor {} --seed {} --processes {} --workers {} --ops {} --pages {}"
      " --anon-pages {} --scratch-pages {} --churn-pages {} --file-pages {} --device-pages {} --child-workers {}"
      " --child-ops {} --max-processes {} --max-forks {} --io-latency-us {} --io-error-ppm {} --check-every {} --mix {}",
      scenario, executor_name(executor), seed, processes, workers, ops, pages, anon_pages, scratch_pages, churn_pages,
      file_pages, device_pages, child_workers, child_ops, max_live_processes, max_forks, io_latency_us, io_error_ppm,
      check_every, format_mix(mix));
  // A script has no seed to draw from.
  if (sched_seed && !(executor == ExecutorKind::kFibers && sched == SchedKind::kScript))
    s += fmt::format(" --sched-seed {}", *sched_seed);
  if (!only_workers.empty()) s += fmt::format(" --only-workers {}", only_workers);
  if (executor == ExecutorKind::kFibers) {
    s += fmt::format(" --sched {}", sched_name(sched));
    if (sched == SchedKind::kPct) s += fmt::format(" --pct-depth {}", pct_depth);
    if (sched == SchedKind::kPct && pct_steps != 0) s += fmt::format(" --pct-steps {}", pct_steps);
    if (sched == SchedKind::kScript && !script.empty()) s += fmt::format(" --script {}", script);
    if (max_steps != 0) s += fmt::format(" --max-steps {}", max_steps);
    if (stall_steps != Config{}.stall_steps) s += fmt::format(" --stall-steps {}", stall_steps);
  } else {
    s += fmt::format(" --perturb-ppm {}", perturb_ppm);
    if (executor == ExecutorKind::kFibersMt) s += fmt::format(" --os-threads {}", os_threads);
    if (duration_s > 0) s += fmt::format(" --duration {}", duration_s);
  }
  if (mutant != vm::Mutant::kNone) s += fmt::format(" --mutant {}", vm::mutant_name(mutant));
  for (unsigned f = 0; f < static_cast<unsigned>(vm::Fix::kCount); ++f)
    if ((fixes >> f & 1u) == 0) s += fmt::format(" --no-fix {}", vm::fix_name(static_cast<vm::Fix>(f)));
  if (!pagedaemon) s += " --no-pagedaemon";
  if (!truncator) s += " --no-truncator";
  if (require_reach) s += " --require-reach";
  return s;
}

nlohmann::ordered_json Config::to_json() const {
  nlohmann::ordered_json weights = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < kOps; ++i) weights[op_name(static_cast<Op>(i))] = mix[i];
  return {
      {"scenario", scenario},
      {"executor", executor_name(executor)},
      {"sched", sched_name(sched)},
      {"pct-depth", pct_depth},
      {"pct-steps", pct_steps_used()},
      {"os-threads", os_threads},
      {"seed", seed},
      {"sched-seed", schedule_seed()},
      {"processes", processes},
      {"workers", workers},
      {"only-workers", only_workers},
      {"child-workers", child_workers},
      {"child-ops", child_ops},
      {"max-processes", max_live_processes},
      {"max-forks", max_forks},
      {"ops", ops},
      {"duration", duration_s},
      {"pages", pages},
      {"anon-pages", anon_pages},
      {"scratch-pages", scratch_pages},
      {"churn-pages", churn_pages},
      {"file-pages", file_pages},
      {"device-pages", device_pages},
      {"pagedaemon", pagedaemon},
      {"truncator", truncator},
      {"io-latency-us", io_latency_us},
      {"io-error-ppm", io_error_ppm},
      {"perturb-ppm", perturb_ppm},
      {"max-steps", max_steps},
      {"stall-steps", stall_steps},
      {"check-every", check_every},
      {"watchdog", watchdog_s},
      {"trace", trace_path},
      {"trace-events", trace_events},
      {"expect-digest", expect_digest},
      {"script", script},
      {"abort-on-report", abort_on_report},
      {"lock-checker", !no_lock_checker},
      {"lock-profile", !no_lock_profile},
      {"mutant", vm::mutant_name(mutant)},
      {"fixes-off", fixes_off()},
      {"require-reach", require_reach},
      {"mix", weights},
  };
}

}  // namespace faultline::stress
