// Single-thread costs of the fault, release build (issue 3, point 6):
//   soft fault      page resident in the object, not mapped: lookup, busy,
//                   pmap_enter, activate; alone, and with 8 neighbours
//                   prefaulted
//   zero-fill fault first touch of anonymous memory (prezeroed page or not)
//   COW copy fault  write to a page shared with a fork: shadow page, copy
//   swap-in fault   page only in swap: allocate, pager I/O (no latency), map
// Targets: soft fault under 300 ns, zero fill under 1 us with 4 KiB pages.
// A second thread is started first (see lock_bench.cpp).  The checker is
// off, as in a production build of the model.
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench/bench_main.h"
#include "bench/vm_setup.h"

#include "core/fault.h"
#include "core/pager.h"
#include "core/vm.h"

namespace fv = faultline::vm;
using faultline::locking::MutexLock;

namespace {

constexpr std::uint64_t kPages = 512;  // per batch; the VM has room for several batches

// FL_BENCH_BACKEND=tbb-spin (or futex, ...) picks the lock backend; std by default.
void select_backend() {
  const char* b = std::getenv("FL_BENCH_BACKEND");
  auto parsed = faultline::locking::parse_backend(b != nullptr ? b : "std");
  if (!parsed || faultline::locking::is_fiber(*parsed)) {
    std::fprintf(stderr, "fault_bench: FL_BENCH_BACKEND=%s: not a thread backend\n", b);
    std::exit(2);
  }
  faultline::locking::set_backend(*parsed);
}

fv::VmConfig backend_and_config() {
  select_backend();
  fv::VmConfig c;
  c.npages = 8192;
  return c;
}

// The backend picked first (its locks are made with the VM).
struct Setup : faultline::bench::VmSetup {
  Setup() : VmSetup(backend_and_config()) {}
};

void fault_or_die(fv::Map& m, std::uint64_t va, std::uint8_t type) {
  if (fv::vm_fault(m, va, type, fv::kFaultNormal) != fv::Kern::kSuccess) std::abort();
}

// Soft (minor) faults: the page is resident in the object and not mapped.
// The fault also prefaults (seed L893): up to 8 neighbours, each mapped if it
// is resident and not mapped yet.  Two cases, both with every fault on an
// unmapped page:
//   arg 0  neighbours already mapped: prefault only looks (one pmap lock);
//          the cost of the fault itself.  Pages are unmapped 1 in 9, so no
//          two unmapped pages are within 4 of each other.
//   arg 1  neighbours unmapped too: prefault maps all 8 (object, page
//          queues and pmap locks for each); every 9th page faults, and the
//          8 around it come in with it.
void BM_SoftFault(benchmark::State& state) {
  constexpr std::uint64_t kStride = 9;  // > 2 * the prefault reach of 4
  const bool with_prefault = state.range(0) != 0;
  Setup s;
  const std::uint64_t ps = s.ps();
  std::uint64_t va = s.mmap(nullptr, kPages);
  for (std::uint64_t i = 0; i < kPages; ++i) fault_or_die(*s.map, va + i * ps, fv::kProtRead | fv::kProtWrite);
  std::uint64_t phase = 0;  // which residue mod kStride this round faults (arg 0)
  std::uint64_t next = kPages;  // next page to fault; kPages: start a round
  auto start_round = [&] {
    if (with_prefault) {
      fv::pmap_remove(s.map->pmap, va, va + kPages * ps);
      next = kStride / 2;
    } else {
      phase = (phase + 1) % kStride;
      for (std::uint64_t p = phase; p < kPages; p += kStride) fv::pmap_remove(s.map->pmap, va + p * ps, va + (p + 1) * ps);
      next = phase;
    }
  };
  // One untimed round checks the setup: every fault lands on an unmapped
  // page, and with prefault each one maps its 8 neighbours.
  start_round();
  for (; next < kPages; next += kStride) {
    const std::size_t before = s.map->pmap.resident();
    if (fv::pmap_extract(s.map->pmap, va + next * ps) != nullptr) std::abort();
    fault_or_die(*s.map, va + next * ps, fv::kProtRead);
    const std::size_t mapped = s.map->pmap.resident() - before;
    if (mapped != (with_prefault && next >= 4 && next + 4 < kPages ? 9u : with_prefault ? mapped : 1u)) std::abort();
  }
  for (auto _ : state) {
    if (next >= kPages) {
      state.PauseTiming();
      start_round();
      state.ResumeTiming();
    }
    fault_or_die(*s.map, va + next * ps, fv::kProtRead);
    next += kStride;
  }
  state.SetLabel(with_prefault ? "fault + 8 neighbours prefaulted" : "fault alone (neighbours mapped)");
}
BENCHMARK(BM_SoftFault)->Arg(0)->Arg(1);

// Reference for the run: one uncontended lock and unlock of a model mutex
// (the backend in use, checker off).  Machines here drift by up to 1.3x
// between runs; the ratio of a fault to this is what stays put.
void BM_ReferenceMutexRoundTrip(benchmark::State& state) {
  select_backend();
  faultline::locking::Mutex m(fv::object_lock_class, "reference");
  for (auto _ : state) {
    m.lock();
    m.unlock();
  }
}
BENCHMARK(BM_ReferenceMutexRoundTrip);

// First touch of anonymous memory.  Arg 1: pages come prezeroed (v_ozfod);
// arg 0: pages were used before, so the fault zeroes them (v_zfod only).
void BM_ZeroFillFault(benchmark::State& state) {
  Setup s;
  const bool prezeroed = state.range(0) != 0;
  std::uint64_t va = s.mmap(nullptr, kPages);
  std::uint64_t i = 0;
  auto refill = [&] {
    fv::map_munmap(*s.map, va, va + kPages * s.ps());
    if (prezeroed) s.vm->prezero_free_pages(s.vm->npages());
    va = s.mmap(nullptr, kPages);
    i = 0;
  };
  // Dirty every page once so that "not prezeroed" is true.
  for (std::uint64_t k = 0; k < kPages; ++k) fault_or_die(*s.map, va + k * s.ps(), fv::kProtRead | fv::kProtWrite);
  refill();
  for (auto _ : state) {
    if (i == kPages) {
      state.PauseTiming();
      refill();
      state.ResumeTiming();
    }
    fault_or_die(*s.map, va + i++ * s.ps(), fv::kProtRead | fv::kProtWrite);
  }
  state.SetLabel(prezeroed ? "prezeroed" : "zeroed by the fault");
}
BENCHMARK(BM_ZeroFillFault)->Arg(1)->Arg(0);

// Write to a page a fork shares: NEEDS_COPY shadowing happens once per batch
// (first write); every fault copies a page up (v_cow_faults).
void BM_CowCopyFault(benchmark::State& state) {
  Setup s;
  fv::Object* o = fv::object_allocate(*s.vm, fv::ObjectType::kDefault, kPages);
  std::uint64_t va = s.mmap(o, kPages);
  for (std::uint64_t k = 0; k < kPages; ++k) fault_or_die(*s.map, va + k * s.ps(), fv::kProtRead | fv::kProtWrite);
  std::unique_ptr<fv::Map> child;
  std::uint64_t i = kPages;
  for (auto _ : state) {
    if (i == kPages) {
      state.PauseTiming();
      if (child) fv::map_remove_all(*child);
      child = fv::vmspace_fork(*s.map);  // the child keeps the original pages shared
      i = 0;
      state.ResumeTiming();
    }
    fault_or_die(*s.map, va + i++ * s.ps(), fv::kProtRead | fv::kProtWrite);
  }
  if (child) fv::map_remove_all(*child);
}
BENCHMARK(BM_CowCopyFault);

// Page only in swap.  Arg: behaviour 0 normal (read-ahead clusters: most
// faults after the first of a cluster are soft), 1 random (one page per I/O).
void BM_SwapInFault(benchmark::State& state) {
  Setup s;
  const bool random = state.range(0) != 0;
  fv::Object* o = fv::object_allocate(*s.vm, fv::ObjectType::kDefault, kPages);
  std::uint64_t va = s.mmap(o, kPages);
  if (random) fv::map_madvise(*s.map, va, va + kPages * s.ps(), fv::Behavior::kRandom);
  for (std::uint64_t k = 0; k < kPages; ++k) fault_or_die(*s.map, va + k * s.ps(), fv::kProtRead | fv::kProtWrite);
  // Launder everything to swap and drop it from memory.
  auto evict = [&] {
    fv::pmap_remove(s.map->pmap, va, va + kPages * s.ps());
    MutexLock l(o->mtx);
    std::vector<fv::Page*> ms;
    for (auto& [p, m] : o->pages) {
      fv::page_io_start(m);
      ms.push_back(m);
    }
    std::vector<fv::PagerResult> rt(ms.size());
    if (!ms.empty()) fv::pager_put_pages(*o, ms.data(), static_cast<int>(ms.size()), rt.data());
    MutexLock pq(s.vm->page_queues);
    for (fv::Page* m : ms) {
      fv::page_io_finish(m);
      fv::page_free(m);
    }
  };
  evict();
  std::uint64_t i = 0;
  for (auto _ : state) {
    if (i == kPages) {
      state.PauseTiming();
      evict();
      i = 0;
      state.ResumeTiming();
    }
    fault_or_die(*s.map, va + i++ * s.ps(), fv::kProtRead);
  }
  state.SetLabel(random ? "random: one page per pager call" : "normal: clustered read-ahead");
}
BENCHMARK(BM_SwapInFault)->Arg(1)->Arg(0);

// A read fault below a shadow chain of `depth` objects (issue 16): the page
// is in the bottom object, and the fault looks in each object above it first
// (a lookup in each; seed L640-682 go down a level, locking the next object
// before unlocking the one above), then maps the page read-only in its own
// object (L781-783).  The
// chain is built as fork builds it: the process forks and writes a page, so
// its entry gets a new shadow over the object the child keeps; the children
// stay, so no object may collapse, and each level writes a page of its own,
// so no fork's collapse may bypass a level (vm_map_copy_entry collapses the
// object it copies).  Each iteration removes one translation
// (pmap_remove, counted in) and faults it back; its neighbours stay mapped
// (prefault only looks).  The slope over depth is the cost of one level.
void BM_ChainDepthFault(benchmark::State& state) {
  constexpr std::uint64_t kChainPages = 128;  // levels write pages 1..63; the faults read 64..127
  const auto depth = static_cast<int>(state.range(0));
  Setup s;
  const std::uint64_t ps = s.ps();
  std::uint64_t va = s.mmap(nullptr, kChainPages);
  for (std::uint64_t k = 0; k < kChainPages; ++k) fault_or_die(*s.map, va + k * ps, fv::kProtRead | fv::kProtWrite);
  std::vector<std::unique_ptr<fv::Map>> children;
  for (int d = 1; d < depth; ++d) {
    children.push_back(fv::vmspace_fork(*s.map));
    // A page of its own per level: had each level written the same page, the
    // next fork's collapse would bypass the level below (it would shadow all
    // of its pages).
    fault_or_die(*s.map, va + static_cast<std::uint64_t>(d) * ps, fv::kProtRead | fv::kProtWrite);
  }
  // Check the chain: depth objects, and page 64 only in the bottom one.
  {
    fv::map_lock_read(*s.map);
    fv::Object* o = s.map->lookup_entry(va)->object;
    fv::map_unlock_read(*s.map);
    int n = 0;
    bool below_only = true;
    while (o != nullptr) {
      MutexLock l(o->mtx);
      ++n;
      if (o->backing_object != nullptr && fv::page_lookup(*o, kChainPages / 2) != nullptr) below_only = false;
      o = o->backing_object;
    }
    if (n != depth || !below_only) {
      std::fprintf(stderr, "chain of %d objects built for depth %d\n", n, depth);
      std::abort();
    }
  }
  for (std::uint64_t k = 0; k < kChainPages; ++k) fault_or_die(*s.map, va + k * ps, fv::kProtRead);
  std::uint64_t k = kChainPages / 2;
  for (auto _ : state) {
    fv::pmap_remove(s.map->pmap, va + k * ps, va + (k + 1) * ps);
    fault_or_die(*s.map, va + k * ps, fv::kProtRead);
    k = k + 1 == kChainPages ? kChainPages / 2 : k + 1;
  }
  for (auto& c : children) fv::map_remove_all(*c);
  state.counters["depth"] = depth;
  state.SetLabel("read fault + one pmap_remove");
}
BENCHMARK(BM_ChainDepthFault)->RangeMultiplier(2)->Range(1, 64);

// A soft read fault against the size of its object (resident pages): the
// object's page lookup is a search tree (7.0's splay tree; std::map here).
// Pages are faulted in a scattered order (a prime stride); each iteration
// removes one translation and faults it back, as above.
void BM_ObjectSizeFault(benchmark::State& state) {
  const auto pages = static_cast<std::uint64_t>(state.range(0));
  Setup s;
  const std::uint64_t ps = s.ps();
  std::uint64_t va = s.mmap(nullptr, pages);
  for (std::uint64_t k = 0; k < pages; ++k) fault_or_die(*s.map, va + k * ps, fv::kProtRead | fv::kProtWrite);
  std::uint64_t k = 0;
  for (auto _ : state) {
    fv::pmap_remove(s.map->pmap, va + k * ps, va + (k + 1) * ps);
    fault_or_die(*s.map, va + k * ps, fv::kProtRead);
    k = (k + 7919) % pages;
  }
  state.counters["object_pages"] = static_cast<double>(pages);
  state.SetLabel("read fault + one pmap_remove");
}
BENCHMARK(BM_ObjectSizeFault)->RangeMultiplier(8)->Range(64, 4096);

}  // namespace

int main(int argc, char** argv) { return faultline::bench::run_with_second_thread(argc, argv); }
