#include "stress/world.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "core/invariants.h"
#include "core/page.h"
#include "core/pageout.h"
#include "core/socow.h"
#include "locking/locking.h"
#include "stress/trace.h"

#include "stress/world_detail.h"

namespace faultline::stress {

using vm::Kern;
using namespace world_detail;

const char* region_name(int r) noexcept {
  switch (r) {
    case kAnon: return "anon";
    case kScratch: return "scratch";
    case kChurn: return "churn";
  }
  return "?";
}

Process::Process(std::uint32_t id, Process* p, int n) : pid(id), parent(p), nworkers(n) {}

std::size_t Process::slot_index(int region, std::uint64_t page, int slot) const {
  const std::uint64_t first = region == kAnon ? 0 : npages[kAnon];
  return static_cast<std::size_t>((first + page) * static_cast<std::uint64_t>(slots_per_page) +
                                  static_cast<std::uint64_t>(slot));
}

World::World(const Config& c, Executor& ex)
    : cfg(c),
      vm(vm_config(c)),
      ex_(ex),
      file_size_(static_cast<std::uint64_t>(c.file_pages) * vm.page_size()),
      fstate_(std::make_unique<std::atomic<std::uint32_t>[]>(file_size_ / 8)),
      ftaint_(std::make_unique<std::atomic<std::uint64_t>[]>(file_size_ / 8)),
      fwiring_(std::make_unique<FileWiring[]>(c.file_pages)) {
  for (std::uint64_t w = 0; w < file_size_ / 8; ++w) {
    fstate_[w].store(0, std::memory_order_relaxed);
    ftaint_[w].store(0, std::memory_order_relaxed);
  }
  ex_.watch_progress(&ops_done);
  // The reach table's "first": how many operations had completed.
  vm.counters().set_stamp_source(
      [](const void* w) { return static_cast<const World*>(w)->ops_done.load(std::memory_order_relaxed); }, this);
  file_ = std::make_unique<vm::Vnode>(vm, file_size_);
  {
    locking::SxExclusiveLock vl(file_->lock);
    for (std::uint64_t off = 0; off < file_size_; off += 8) {
      const std::uint64_t w = file_word(off, 0);
      std::memcpy(file_->contents.data() + off, &w, sizeof w);
    }
  }
  // The device: its driver reports one d_mmap call in four, drawn from the
  // seed, as "memory being moved", so the pager disposes of the page and the
  // fault looks again (the seed's L579-583 retry).
  device_ = std::make_unique<vm::Device>(vm, c.device_pages);
  {
    locking::MutexLock dl(device_->lock);
    for (std::uint64_t off = 0; off < device_->memory.size(); off += 8) {
      const std::uint64_t w = device_word(off);
      std::memcpy(device_->memory.data() + off, &w, sizeof w);
    }
  }
  device_->d_mmap = [this](vm::Pindex pindex) {
    if (pindex >= device_->npages) return vm::DevMmap::kInvalid;
    Rng r = Rng::stream(cfg.seed, kDeviceStream ^ device_calls_.fetch_add(1, std::memory_order_relaxed));
    if (r.below(4) != 0) return vm::DevMmap::kMapped;
    device_moves.fetch_add(1, std::memory_order_relaxed);
    return vm::DevMmap::kMoving;
  };
  region_weights_[kAnon] = 8;
  region_weights_[kScratch] = c.mix[static_cast<std::size_t>(Op::kProtect)] != 0 ? 1 : 0;
  region_weights_[kChurn] = c.mix[static_cast<std::size_t>(Op::kChurn)] != 0 ? 1 : 0;
  if (c.duration_s > 0)
    deadline_ = std::chrono::steady_clock::now() +
                std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                    std::chrono::duration<double>(c.duration_s));
}

World::~World() = default;

std::uint64_t World::device_word(std::uint64_t off) const {
  Rng r(off * 0xc2b2ae3d27d4eb4full + cfg.seed + 1);
  return r.next() | 1;
}

std::uint64_t World::file_word(std::uint64_t off, std::uint32_t gen) const {
  // Never 0, so a zero is always recognisable as truncated-and-regrown.
  Rng r(off * 0x9e3779b97f4a7c15ull + cfg.seed + std::uint64_t{gen} * 0xd1b54a32d192ed03ull);
  return r.next() | 1;
}

void World::fail(std::string oracle, std::string what) {
  {
    std::lock_guard<std::mutex> l(failures_mtx_);
    if (failures_.size() < 50) failures_.push_back({std::move(oracle), std::move(what)});
  }
  failed_.store(true, std::memory_order_relaxed);
  request_stop();
}

std::vector<Failure> World::failures() const {
  std::lock_guard<std::mutex> l(failures_mtx_);
  return failures_;
}

void World::request_stop() noexcept { stop_.store(true, std::memory_order_relaxed); }

Process& World::new_process(Process* parent, int nworkers) {
  auto p = std::make_unique<Process>(next_pid_.fetch_add(1), parent, nworkers);
  p->map = std::make_unique<vm::Map>(vm, kBase, kBase + kMapSpan);
  p->npages[kAnon] = cfg.anon_pages;
  p->npages[kScratch] = cfg.scratch_pages;
  p->npages[kChurn] = cfg.churn_pages;
  p->slots_per_page = cfg.workers;  // children keep their parent's slot layout
  p->nslots = static_cast<std::size_t>(cfg.anon_pages + cfg.scratch_pages) * static_cast<std::size_t>(cfg.workers);
  p->committed = std::make_unique<std::atomic<std::uint64_t>[]>(p->nslots);
  p->pending = std::make_unique<std::atomic<std::uint64_t>[]>(p->nslots);
  p->wiring = std::make_unique<Process::Wiring[]>(cfg.anon_pages);
  p->scratch_ro = std::make_unique<Process::ScratchRo[]>(cfg.scratch_pages);
  p->file_ro = std::make_unique<Process::ScratchRo[]>(cfg.file_pages);
  p->file_mlock = std::make_unique<Process::FileMlock[]>(cfg.file_pages);
  p->file_gone = std::make_unique<Process::ScratchRo[]>(cfg.file_pages);
  for (std::size_t i = 0; i < p->nslots; ++i) {
    p->committed[i].store(0, std::memory_order_relaxed);
    p->pending[i].store(0, std::memory_order_relaxed);
  }
  if (private_mapping()) {
    const std::size_t words = file_size_ / 8, pages = file_size_ / vm.page_size();
    p->fpriv_wire = std::make_unique<Process::ScratchRo[]>(pages);
    p->fpriv_committed = std::make_unique<std::atomic<std::uint64_t>[]>(words);
    p->fpriv_pending = std::make_unique<std::atomic<std::uint64_t>[]>(words);
    p->fpriv_maybe = std::make_unique<std::atomic<bool>[]>(pages);
    p->fpriv_sure = std::make_unique<std::atomic<bool>[]>(pages);
    p->fpriv_ro = std::make_unique<Process::ScratchRo[]>(pages);
    p->fpriv_max_write_lost = std::make_unique<std::atomic<bool>[]>(pages);
    p->fpriv_gone = std::make_unique<Process::ScratchRo[]>(pages);
    p->fpriv_storing = std::make_unique<std::atomic<int>[]>(pages);
    p->fpriv_murky = std::make_unique<std::atomic<bool>[]>(pages);
    p->fpriv_dropped = std::make_unique<std::atomic<bool>[]>(pages);
    for (std::size_t i = 0; i < words; ++i) {
      p->fpriv_committed[i].store(0, std::memory_order_relaxed);
      p->fpriv_pending[i].store(0, std::memory_order_relaxed);
    }
    for (std::size_t i = 0; i < pages; ++i) {
      p->fpriv_maybe[i].store(false, std::memory_order_relaxed);
      p->fpriv_sure[i].store(false, std::memory_order_relaxed);
      p->fpriv_max_write_lost[i].store(false, std::memory_order_relaxed);
      p->fpriv_storing[i].store(0, std::memory_order_relaxed);
      p->fpriv_murky[i].store(false, std::memory_order_relaxed);
    }
  }
  Process& ref = *p;
  {
    std::lock_guard<std::mutex> l(procs_mtx_);
    procs_.push_back(std::move(p));
  }
  const int live = live_processes_.fetch_add(1) + 1;
  std::uint32_t peak = peak_live_processes.load();
  while (static_cast<std::uint32_t>(live) > peak && !peak_live_processes.compare_exchange_weak(peak, live)) {
  }
  return ref;
}

bool World::start() {
  const std::uint64_t ps = vm.page_size();
  for (int i = 0; i < cfg.processes; ++i) {
    Process& p = new_process(nullptr, cfg.workers);
    for (int r = 0; r < kRegions; ++r) {
      std::uint64_t addr = 0;
      if (vm::map_mmap(*p.map, &addr, p.npages[r] * ps, nullptr, 0, vm::kProtRead | vm::kProtWrite, vm::kProtAll, 0,
                       vm::Inherit::kCopy) != Kern::kSuccess) {
        fail("setup", fmt::format("mmap of the {} region failed", region_name(r)));
        return false;
      }
      p.va[r] = addr;
    }
    vm::Object* fobj = vm::vnode_pager_alloc(*file_);
    std::uint64_t faddr = 0;
    if (vm::map_mmap(*p.map, &faddr, file_size_, fobj, 0, vm::kProtRead | vm::kProtWrite, vm::kProtAll, 0,
                     vm::Inherit::kShare) !=
        Kern::kSuccess) {
      fail("setup", "mmap of the file failed");
      return false;
    }
    p.file_va = faddr;
    if (p.fpriv_committed) {
      // MAP_PRIVATE: the vnode object, copy-on-write (vm_mmap's
      // MAP_COPY_ON_WRITE | MAP_NEEDS_COPY), copied by fork.
      vm::Object* pobj = vm::vnode_pager_alloc(*file_);
      std::uint64_t paddr = 0;
      if (vm::map_mmap(*p.map, &paddr, file_size_, pobj, 0, vm::kProtRead | vm::kProtWrite, vm::kProtAll,
                       vm::kEntryCow | vm::kEntryNeedsCopy, vm::Inherit::kCopy) != Kern::kSuccess) {
        fail("setup", "private mmap of the file failed");
        return false;
      }
      p.fpriv_va = paddr;
    }
    if (i == 0) {
      fmap_ = std::make_unique<vm::Map>(vm, kBase, kBase + kMapSpan);
      vm::Object* tobj = vm::vnode_pager_alloc(*file_);
      if (vm::map_mmap(*fmap_, &fmap_va_, file_size_, tobj, 0, vm::kProtRead | vm::kProtWrite, vm::kProtAll, 0,
                       vm::Inherit::kShare) != Kern::kSuccess) {
        fail("setup", "the truncator's mmap of the file failed");
        return false;
      }
    }
    vm::Object* dobj = vm::dev_pager_alloc(*device_);
    std::uint64_t daddr = 0;
    if (vm::map_mmap(*p.map, &daddr, std::uint64_t{cfg.device_pages} * ps, dobj, 0, vm::kProtRead, vm::kProtAll, 0,
                     vm::Inherit::kShare) != Kern::kSuccess) {
      fail("setup", "mmap of the device failed");
      return false;
    }
    p.device_va = daddr;
  }
  // Every initial thread is counted before any starts, so the count cannot
  // reach zero (and stop the actors) while the others are being started.
  live_threads_.store(cfg.started_workers());
  std::vector<Process*> roots;
  {
    std::lock_guard<std::mutex> l(procs_mtx_);
    for (auto& p : procs_) roots.push_back(p.get());
  }
  for (Process* p : roots) {
    int n = 0;
    for (int j = 0; j < cfg.workers; ++j) n += cfg.worker_started(p->pid, j) ? 1 : 0;
    p->live_workers.store(n);
  }
  std::string err;
  if (cfg.pagedaemon && !ex_.spawn("pagedaemon", [this] { pagedaemon(); }, &err)) {
    setup_error_ = true;
    fail("setup", "could not start the pageout daemon: " + err);
    return false;
  }
  if (cfg.truncator) faulting_actors_.store(1);
  if (cfg.truncator && !ex_.spawn("truncator", [this] { truncator(); }, &err)) {
    faulting_actors_.store(0);
    setup_error_ = true;
    fail("setup", "could not start the truncator: " + err);
    return false;
  }
  for (std::size_t i = 0; i < roots.size(); ++i) {
    if (start_threads(*roots[i], cfg.workers, cfg.ops)) continue;
    // The threads of the processes not started yet are counted: settle them
    // so that the actors stop once the started ones return.
    for (std::size_t k = i + 1; k < roots.size(); ++k)
      for (int j = 0; j < cfg.workers; ++j)
        if (cfg.worker_started(roots[k]->pid, j)) thread_done(*roots[k]);
    return false;
  }
  return true;
}

bool World::start_threads(Process& p, int nworkers, std::uint64_t ops) {
  for (int j = 0; j < nworkers; ++j) {
    if (p.parent == nullptr && !cfg.worker_started(p.pid, j)) continue;
    std::string err;
    if (!ex_.spawn(fmt::format("p{}.t{}", p.pid, j), [this, &p, j, ops] { worker(p, j, ops); }, &err)) {
      setup_error_ = true;
      fail("setup", fmt::format("could not start thread {} of process {} (thread #{} of the run): {}", j, p.pid,
                                threads_started.load() + 1, err));
      // The threads never started are still counted: settle them.
      for (int k = j; k < nworkers; ++k)
        if (p.parent != nullptr || cfg.worker_started(p.pid, k)) thread_done(p);
      return false;
    }
    threads_started.fetch_add(1, std::memory_order_relaxed);
  }
  return true;
}

void World::thread_done(Process& p) {
  if (p.live_workers.fetch_sub(1) == 1 && p.parent != nullptr) {
    // The last thread of a child: the process exits.
    QuiesceScope in(threads_gate_);
    vm::map_remove_all(*p.map);
    p.exited = true;
    live_processes_.fetch_sub(1);
    children_exited.fetch_add(1, std::memory_order_relaxed);
  }
  if (live_threads_.fetch_sub(1) == 1) {
    // The last simulated thread checks every slot while the pageout daemon
    // still runs (the check faults pages back in), then stops the actors.
    final_data_check();
    wake_actors();
  }
}

void World::wake_actors() {
  stop_.store(true);
  actors_stop_.store(true);
  if (faulting_actors_.load() == 0) stop_daemon();
}

// The truncator, when it exits (it does only once actors_stop_ is set),
// stops the daemon; else wake_actors does.  (The daemon used to stop with
// the other actors: a truncator's store that met a memory shortage then
// waited for good, a hang that threads met once in about 1,200 runs of
// truncate-shared.)
void World::stop_daemon() {
  daemon_stop_.store(true);
  locking::MutexLock f(vm.free_mtx);
  locking::wakeup(&vm.pages_needed);
}

void World::pagedaemon() {
  // Deterministic runs must not wait on real time: the daemon then sleeps
  // until woken (as 7.x's does when nothing is short).
  const unsigned timeout_ms = cfg.executor == ExecutorKind::kFibers ? 0 : 10;
  for (;;) {
    QuiesceScope in(actors_gate_);
    if (!vm::pageout_daemon_step(vm, daemon_stop_, timeout_ms)) break;
  }
}

// ftruncate(2) to a random length, a while with the file short, then back
// to its full length: two operations, each one vnode_pager_setsize under
// the exclusive vnode lock (as 7.x's VOP_SETATTR), with the lock dropped
// between them, so faults meet the short file (seed L423-427: past its end
// they fail, SIGBUS) and its partly valid last page.  A while later a new
// generation of words is stored over part of the regrown range, so a page
// that survived the cut (stale data) differs from the file, before the
// store (zeros expected) and after it (the new generation expected).
void World::truncator() {
  Rng rng = Rng::stream(cfg.seed, kTruncatorStream);
  for (std::uint64_t k = 0; !actors_stop_.load(std::memory_order_relaxed); ++k) {
    const std::uint64_t cut = rng.below(file_size_ / 8) * 8;
    const std::uint64_t step = k * kTruncSteps;
    cuts_[k % kCuts].store(cut, std::memory_order_relaxed);
    {
      QuiesceScope in(actors_gate_);
      trunc_seq_.fetch_add(1, std::memory_order_acq_rel);  // 6k+1: shrinking
      // Which pages from the cut on an mlock may have had wired meanwhile:
      // the cut leaves those past it in the object, wired, and unmaps them
      // and the partial last page (vnode_pager_setsize's pmap_remove_all),
      // so an munlock may leave any of them wired for good (FileWiring).
      const std::uint64_t ps = vm.page_size(), first_out = cut / ps;
      std::vector<std::uint64_t> wgen(cfg.file_pages);
      std::vector<bool> wired(cfg.file_pages);
      for (std::uint64_t i = first_out; i < cfg.file_pages; ++i) {
        wgen[i] = fwiring_[i].gen.load();
        wired[i] = fwiring_[i].active.load() != 0;
      }
      {
        locking::SxExclusiveLock vl(file_->lock);
        vm::vnode_write_last_page(*file_, cut);
        vm::vnode_pager_setsize(*file_, cut);
      }
      // A mark stays only while its page is resident: a page past the cut
      // that is not resident now cannot become so while the file is short
      // without a fault refusing it (L423), and only a resident page is
      // found past the end.  (The oracle reads the object's pages under its
      // lock here; a page the cut wrongly kept would still be caught
      // wherever nothing may have had it wired.)
      {
        locking::MutexLock ol(file_->object->mtx);
        for (std::uint64_t i = first_out; i < cfg.file_pages; ++i) {
          const bool suspect = fwiring_[i].left.load() || wired[i] || fwiring_[i].active.load() != 0 ||
                               fwiring_[i].gen.load() != wgen[i];
          fwiring_[i].mark_left(suspect && vm::page_lookup(*file_->object, i) != nullptr);
        }
      }
      for (std::uint64_t w = cut / 8; w < file_size_ / 8; ++w)
        file_word_set(w, fstate_[w].load(std::memory_order_relaxed) | 1, step + 1);
      trunc_seq_.fetch_add(1, std::memory_order_acq_rel);  // 6k+2: short
    }
    ex_.pause_us(200);
    {
      QuiesceScope in(actors_gate_);
      trunc_seq_.fetch_add(1, std::memory_order_acq_rel);  // 6k+3: growing
      {
        locking::SxExclusiveLock vl(file_->lock);
        vm::vnode_pager_setsize(*file_, file_size_);
      }
      trunc_seq_.fetch_add(1, std::memory_order_acq_rel);  // 6k+4: whole again, zeros past the cut
      truncations.fetch_add(1, std::memory_order_relaxed);
    }
    ex_.pause_us(200);
    {
      // Stores fault, and a fault may wait for memory, which only the
      // daemon (an actor) frees: the stores pass the threads' gate, as a
      // simulated thread's operation does, not the actors'.
      QuiesceScope in(threads_gate_);
      trunc_seq_.fetch_add(1, std::memory_order_acq_rel);  // 6k+5: storing generation k+1
      file_fill(cut, static_cast<std::uint32_t>(k + 1), step + 5, rng);
      trunc_seq_.fetch_add(1, std::memory_order_acq_rel);  // 6k+6
    }
    ex_.pause_us(300);
  }
  if (faulting_actors_.fetch_sub(1) == 1) stop_daemon();
}

void World::file_word_set(std::uint64_t w, std::uint32_t s, std::uint64_t step) {
  fstate_[w].store(s, std::memory_order_release);
  std::uint64_t t = ftaint_[w].load(std::memory_order_acquire);
  while (t != 0 && Taint::unpack(t).done < step && !ftaint_[w].compare_exchange_weak(t, 0)) {
  }
}

// Generation `gen` over a random range of at most a page in the regrown
// part of the file, one store per word through the truncator's mapping.
void World::file_fill(std::uint64_t cut, std::uint32_t gen, std::uint64_t step, Rng& rng) {
  const std::uint64_t words = file_size_ / 8;
  const std::uint64_t first = cut / 8 + rng.below(words - cut / 8);
  const std::uint64_t last = std::min(words, first + 1 + rng.below(vm.page_size() / 8));
  for (std::uint64_t w = first; w < last; ++w) {
    std::uint64_t v = file_word(w * 8, gen);
    const Kern r = access(*fmap_, fmap_va_ + w * 8, true, &v);
    if (r == Kern::kSuccess) {
      file_word_set(w, gen << 1, step);
      file_fill_words.fetch_add(1, std::memory_order_relaxed);
    } else if (!pager_error(r)) {  // (a pager error: the store did not land, the word keeps its state)
      fail("file", fmt::format("the truncator's store of generation {} at file offset {}: {} inside the file", gen,
                               w * 8, vm::kern_name(r)));
      return;
    }
  }
}

void World::finish() {
  locking::ActorScope me("checker");
  std::vector<vm::Map*> maps;
  {
    std::lock_guard<std::mutex> l(procs_mtx_);
    for (auto& p : procs_)
      if (!p->exited && p->map) maps.push_back(p->map.get());
  }
  if (fmap_) maps.push_back(fmap_.get());
  for (const std::string& f : vm::check_invariants(vm, maps, {file_.get()}, {device_.get()})) fail("invariants", f);
  for (vm::Map* m : maps) vm::map_remove_all(*m);
  vm::vnode_release_object(*file_);
  vm::device_release_object(*device_);
  for (const std::string& f : vm::check_invariants(vm, {})) fail("invariants", "after teardown: " + f);
  std::lock_guard<std::mutex> l(procs_mtx_);
  for (auto& p : procs_) p->map.reset();
  fmap_.reset();
}

}  // namespace faultline::stress
