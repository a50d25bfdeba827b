#include "stress/cli/sweep.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <mutex>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <tbb/global_control.h>
#include <tbb/parallel_for_each.h>
#include <tbb/task_arena.h>

#include "core/reach.h"
#include "stress/rng.h"
#include "stress/run.h"

extern char** environ;

namespace faultline::stress {

namespace {

std::optional<std::uint64_t> to_u64(std::string_view t) {
  std::uint64_t v = 0;
  if (t.empty()) return std::nullopt;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v, 10);
  if (ec != std::errc() || end != t.data() + t.size()) return std::nullopt;
  return v;
}

struct SeedResult {
  std::uint64_t seed = 0;
  int code = 0;         // the child's exit code; 1 for a signal or a timeout
  std::string output;   // what it printed
  std::string why;      // signal / timeout, else empty
  double seconds = 0;
};

// Runs the child to completion (or kills it at the deadline) and collects
// its standard output and error.
SeedResult run_child(const std::string& exe, const std::vector<std::string>& args, std::uint64_t seed,
                     double timeout_s) {
  SeedResult r;
  r.seed = seed;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    r.code = 1;
    r.why = fmt::format("pipe: {}", std::strerror(errno));
    return r;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  std::vector<char*> argv;
  std::string arg0 = "faultline";
  argv.push_back(arg0.data());
  std::vector<std::string> copy = args;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int err = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (err != 0) {
    close(fds[0]);
    r.code = 1;
    r.why = fmt::format("could not start {}: {}", exe, std::strerror(err));
    return r;
  }
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::duration<double>(timeout_s);
  bool timed_out = false;
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    const int n = poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    const ssize_t got = read(fds[0], buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;  // EOF: the child is done
    r.output.append(buf, static_cast<std::size_t>(got));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (timed_out) {
    r.code = 1;
    r.why = fmt::format("no verdict within {} s (killed)", timeout_s);
  } else if (WIFSIGNALED(status)) {
    r.code = 1;
    r.why = fmt::format("killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  } else {
    r.code = WEXITSTATUS(status);
  }
  return r;
}

std::string xml_escape(std::string_view t) {
  std::string out;
  for (char ch : t) {
    const auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // XML 1.0 allows no other control characters than tab, LF and CR.
        if (c < 0x20 && ch != '\t' && ch != '\n' && ch != '\r')
          out += fmt::format("\\x{:02x}", c);
        else
          out += ch;
    }
  }
  return out;
}

// The last `max` bytes of a seed's output, cut at a line start.
std::string tail_of(const std::string& out, std::size_t max) {
  if (out.size() <= max) return out;
  std::size_t from = out.size() - max;
  const std::size_t nl = out.find('\n', from);
  if (nl != std::string::npos) from = nl + 1;
  return "[... " + std::to_string(from) + " bytes cut ...]\n" + out.substr(from);
}

// A child's "reach-counts: n,n,..." line (--print-reach); empty if none.
std::vector<std::uint64_t> reach_counts(const std::string& text) {
  std::vector<std::uint64_t> out;
  const std::string output = "\n" + text;
  const std::size_t at = output.rfind("\nreach-counts: ");
  if (at == std::string::npos) return out;
  std::istringstream in(output.substr(at + 15, output.find('\n', at + 1) - at - 15));
  for (std::string n; std::getline(in, n, ',');) {
    const auto v = to_u64(n);
    if (!v) return {};
    out.push_back(*v);
  }
  return out;
}

std::atomic<bool> g_interrupted{false};
extern "C" void on_sweep_sigint(int) { g_interrupted.store(true); }

}  // namespace

std::optional<std::string> parse_seed_range(const std::string& text, SweepOptions& o) {
  const auto dots = text.find("..");
  std::optional<std::uint64_t> a, b;
  if (dots == std::string::npos) {
    a = b = to_u64(text);
  } else {
    a = to_u64(std::string_view(text).substr(0, dots));
    b = to_u64(std::string_view(text).substr(dots + 2));
  }
  if (!a || !b) return fmt::format("--seeds '{}' is not a seed or a range A..B of unsigned decimal seeds", text);
  if (*b < *a) return fmt::format("--seeds '{}' is an empty range (the end is before the start)", text);
  if (*b - *a >= 100000000) return fmt::format("--seeds '{}' has more than 100000000 seeds", text);
  o.first_seed = *a;
  o.count = *b - *a + 1;
  return std::nullopt;
}

std::optional<std::string> parse_shard(const std::string& text, SweepOptions& o) {
  const auto slash = text.find('/');
  if (slash == std::string::npos) return fmt::format("--shard '{}' is not of the form i/N", text);
  auto i = to_u64(std::string_view(text).substr(0, slash));
  auto n = to_u64(std::string_view(text).substr(slash + 1));
  if (!i || !n) return fmt::format("--shard '{}' is not of the form i/N (unsigned decimals)", text);
  if (*n == 0 || *n > 1000000 || *i >= *n)
    return fmt::format("--shard '{}' needs 0 <= i < N <= 1000000", text);
  o.shard_index = static_cast<int>(*i);
  o.shard_count = static_cast<int>(*n);
  return std::nullopt;
}

std::vector<std::uint64_t> shard_seeds(const SweepOptions& o) {
  std::vector<std::uint64_t> seeds;
  for (std::uint64_t k = static_cast<std::uint64_t>(o.shard_index); k < o.count;
       k += static_cast<std::uint64_t>(o.shard_count))
    seeds.push_back(o.first_seed + k);
  return seeds;
}

Config swarm_config(const Config& base, std::uint64_t seed) {
  Config c = base;
  // Not a stream a run draws from (world.cpp: pid << 20 | thread, with
  // threads below 512; executors 1e6 + n, 2e6 + n, 3e6 + n; the truncator
  // and the device near 2^64 and at 2^62).
  Rng rng = Rng::stream(seed, 0x5a4a2d);
  const auto pick = [&rng](std::initializer_list<std::uint32_t> from) {
    return *(from.begin() + rng.below(from.size()));
  };
  for (std::size_t k = 0; k < kOps; ++k) {
    const Op op = static_cast<Op>(k);
    if (op == Op::kRead || op == Op::kWrite || c.mix[k] == 0) continue;
    c.mix[k] = rng.below(2) == 0 ? 0 : c.mix[k] * pick({1, 2, 4});
  }
  c.pages = pick({40, 48, 64, 96, 128, 192, 256});
  c.anon_pages = pick({2, 4, 8, 16, 32, 64});
  c.scratch_pages = pick({1, 2, 4, 8});
  c.churn_pages = pick({1, 2, 4});
  c.processes = static_cast<int>(pick({1, 2, 3}));
  c.workers = static_cast<int>(pick({2, 3, 4, 6, 8}));
  c.child_workers = static_cast<int>(1 + rng.below(static_cast<std::uint64_t>(std::min(3, c.workers))));
  c.child_ops = static_cast<int>(pick({2, 5, 20, 100}));
  c.max_live_processes = std::max(c.processes, static_cast<int>(pick({4, 8})));
  c.io_latency_us = pick({0, 20, 200, 2000});
  c.io_error_ppm = pick({0, 0, 0, 1000, 20000});
  c.truncator = base.truncator && rng.below(4) != 0;
  return c;
}

ChildRun run_faultline_child(const std::string& exe, const std::vector<std::string>& args, double timeout_s) {
  SeedResult r = run_child(exe, args, 0, timeout_s);
  return ChildRun{r.code, std::move(r.output), std::move(r.why), r.seconds};
}

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::vector<std::string> seed_args(const Config& base, std::uint64_t seed) {
  Config c = base;
  c.seed = seed;
  // --require-reach applies to the sweep's table, not to each seed's.
  c.require_reach = false;
  // The replay line is the complete configuration; its words hold no spaces.
  std::istringstream in(c.replay_line());
  std::vector<std::string> args;
  std::string w;
  in >> w;  // "faultline"
  while (in >> w) args.push_back(w);
  args.push_back("--quiet");
  args.push_back("--print-reach");
  return args;
}

bool write_file(const std::string& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  return std::fclose(f) == 0 && ok;
}

std::string first_failure_line(const std::string& output) {
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) {
    const bool hit = line.rfind("FAIL", 0) == 0 || line.rfind("panic:", 0) == 0 || line.rfind("faultline:", 0) == 0 ||
                     line.find("Assertion `") != std::string::npos ||
                     line.find("ERROR: AddressSanitizer") != std::string::npos ||
                     line.find("WARNING: ThreadSanitizer") != std::string::npos ||
                     line.find("runtime error:") != std::string::npos;
    if (hit) return line;
  }
  return "";
}

std::string junit_xml(const std::string& suite, const std::vector<SeedOutcome>& seeds, double seconds) {
  std::size_t failures = 0;
  for (const SeedOutcome& s : seeds) failures += s.passed ? 0 : 1;
  std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  x += fmt::format("<testsuites name=\"faultline sweep\" tests=\"{}\" failures=\"{}\" errors=\"0\" time=\"{:.3f}\">\n",
                   seeds.size(), failures, seconds);
  x += fmt::format("  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"0\" time=\"{:.3f}\">\n",
                   xml_escape(suite), seeds.size(), failures, seconds);
  for (const SeedOutcome& s : seeds) {
    x += fmt::format("    <testcase classname=\"{}\" name=\"seed {}\" time=\"{:.3f}\"", xml_escape(suite), s.seed,
                     s.seconds);
    if (s.passed) {
      x += "/>\n";
      continue;
    }
    x += ">\n";
    x += fmt::format("      <failure message=\"{}\" type=\"faultline\">{}\nreplay: {}</failure>\n",
                     xml_escape(s.failure), xml_escape(s.failure), xml_escape(s.replay));
    x += fmt::format("      <system-out>{}</system-out>\n", xml_escape(s.output));
    x += "    </testcase>\n";
  }
  x += "  </testsuite>\n</testsuites>\n";
  return x;
}

int sweep_command(const Config& base, const SweepOptions& o) {
  const std::vector<std::uint64_t> seeds = shard_seeds(o);
  const int jobs = o.jobs > 0 ? o.jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::printf("faultline sweep: scenario %s, executor %s, seeds %llu..%llu", base.scenario.c_str(),
              executor_name(base.executor), static_cast<unsigned long long>(o.first_seed),
              static_cast<unsigned long long>(o.first_seed + o.count - 1));
  if (o.shard_count > 1) std::printf(", shard %d/%d", o.shard_index, o.shard_count);
  if (o.swarm) std::printf(", swarm (each seed draws its configuration)");
  std::printf(": %zu runs, %d at a time\n", seeds.size(), jobs);
  std::fflush(stdout);
  struct sigaction sa {};
  sa.sa_handler = on_sweep_sigint;
  sigemptyset(&sa.sa_mask);
  struct sigaction old {};
  sigaction(SIGINT, &sa, &old);

  const auto t0 = std::chrono::steady_clock::now();
  std::mutex mtx;
  std::vector<SeedOutcome> outcomes;
  std::atomic<std::size_t> done{0}, passed{0}, failed{0};
  // The reach table over the seeds: per window, the seeds that entered it,
  // the lowest of them, and the events in all.
  const std::size_t nwin = vm::reach_catalogue().size();
  std::vector<std::uint64_t> reach_total(nwin, 0), reach_seeds(nwin, 0), reach_lowest(nwin, UINT64_MAX);
  std::size_t reach_reported = 0;
  auto last_progress = t0;
  tbb::task_arena arena(jobs);
  arena.execute([&] {
    tbb::parallel_for_each(seeds.begin(), seeds.end(), [&](std::uint64_t seed) {
      if (g_interrupted.load()) return;
      const Config cfg = o.swarm ? swarm_config(base, seed) : base;
      SeedResult r = run_child(o.self_exe, seed_args(cfg, seed), seed, o.timeout_s);
      SeedOutcome out;
      out.seed = seed;
      out.seconds = r.seconds;
      out.passed = r.code == 0;
      if (!out.passed) {
        // A seed that died of a signal printed why before it died (a
        // KASSERT's panic, a failed assert, the crash report): keep it.
        const std::string first = first_failure_line(r.output);
        out.failure = r.why.empty() ? first : first.empty() ? r.why : r.why + ": " + first;
        if (out.failure.empty()) out.failure = fmt::format("exit code {}", r.code);
        out.replay = "faultline";
        for (const std::string& a : seed_args(cfg, seed))
          if (a != "--quiet" && a != "--print-reach") out.replay += " " + a;
        out.output = tail_of(r.output, 64 * 1024);
      }
      const std::vector<std::uint64_t> counts = reach_counts(r.output);
      std::lock_guard<std::mutex> l(mtx);
      if (counts.size() == reach_seeds.size()) {
        ++reach_reported;
        for (std::size_t k = 0; k < counts.size(); ++k) {
          reach_total[k] += counts[k];
          if (counts[k] != 0) {
            ++reach_seeds[k];
            reach_lowest[k] = std::min(reach_lowest[k], seed);
          }
        }
      }
      ++done;
      if (out.passed) {
        ++passed;
      } else {
        std::printf("seed %llu: %s%s\n", static_cast<unsigned long long>(seed),
                    out.failure.rfind("FAIL", 0) == 0 ? "" : "FAIL ", out.failure.c_str());
        std::printf("  replay: %s\n", out.replay.c_str());
        ++failed;
      }
      // Kept for the reports only: a long sweep without them stays small.
      if (!o.junit_path.empty() || !o.json_path.empty()) outcomes.push_back(std::move(out));
      const auto now = std::chrono::steady_clock::now();
      if (now - last_progress >= std::chrono::seconds(5)) {
        last_progress = now;
        std::printf("[%6.1fs] %zu/%zu seeds, %zu failed\n", std::chrono::duration<double>(now - t0).count(),
                    done.load(), seeds.size(), failed.load());
      }
      std::fflush(stdout);
    });
  });
  sigaction(SIGINT, &old, nullptr);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("sweep: %zu of %zu seeds run in %.1f s (%.2f seeds/s); %zu passed, %zu failed%s\n", done.load(),
              seeds.size(), secs, secs > 0 ? static_cast<double>(done.load()) / secs : 0.0, passed.load(),
              failed.load(), g_interrupted.load() ? " (interrupted)" : "");
  std::sort(outcomes.begin(), outcomes.end(),
            [](const SeedOutcome& a, const SeedOutcome& b) { return a.seed < b.seed; });
  int code = failed.load() == 0 && done.load() == seeds.size() ? 0 : 1;
  std::vector<vm::ReachRow> reach;
  std::vector<std::string> firsts;
  for (std::size_t k = 0; k < nwin; ++k) {
    reach.push_back({&vm::reach_catalogue()[k], reach_total[k], std::nullopt});
    firsts.push_back(reach_seeds[k] == 0 ? "-" : fmt::format("{} ({})", reach_seeds[k], reach_lowest[k]));
  }
  std::printf("sweep %s", format_reach(reach, "seeds (lowest)", firsts).c_str());
  if (reach_reported != done.load())
    std::printf("(%zu of %zu seeds reported their reach: the others died first)\n", reach_reported, done.load());
  const std::vector<std::string> never = unreached(reach);
  if (base.require_reach && !never.empty()) {
    std::printf("FAIL [reach] %s\n", never_reached_message(never).c_str());
    code = 1;
  }
  const std::string suite = fmt::format("faultline.{}.{}", base.scenario, executor_name(base.executor));
  if (!o.junit_path.empty()) {
    if (write_file(o.junit_path, junit_xml(suite, outcomes, secs)))
      std::printf("junit: %zu test cases written to %s\n", outcomes.size(), o.junit_path.c_str());
    else {
      std::printf("faultline: --junit '%s': could not write it: %s\n", o.junit_path.c_str(), std::strerror(errno));
      code = code == 0 ? 2 : code;
    }
  }
  if (!o.json_path.empty()) {
    nlohmann::ordered_json j;
    j["sweep"] = {{"suite", suite},
                  {"first_seed", o.first_seed},
                  {"last_seed", o.first_seed + o.count - 1},
                  {"shard", fmt::format("{}/{}", o.shard_index, o.shard_count)},
                  {"jobs", jobs},
                  {"timeout", o.timeout_s}};
    j["config"] = base.to_json();
    j["seconds"] = secs;
    j["run"] = done.load();
    j["passed"] = passed.load();
    j["failed"] = failed.load();
    j["interrupted"] = g_interrupted.load();
    j["pass"] = code == 0;
    nlohmann::ordered_json per = nlohmann::ordered_json::array();
    for (const SeedOutcome& s : outcomes) {
      nlohmann::ordered_json e = {{"seed", s.seed}, {"pass", s.passed}, {"seconds", s.seconds}};
      if (!s.passed) {
        e["failure"] = s.failure;
        e["replay"] = s.replay;
      }
      per.push_back(std::move(e));
    }
    j["seeds"] = per;
    nlohmann::ordered_json jr = nlohmann::ordered_json::object();
    for (std::size_t k = 0; k < nwin; ++k) {
      nlohmann::ordered_json e = {{"seeds", reach_seeds[k]}, {"count", reach_total[k]}};
      if (reach_seeds[k] != 0) e["lowest_seed"] = reach_lowest[k];
      jr[vm::reach_catalogue()[k].name] = e;
    }
    j["reach"] = jr;
    j["never_reached"] = never;
    if (write_file(o.json_path, j.dump(2) + "\n"))
      std::printf("json: %zu seeds written to %s\n", outcomes.size(), o.json_path.c_str());
    else {
      std::printf("faultline: --json '%s': could not write it: %s\n", o.json_path.c_str(), std::strerror(errno));
      code = code == 0 ? 2 : code;
    }
  }
  std::fflush(stdout);
  return code;
}

}  // namespace faultline::stress

