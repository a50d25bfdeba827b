// Fault throughput of the model against worker count (issue 16): the three
// will-it-scale shapes (anonymous, private file, shared file), disjoint or
// shared objects or one hot page, read or write, 1 to 64 OS threads (past the
// cores: these machines have 2).  See bench/scale_common.h for what a point
// measures; host_bench runs the same shapes on the host kernel.
//
// A worker touches a page as the CPU would: pmap_access (the model's MMU), and
// on a miss vm_fault and again.  Every lock is a real one (the std backend),
// the order checker is off (a production build of the model) and the model's
// KASSERTs are in (FL_INVARIANTS; bench/overhead.py prices them).
//
// The lock profile: with FL_BENCH_PROFILE=FILE each point runs a second time
// for half as long with lock profiling on (locking/profile.h, FreeBSD's
// LOCK_PROFILING) and appends one JSON line to FILE: the point's name and
// workers, every lock class (acquisitions, contended, wait and hold totals
// and maxima) and the top sites by wait, and appends the same profile as a
// lock_stat table (FreeBSD's debug.lock.prof.stats columns) to FILE.txt.
// The point's label names the class and site where the most time was spent
// waiting.
//
//   FL_BENCH_PROFILE=/tmp/p.jsonl build/release/bench/scale_bench --benchmark_out=/tmp/s.json
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include "bench/bench_main.h"
#include "bench/scale_common.h"
#include "bench/vm_setup.h"
#include "core/fault.h"
#include "core/pager.h"
#include "core/pmap.h"
#include "core/vm.h"
#include "locking/locking.h"
#include "locking/profile.h"
#include "locking/profile_json.h"

namespace fb = faultline::bench;
namespace fl = faultline::locking;
namespace fv = faultline::vm;

namespace {

// One point's world: the VM, the address spaces, the files or the shared
// anonymous object.
class World {
 public:
  World(fb::Shape shape, fb::Sharing sharing, int workers) : shape_(shape), sharing_(sharing) {
    fv::VmConfig c;
    c.npages = static_cast<std::uint32_t>(workers * fb::kRoundPages * 3 + 8192);
    vm_ = std::make_unique<fv::Vm>(c);
    const int spaces = sharing == fb::Sharing::kDisjoint ? workers : 1;
    for (int i = 0; i < spaces; ++i) {
      maps_.push_back(std::make_unique<fv::Map>(*vm_, fb::kBase, fb::kBase + (1ull << 40)));
      if (shape != fb::Shape::kAnon) {
        // A file of kRoundPages pages of non-zero bytes, as will-it-scale's
        // tmpfile after its ftruncate (there: holes reading zeros).
        vnodes_.push_back(std::make_unique<fv::Vnode>(*vm_, fb::kRoundPages * vm_->page_size()));
        fv::Vnode& vp = *vnodes_.back();
        fl::SxExclusiveLock g(vp.lock);
        for (std::size_t k = 0; k < vp.contents.size(); ++k) vp.contents[k] = static_cast<std::byte>(k | 1);
      } else if (sharing != fb::Sharing::kDisjoint) {
        shared_anon_ = fv::object_allocate(*vm_, fv::ObjectType::kDefault, fb::kRoundPages);
      }
    }
    // Hot page: each worker's mapping is made before any timed run (mmap
    // takes the map exclusively), and touched once before each run (a first
    // write to a private mapping makes its shadow, exclusively too), so that
    // the runs measure only the faults on page 0.
    if (sharing == fb::Sharing::kHotPage) {
      for (int i = 0; i < workers; ++i) hot_.push_back(map_round(i));
    }
  }
  ~World() {
    for (auto& m : maps_) fv::map_remove_all(*m);
    if (shared_anon_ != nullptr) fv::object_deallocate(shared_anon_);
    for (auto& vp : vnodes_) fv::vnode_release_object(*vp);
    maps_.clear();
  }
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  std::uint64_t ps() const { return vm_->page_size(); }
  fv::Map& map(int worker) { return *maps_[maps_.size() == 1 ? 0 : static_cast<std::size_t>(worker)]; }

  // mmap of the whole object (a new anonymous one for disjoint anon).
  std::uint64_t map_round(int worker) {
    fv::Object* o = nullptr;
    if (shape_ != fb::Shape::kAnon) {
      o = fv::vnode_pager_alloc(*vnodes_[vnodes_.size() == 1 ? 0 : static_cast<std::size_t>(worker)]);
    } else if (shared_anon_ != nullptr) {
      fv::object_reference(*shared_anon_);
      o = shared_anon_;
    }
    const bool priv = shape_ == fb::Shape::kPrivateFile;
    std::uint64_t va = 0;
    if (fv::map_mmap(map(worker), &va, fb::kRoundPages * ps(), o, 0, fv::kProtRead | fv::kProtWrite, fv::kProtAll,
                     priv ? fv::kEntryCow | fv::kEntryNeedsCopy : 0,
                     priv ? fv::Inherit::kCopy : fv::Inherit::kShare) != fv::Kern::kSuccess)
      std::abort();
    return va;
  }

  fb::Sharing sharing() const { return sharing_; }
  std::uint64_t hot(int worker) const { return hot_[static_cast<std::size_t>(worker)]; }

 private:
  fb::Shape shape_;
  fb::Sharing sharing_;
  std::unique_ptr<fv::Vm> vm_;
  std::vector<std::unique_ptr<fv::Map>> maps_;
  std::vector<std::unique_ptr<fv::Vnode>> vnodes_;
  fv::Object* shared_anon_ = nullptr;
  std::vector<std::uint64_t> hot_;  // each worker's mapping (hot page)
};

using fb::touch;

struct Totals {
  std::uint64_t touches = 0;
  std::uint64_t faults = 0;
  double seconds = 0;
};

Totals timed_run(World& w, int workers, bool write, double seconds) {
  fb::RunControl ctl;
  std::atomic<std::uint64_t> touches{0}, faults{0};
  std::vector<std::thread> ts;
  ts.reserve(static_cast<std::size_t>(workers));
  for (int i = 0; i < workers; ++i) {
    ts.emplace_back([&, i] {
      fv::Map& m = w.map(i);
      const std::uint64_t ps = w.ps();
      std::uint64_t t = 0, f = 0;
      const std::uint64_t hot = w.sharing() == fb::Sharing::kHotPage ? w.hot(i) : 0;
      if (hot != 0) touch(m, hot, write);  // a write: the shadow and its copy now, before the run
      ctl.arrive_and_wait();
      while (!ctl.stopping()) {
        if (w.sharing() == fb::Sharing::kHotPage) {
          for (int k = 0; k < 64; ++k) {
            f += touch(m, hot, write);
            fv::pmap_remove(m.pmap, hot, hot + ps);
          }
          t += 64;
          continue;
        }
        const std::uint64_t va = w.map_round(i);
        for (std::uint64_t p = 0; p < fb::kRoundPages; ++p) f += touch(m, va + p * ps, write);
        t += fb::kRoundPages;
        if (fv::map_munmap(m, va, va + fb::kRoundPages * ps) != fv::Kern::kSuccess) std::abort();
      }
      touches.fetch_add(t);
      faults.fetch_add(f);
    });
  }
  while (ctl.ready.load(std::memory_order_acquire) != workers) std::this_thread::yield();
  const auto t0 = std::chrono::steady_clock::now();
  ctl.go.store(true, std::memory_order_release);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  ctl.stop.store(true);
  for (auto& t : ts) t.join();
  const auto t1 = std::chrono::steady_clock::now();
  return {touches.load(), faults.load(), std::chrono::duration<double>(t1 - t0).count()};
}

// The profiled rerun of a point ("anon/shared/write" and its workers);
// returns its label.
std::string profile_point(World& w, int workers, bool write, double seconds, const std::string& name) {
  const char* path = std::getenv("FL_BENCH_PROFILE");
  if (path == nullptr || *path == '\0') return {};
  fl::reset_profile();
  fl::set_profiling(true);
  const Totals t = timed_run(w, workers, write, seconds);
  fl::set_profiling(false);
  const auto classes = fl::profile_by_class();
  const auto sites = fl::profile_by_site();
  std::FILE* f = std::fopen(path, "a");
  if (f == nullptr) {
    std::fprintf(stderr, "scale_bench: FL_BENCH_PROFILE=%s: cannot open\n", path);
    std::exit(2);
  }
  const nlohmann::ordered_json line = {{"name", name},
                                       {"workers", workers},
                                       {"seconds", t.seconds},
                                       {"touches", t.touches},
                                       {"classes", fl::profile_json(classes, 64)},
                                       {"sites", fl::profile_json(sites, 64)}};
  std::fprintf(f, "%s\n", line.dump().c_str());
  std::fclose(f);
  // The same profile as FreeBSD's debug.lock.prof.stats prints it, per class
  // then per site, in FILE.txt.
  const std::string text_path = std::string(path) + ".txt";
  if (std::FILE* tf = std::fopen(text_path.c_str(), "a"); tf != nullptr) {
    std::fprintf(tf, "== %s, %d workers, %.3f s profiled\n%s\n%s\n", name.c_str(), workers, t.seconds,
                 fl::format_profile(classes, 64).c_str(), fl::format_profile(sites, 12).c_str());
    std::fclose(tf);
  }
  if (classes.empty() || classes[0].wait_ns_total == 0) return "no lock waited on";
  // The site of that class where the most time was spent waiting.
  std::string site = "?";
  for (const fl::ProfileRow& r : sites) {
    if (r.lock_class == classes[0].lock_class) {
      site = r.site;
      break;
    }
  }
  return fmt::format("wait: {} {:.0f}ms at {}", classes[0].lock_class, classes[0].wait_ns_total / 1e6, site);
}

// Args: shape, sharing, write (0/1), workers.
void BM_ModelFaults(benchmark::State& state) {
  const auto shape = static_cast<fb::Shape>(state.range(0));
  const auto sharing = static_cast<fb::Sharing>(state.range(1));
  const bool write = state.range(2) != 0;
  const int workers = static_cast<int>(state.range(3));
  fl::set_backend(fl::Backend::kStd);
  fl::set_mode(fl::Mode::kOff);
  const double seconds = fb::run_seconds();
  World w(shape, sharing, workers);
  Totals t;
  for (auto _ : state) {
    t = timed_run(w, workers, write, seconds);
    fb::report_point(state, t.seconds, workers, t.touches, t.faults);
  }
  const std::string label =
      profile_point(w, workers, write, seconds / 2,
                    fmt::format("{}/{}/{}", fb::shape_name(shape), fb::sharing_name(sharing), write ? "write" : "read"));
  state.SetLabel(fmt::format("{} {} {}{}{}", fb::shape_name(shape), fb::sharing_name(sharing), write ? "write" : "read",
                             label.empty() ? "" : "; ", label));
}

BENCHMARK(BM_ModelFaults)->Apply(fb::scaling_points);

}  // namespace

int main(int argc, char** argv) { return faultline::bench::run_with_second_thread(argc, argv); }
