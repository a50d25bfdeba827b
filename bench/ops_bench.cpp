// Costs of the VM operations around the fault (issue 16), single thread,
// release build, checker off:
//   BM_Fork        vmspace_fork of a process with N resident pages mapped
//                  writable, then the child's exit (map_remove_all): the
//                  entry becomes copy-on-write on both sides and the parent's
//                  translations lose write (pmap_protect); per page
//   BM_Truncate    vnode_pager_setsize to 0 of a file with N resident pages,
//                  each mapped: every page unmapped (pmap_remove_all) and
//                  freed; per page
//   BM_PageoutScan one vm_pageout_scan over N inactive pages with nothing
//                  referenced: clean file pages are cached, dirty anonymous
//                  pages are laundered to swap (pass 1, no latency); per page
// items_per_second counts pages, so 1e9 / items_per_second is ns per page.
// The setup of each iteration (mapping, faulting the pages back, moving them
// to the inactive queue) is outside the timing.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench/bench_main.h"
#include "bench/vm_setup.h"
#include "core/fault.h"
#include "core/pageout.h"
#include "core/pager.h"
#include "core/pmap.h"
#include "core/vm.h"

namespace fl = faultline::locking;
namespace fv = faultline::vm;

namespace {

const fv::VmConfig& with_std_backend(const fv::VmConfig& c) {
  fl::set_backend(fl::Backend::kStd);
  return c;
}

// Threads' locks (the std backend, picked before the VM makes its locks);
// the order checker is off by default.
struct Setup : faultline::bench::VmSetup {
  explicit Setup(const fv::VmConfig& c) : VmSetup(with_std_backend(c)) {}
};

fv::VmConfig config(std::uint32_t npages) {
  fv::VmConfig c;
  c.npages = npages;
  return c;
}

void BM_Fork(benchmark::State& state) {
  const auto pages = static_cast<std::uint64_t>(state.range(0));
  Setup s(config(static_cast<std::uint32_t>(pages + 4096)));
  const std::uint64_t va = s.mmap(nullptr, pages);
  for (auto _ : state) {
    state.PauseTiming();
    s.touch_all(va, pages, true);  // writable again (after the first fork: copy-on-write faults)
    state.ResumeTiming();
    std::unique_ptr<fv::Map> child = fv::vmspace_fork(*s.map);
    fv::map_remove_all(*child);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(pages));
  state.SetLabel("fork + child exit");
}
BENCHMARK(BM_Fork)->RangeMultiplier(8)->Range(64, 4096);

void BM_Truncate(benchmark::State& state) {
  const auto pages = static_cast<std::uint64_t>(state.range(0));
  Setup s(config(static_cast<std::uint32_t>(pages + 4096)));
  const std::uint64_t bytes = pages * s.ps();
  fv::Vnode vp(*s.vm, bytes);
  const std::uint64_t va = s.mmap(fv::vnode_pager_alloc(vp), pages);
  for (auto _ : state) {
    state.PauseTiming();
    {
      fl::SxExclusiveLock l(vp.lock);
      fv::vnode_pager_setsize(vp, bytes);
    }
    s.touch_all(va, pages, false);
    state.ResumeTiming();
    fl::SxExclusiveLock l(vp.lock);
    fv::vnode_pager_setsize(vp, 0);
  }
  fv::map_remove_all(*s.map);
  fv::vnode_release_object(vp);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(pages));
  state.SetLabel("all pages resident and mapped");
}
BENCHMARK(BM_Truncate)->RangeMultiplier(8)->Range(64, 4096);

// Arg 0: pages; arg 1: 0 clean file pages (cached), 1 dirty anonymous
// pages (laundered to swap).
void BM_PageoutScan(benchmark::State& state) {
  const auto pages = static_cast<std::uint64_t>(state.range(0));
  const bool dirty = state.range(1) != 0;
  // Little beyond the pages and a free target of all memory: the daemon's
  // shortage exceeds the pages, so one scan takes all of them.
  fv::VmConfig c = config(static_cast<std::uint32_t>(pages + 256));
  c.free_reserved = 8;
  c.free_severe = 16;
  c.free_min = 32;
  c.free_target = c.npages - 1;
  Setup s(c);
  std::unique_ptr<fv::Vnode> vp;
  fv::Object* o = nullptr;
  if (dirty) {
    o = fv::object_allocate(*s.vm, fv::ObjectType::kDefault, pages);
  } else {
    vp = std::make_unique<fv::Vnode>(*s.vm, pages * s.ps());
    o = fv::vnode_pager_alloc(*vp);
  }
  const std::uint64_t va = s.mmap(o, pages);
  // 64 wired pages (on no queue) take free memory below the target by more
  // than the pages to scan.
  const std::uint64_t ballast = s.mmap(nullptr, 64);
  if (fv::map_wire(*s.map, ballast, ballast + 64 * s.ps(), true) != fv::Kern::kSuccess) std::abort();
  // Random access: no read-ahead, and no cache-behind of the pages a
  // sequential read leaves behind it (seed L481-521), which would cache them
  // before the scan.
  fv::map_madvise(*s.map, va, va + pages * s.ps(), fv::Behavior::kRandom);
  std::uint64_t scanned = 0;
  for (auto _ : state) {
    state.PauseTiming();
    s.touch_all(va, pages, dirty);
    fv::pmap_remove(s.map->pmap, va, va + pages * s.ps());
    {
      fl::MutexLock ol(o->mtx);
      fl::MutexLock pq(s.vm->page_queues);
      for (auto& [pindex, m] : o->pages) {
        m->flags &= static_cast<std::uint8_t>(~fv::kPgReferenced);
        fv::page_deactivate(m);
      }
    }
    state.ResumeTiming();
    const fv::PageoutStats st = fv::pageout_scan(*s.vm, dirty ? 1 : 0);
    state.PauseTiming();
    if (st.scanned < pages || (dirty ? st.laundered : st.cached) < pages) {
      std::fprintf(stderr, "scan of %llu pages: scanned %u cached %u laundered %u reactivated %u skipped %u second chance %u\n",
                   static_cast<unsigned long long>(pages), st.scanned, st.cached, st.laundered, st.reactivated,
                   st.skipped, st.second_chance);
      state.SkipWithError("the scan did not take every page");
      break;
    }
    scanned += st.scanned;
    state.ResumeTiming();
  }
  fv::map_unwire(*s.map, ballast, ballast + 64 * s.ps(), true);
  fv::map_remove_all(*s.map);
  if (vp) fv::vnode_release_object(*vp);
  state.SetItemsProcessed(static_cast<std::int64_t>(scanned));
  state.SetLabel(dirty ? "dirty anonymous pages laundered to swap" : "clean file pages cached");
}
BENCHMARK(BM_PageoutScan)->ArgsProduct({{256, 2048}, {0, 1}})->ArgNames({"pages", "dirty"});

}  // namespace

int main(int argc, char** argv) { return faultline::bench::run_with_second_thread(argc, argv); }
