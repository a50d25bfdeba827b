// The will-it-scale shapes on the host kernel (issue 16), beside the model's
// (scale_bench): the same shapes, sharings, round size, worker counts and
// counters (bench/scale_common.h), with real mmap, loads and stores, munmap.
//
//   anon          mmap(MAP_PRIVATE | MAP_ANONYMOUS): will-it-scale page_fault1
//   private-file  mmap(MAP_PRIVATE) of a file:        page_fault2
//   shared-file   mmap(MAP_SHARED) of a file:         page_fault3
//
// The file is a memfd (tmpfs, as will-it-scale's /tmp usually is), written
// once in full so its pages are in the page cache before the run.
//   disjoint  one process per worker (fork), each with its own file, as
//             will-it-scale's processes mode: separate address spaces
//   shared    threads of this process, one file (for anon: one shared
//             memfd mapping, Linux's MAP_SHARED | MAP_ANONYMOUS is the same
//             shmem object): will-it-scale's threads mode, one object
//   hot-page  as shared; each worker touches page 0 and drops its own
//             translation with madvise(MADV_DONTNEED).  For private-file
//             that also drops the worker's private copy, so every write
//             copies again (the model keeps the copy in its shadow object and
//             only the translation goes): compare hot-page private-file
//             writes with care.
// Faults are the kernel's minor-fault count (getrusage) over the run.
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench/bench_main.h"
#include "bench/scale_common.h"

namespace fb = faultline::bench;

namespace {

constexpr int kMaxWorkers = 4096;

// Shared with forked workers: an anonymous MAP_SHARED page run.
struct Board {
  fb::RunControl ctl;
  struct Slot {
    std::atomic<std::uint64_t> touches{0};
    std::atomic<std::uint64_t> faults{0};
  } slots[kMaxWorkers];
};

[[noreturn]] void die(const char* what) {
  std::perror(what);
  std::_Exit(1);
}

long page_size() { return sysconf(_SC_PAGESIZE); }

int make_file(std::size_t bytes) {
  const int fd = memfd_create("fl-host-bench", 0);
  if (fd < 0) die("memfd_create");
  std::vector<char> buf(bytes);
  for (std::size_t k = 0; k < bytes; ++k) buf[k] = static_cast<char>(k | 1);
  std::size_t done = 0;
  while (done < bytes) {
    const ssize_t n = write(fd, buf.data() + done, bytes - done);
    if (n <= 0) die("write");
    done += static_cast<std::size_t>(n);
  }
  return fd;
}

long minflt(int who) {
  rusage u{};
  getrusage(who, &u);
  return u.ru_minflt;
}

// One worker's loop until the board says stop.  `fd` is -1 for private anon.
void work(Board* b, int index, fb::Shape shape, fb::Sharing sharing, bool write, int fd, int rusage_who) {
  const std::size_t ps = static_cast<std::size_t>(page_size());
  const std::size_t len = fb::kRoundPages * ps;
  const int flags = fd < 0 ? MAP_PRIVATE | MAP_ANONYMOUS : shape == fb::Shape::kPrivateFile ? MAP_PRIVATE : MAP_SHARED;
  auto map = [&] {
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, flags, fd, 0);
    if (p == MAP_FAILED) die("mmap");
    return static_cast<char*>(p);
  };
  std::uint64_t touches = 0;
  char* hot = sharing == fb::Sharing::kHotPage ? map() : nullptr;
  b->ctl.arrive_and_wait();
  const long f0 = minflt(rusage_who);
  volatile char sink = 0;
  while (!b->ctl.stopping()) {
    if (hot != nullptr) {
      for (int k = 0; k < 64; ++k) {
        if (write) {
          *reinterpret_cast<volatile char*>(hot) = static_cast<char>(k);
        } else {
          sink = *reinterpret_cast<volatile char*>(hot);
        }
        if (madvise(hot, ps, MADV_DONTNEED) != 0) die("madvise");
      }
      touches += 64;
      continue;
    }
    char* p = map();
    for (std::size_t off = 0; off < len; off += ps) {
      if (write) {
        *reinterpret_cast<volatile char*>(p + off) = 1;
      } else {
        sink = *reinterpret_cast<volatile char*>(p + off);
      }
    }
    touches += fb::kRoundPages;
    if (munmap(p, len) != 0) die("munmap");
  }
  (void)sink;
  const long faults = minflt(rusage_who) - f0;
  if (hot != nullptr) munmap(hot, len);
  b->slots[index].touches.store(touches);
  b->slots[index].faults.store(static_cast<std::uint64_t>(faults));
}

// Args: shape, sharing, write (0/1), workers.
void BM_HostFaults(benchmark::State& state) {
  const auto shape = static_cast<fb::Shape>(state.range(0));
  const auto sharing = static_cast<fb::Sharing>(state.range(1));
  const bool write = state.range(2) != 0;
  const int workers = static_cast<int>(state.range(3));
  const double seconds = fb::run_seconds();
  const std::size_t bytes = fb::kRoundPages * static_cast<std::size_t>(page_size());
  void* mem = mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) die("mmap board");
  for (auto _ : state) {
    Board* b = new (mem) Board();
    std::vector<int> fds;
    const bool file_per_worker = sharing == fb::Sharing::kDisjoint;
    if (shape != fb::Shape::kAnon || sharing != fb::Sharing::kDisjoint) {
      for (int i = 0; i < (file_per_worker ? workers : 1); ++i) fds.push_back(make_file(bytes));
    }
    auto fd_of = [&](int i) { return fds.empty() ? -1 : fds[file_per_worker ? static_cast<std::size_t>(i) : 0]; };
    std::vector<pid_t> pids;
    std::vector<std::thread> threads;
    for (int i = 0; i < workers; ++i) {
      if (sharing == fb::Sharing::kDisjoint) {
        const pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) {
          work(b, i, shape, sharing, write, fd_of(i), RUSAGE_SELF);
          std::_Exit(0);
        }
        pids.push_back(pid);
      } else {
        threads.emplace_back([=] { work(b, i, shape, sharing, write, fd_of(i), RUSAGE_THREAD); });
      }
    }
    // Bounded: a worker that dies before the start (a process's mmap fails)
    // must not hang the benchmark.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    bool started = true;
    while (b->ctl.ready.load(std::memory_order_acquire) != workers) {
      if (std::chrono::steady_clock::now() > deadline) {
        started = false;
        break;
      }
      std::this_thread::yield();
    }
    const auto t0 = std::chrono::steady_clock::now();
    b->ctl.go.store(true, std::memory_order_release);
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    b->ctl.stop.store(true);
    bool failed = false;
    for (pid_t pid : pids) {
      int status = 0;
      if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) failed = true;
    }
    for (auto& t : threads) t.join();
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (int fd : fds) close(fd);
    if (failed || !started) {
      state.SkipWithError(!started ? "the workers did not all start within 30 s" : "a worker process failed");
      break;
    }
    std::uint64_t touches = 0, faults = 0;
    for (int i = 0; i < workers; ++i) {
      touches += b->slots[i].touches.load();
      faults += b->slots[i].faults.load();
    }
    fb::report_point(state, elapsed, workers, touches, faults);
    b->~Board();
  }
  munmap(mem, sizeof(Board));
  state.SetLabel(std::string(fb::shape_name(shape)) + " " + fb::sharing_name(sharing) + " " + (write ? "write" : "read"));
}

BENCHMARK(BM_HostFaults)->Apply(fb::scaling_points);

}  // namespace

int main(int argc, char** argv) { return faultline::bench::run_with_second_thread(argc, argv); }
