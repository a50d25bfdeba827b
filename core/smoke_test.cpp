// A bounded multi-threaded smoke test of the whole core: threads faulting
// (reads and writes through the MMU) on anonymous and file memory, the
// pageout daemon under memory pressure, a truncator shrinking and regrowing
// the file, and a forker making and tearing down children — all at once,
// with the lock-order checker in abort mode.  At the end: no protocol
// finding, the invariants hold, and no thread lost a write to its own slots.
// Runs under the tsan and asan presets like every test.
#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "core/fault.h"
#include "core/invariants.h"
#include "core/pageout.h"
#include "core/pager.h"
#include "core/vm.h"
#include "locking/locking.h"
#include <gtest/gtest.h>

namespace faultline::vm {
namespace {

constexpr std::uint64_t kBase = 0x100000;

Kern access(Map& m, std::uint64_t va, bool write, std::uint64_t* v) {
  for (int i = 0; i < 1000; ++i) {
    if (pmap_access(m.pmap, va, write, v)) return Kern::kSuccess;
    // A user write fault is VM_FAULT_DIRTY, as 7.x's trap.c passes it.
    if (Kern r = vm_fault(m, va, write ? kProtRead | kProtWrite : kProtRead, write ? kFaultDirty : kFaultNormal);
        r != Kern::kSuccess)
      return r;
  }
  return Kern::kFailure;
}

TEST(CoreSmoke, EverythingAtOnce) {
  locking::set_backend(locking::Backend::kStd);
  locking::set_mode(locking::Mode::kAbort);
  constexpr int kFaulters = 4, kOpsPerFaulter = 20000, kForks = 100, kTruncations = 100;
  constexpr std::uint64_t kAnonPages = 160, kFilePages = 32;
  VmConfig cfg;
  cfg.npages = 128;  // fewer pages than the anonymous region alone: pageout must work
  cfg.seed = 7;
  Vm vm(cfg);
  const std::uint64_t ps = vm.page_size();
  auto parent = std::make_unique<Map>(vm, kBase, kBase + (1ull << 30));
  std::uint64_t anon = 0, file = 0;
  ASSERT_EQ(map_mmap(*parent, &anon, kAnonPages * ps, nullptr, 0, kProtRead | kProtWrite, kProtAll, 0,
                     Inherit::kCopy),
            Kern::kSuccess);
  Vnode vp(vm, kFilePages * ps);
  Object* fobj = vnode_pager_alloc(vp);
  ASSERT_EQ(map_mmap(*parent, &file, kFilePages * ps, fobj, 0, kProtRead | kProtWrite, kProtAll, 0,
                     Inherit::kShare),
            Kern::kSuccess);

  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::thread pagedaemon([&] {
    locking::ActorScope a("pagedaemon");
    while (pageout_daemon_step(vm, stop, 2)) {
    }
  });
  // Each faulter owns slot t (8 bytes at offset 8t) of every anonymous page.
  std::vector<std::vector<std::uint64_t>> expect(kFaulters, std::vector<std::uint64_t>(kAnonPages, 0));
  std::vector<std::thread> workers;
  for (int t = 0; t < kFaulters; ++t) {
    workers.emplace_back([&, t] {
      locking::ActorScope a("faulter-" + std::to_string(t));
      std::mt19937_64 rng(cfg.seed * 1000 + static_cast<unsigned>(t));
      for (int i = 0; i < kOpsPerFaulter; ++i) {
        const bool in_file = rng() % 4 == 0;
        const std::uint64_t page = rng() % (in_file ? kFilePages : kAnonPages);
        const std::uint64_t va = (in_file ? file : anon) + page * ps + 8 * static_cast<unsigned>(t);
        const bool write = rng() % 2 == 0;
        std::uint64_t v = (static_cast<std::uint64_t>(t) << 32) | static_cast<std::uint64_t>(i + 1);
        Kern r = access(*parent, va, write, &v);
        if (in_file) {
          // Past a truncated end is SIGBUS, legitimately.
          if (r != Kern::kSuccess && r != Kern::kProtectionFailure) ++failures;
          continue;
        }
        if (r != Kern::kSuccess) {
          ++failures;
          continue;
        }
        if (write) {
          expect[static_cast<std::size_t>(t)][page] = v;
        } else if (v != expect[static_cast<std::size_t>(t)][page]) {
          ADD_FAILURE() << "faulter " << t << " page " << page << ": read " << v << ", wrote "
                        << expect[static_cast<std::size_t>(t)][page];
          ++failures;
        }
      }
    });
  }
  workers.emplace_back([&] {
    locking::ActorScope a("truncator");
    std::mt19937_64 rng(cfg.seed);
    for (int i = 0; i < kTruncations; ++i) {
      locking::SxExclusiveLock vl(vp.lock);
      vnode_pager_setsize(vp, (rng() % kFilePages) * ps + rng() % ps);
      vnode_pager_setsize(vp, kFilePages * ps);
    }
  });
  workers.emplace_back([&] {
    locking::ActorScope a("forker");
    std::mt19937_64 rng(cfg.seed + 1);
    for (int i = 0; i < kForks; ++i) {
      // A page the parent has stored to before the fork: the child's store
      // to it is a copy-on-write fault whatever the faulters did by then
      // (with OS threads the forks may all come before their first stores:
      // a CI run once saw no COW fault at all).
      const std::uint64_t own = anon + (rng() % kAnonPages) * ps + 8 * kFaulters;  // a slot no faulter owns
      std::uint64_t mark = static_cast<std::uint64_t>(i) + 1;
      if (access(*parent, own, true, &mark) != Kern::kSuccess) ++failures;
      std::unique_ptr<Map> child = vmspace_fork(*parent);
      std::uint64_t seen = 0;
      if (access(*child, own, false, &seen) != Kern::kSuccess || seen != mark) ++failures;
      std::uint64_t store = 0;
      if (access(*child, own, true, &store) != Kern::kSuccess) ++failures;
      for (int k = 0; k < 8; ++k) {
        std::uint64_t v = 0;
        const std::uint64_t va = anon + (rng() % kAnonPages) * ps + 8 * kFaulters;
        if (access(*child, va, k % 2 == 0, &v) != Kern::kSuccess) ++failures;
      }
      map_remove_all(*child);  // exit
    }
  });
  for (auto& w : workers) w.join();
  EXPECT_EQ(failures.load(), 0);
  // Every faulter's last write to each page is still there.  The daemon
  // still runs: the anonymous region alone is larger than memory, so these
  // reads page in, and without it the fault that finds memory short sleeps
  // in VM_WAIT for ever (a CI timeout under ASan: which pages were out at
  // the end decided whether the reads fit).
  for (int t = 0; t < kFaulters; ++t)
    for (std::uint64_t p = 0; p < kAnonPages; ++p) {
      std::uint64_t v = 0;
      const Kern r = access(*parent, anon + p * ps + 8 * static_cast<unsigned>(t), false, &v);
      EXPECT_EQ(r, Kern::kSuccess) << "faulter " << t << " page " << p;
      if (r == Kern::kSuccess) {
        EXPECT_EQ(v, expect[static_cast<std::size_t>(t)][p]) << "faulter " << t << " page " << p;
      }
    }
  stop = true;
  {
    locking::MutexLock f(vm.free_mtx);
    locking::wakeup(&vm.pages_needed);
  }
  pagedaemon.join();
  for (const std::string& f : check_invariants(vm, {parent.get()}, {&vp})) ADD_FAILURE() << "invariant: " << f;
  const Counters& c = vm.counters();
  EXPECT_GT(c.v_cow_faults.load(), 0u);
  EXPECT_GT(c.v_pdwakeups.load(), 0u);
  EXPECT_GT(c.v_pgpgout.load(), 0u);  // memory pressure made the daemon launder
  RecordProperty("faults", std::to_string(c.v_vm_faults.load()));
  std::printf("%s%s", c.format_vmstat().c_str(), c.format_retries().c_str());
  map_remove_all(*parent);
  parent.reset();
  vnode_release_object(vp);
  locking::set_mode(locking::Mode::kOff);
}

}  // namespace
}  // namespace faultline::vm
