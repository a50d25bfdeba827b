#include "stress/sweep.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for_each.h>
#include <tbb/task_arena.h>

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
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
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

std::vector<std::string> seed_args(const Config& base, std::uint64_t seed) {
  Config c = base;
  c.seed = seed;
  // The replay line is the complete configuration; its words hold no spaces.
  std::istringstream in(c.replay_line());
  std::vector<std::string> args;
  std::string w;
  in >> w;  // "faultline"
  while (in >> w) args.push_back(w);
  args.push_back("--quiet");
  return args;
}

int sweep_command(const Config& base, const SweepOptions& o) {
  const std::vector<std::uint64_t> seeds = shard_seeds(o);
  const int jobs = o.jobs > 0 ? o.jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::printf("faultline sweep: scenario %s, executor %s, seeds %llu..%llu", base.scenario.c_str(),
              executor_name(base.executor), static_cast<unsigned long long>(o.first_seed),
              static_cast<unsigned long long>(o.first_seed + o.count - 1));
  if (o.shard_count > 1) std::printf(", shard %d/%d", o.shard_index, o.shard_count);
  std::printf(": %zu runs, %d at a time\n", seeds.size(), jobs);
  std::fflush(stdout);
  struct sigaction sa {};
  sa.sa_handler = on_sweep_sigint;
  sigemptyset(&sa.sa_mask);
  struct sigaction old {};
  sigaction(SIGINT, &sa, &old);

  const auto t0 = std::chrono::steady_clock::now();
  std::mutex mtx;
  std::vector<SeedResult> failed;
  std::atomic<std::size_t> done{0}, passed{0};
  auto last_progress = t0;
  tbb::task_arena arena(jobs);
  arena.execute([&] {
    tbb::parallel_for_each(seeds.begin(), seeds.end(), [&](std::uint64_t seed) {
      if (g_interrupted.load()) return;
      SeedResult r = run_child(o.self_exe, seed_args(base, seed), seed, o.timeout_s);
      std::lock_guard<std::mutex> l(mtx);
      ++done;
      if (r.code == 0) {
        ++passed;
      } else {
        std::string first;
        std::istringstream in(r.output);
        for (std::string line; std::getline(in, line);)
          if (line.rfind("FAIL", 0) == 0 || line.rfind("faultline:", 0) == 0) {
            first = line;
            break;
          }
        std::printf("seed %llu: FAIL %s\n", static_cast<unsigned long long>(seed),
                    !r.why.empty() ? r.why.c_str() : first.c_str());
        std::printf("  replay: faultline");
        for (const std::string& a : seed_args(base, seed))
          if (a != "--quiet") std::printf(" %s", a.c_str());
        std::printf("\n");
        failed.push_back(std::move(r));
      }
      const auto now = std::chrono::steady_clock::now();
      if (now - last_progress >= std::chrono::seconds(5)) {
        last_progress = now;
        std::printf("[%6.1fs] %zu/%zu seeds, %zu failed\n", std::chrono::duration<double>(now - t0).count(),
                    done.load(), seeds.size(), failed.size());
      }
      std::fflush(stdout);
    });
  });
  sigaction(SIGINT, &old, nullptr);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("sweep: %zu of %zu seeds run in %.1f s (%.2f seeds/s); %zu passed, %zu failed%s\n", done.load(),
              seeds.size(), secs, secs > 0 ? static_cast<double>(done.load()) / secs : 0.0, passed.load(),
              failed.size(), g_interrupted.load() ? " (interrupted)" : "");
  std::fflush(stdout);
  return failed.empty() && done.load() == seeds.size() ? 0 : 1;
}

}  // namespace faultline::stress
