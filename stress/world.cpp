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

namespace faultline::stress {

using vm::Kern;

namespace {

// A record's generation when an operation began, or kBusy if one of the
// record's kind (an mprotect, an mlock, an munmap) was in progress then;
// moved() tells whether one has overlapped since: in progress then or now,
// or the generation moved.
constexpr std::uint64_t kBusy = ~std::uint64_t{0};
template <class R>
std::uint64_t gen_at(const R& r) {
  return r.active.load() != 0 ? kBusy : r.gen.load();
}
template <class R>
bool moved(const R& r, std::uint64_t then) {
  return then == kBusy || r.active.load() != 0 || r.gen.load() != then;
}

// An operation over pages [lo, hi) bracketed in a per-page record (an
// mprotect to read-only, an munmap, an mlock): the generation moves first
// both ways, so a check that sees `active` at 0 after the end sees the
// generation moved.  At the end, `own`: the pages are the process's own
// again, whatever a fork left it (`inherited` cleared).
void begin_run(Process::ScratchRo* r, std::uint64_t lo, std::uint64_t hi) {
  for (std::uint64_t i = lo; i < hi; ++i) {
    r[i].gen.fetch_add(1);
    r[i].active.fetch_add(1);
  }
}
void end_run(Process::ScratchRo* r, std::uint64_t lo, std::uint64_t hi, bool own) {
  for (std::uint64_t i = lo; i < hi; ++i) {
    if (own) r[i].inherited.store(false);
    r[i].gen.fetch_add(1);
    r[i].active.fetch_sub(1);
  }
}

// Stores to pages [lo, hi) of the private file mapping, or an mlock of them,
// in flight (Process::fpriv_storing): munmap-private waits for those that
// began before it before it clears the pages' records.  At the end each
// page is marked maybe copied again (that munmap may have cleared the mark
// meanwhile) before the count drops, so a read that finds no store in
// flight after its access finds the mark.
class PrivateInFlight {
 public:
  PrivateInFlight(Process& p, std::uint64_t lo, std::uint64_t hi) : p_(p), lo_(lo), hi_(hi) {
    for (std::uint64_t i = lo_; i < hi_; ++i) {
      p_.fpriv_storing[i].fetch_add(1);
      p_.fpriv_maybe[i].store(true);
    }
  }
  ~PrivateInFlight() {
    for (std::uint64_t i = lo_; i < hi_; ++i) {
      p_.fpriv_maybe[i].store(true);
      p_.fpriv_storing[i].fetch_sub(1);
    }
  }
  PrivateInFlight(const PrivateInFlight&) = delete;
  PrivateInFlight& operator=(const PrivateInFlight&) = delete;

 private:
  Process& p_;
  const std::uint64_t lo_, hi_;
};

// Pages [lo, hi) of a region of n pages for an operation over a run of it:
// the whole region one time in two, else a random run.
std::pair<std::uint64_t, std::uint64_t> some_run(Rng& rng, std::uint64_t n) {
  if (n <= 1 || rng.below(2) != 0) return {0, n};
  const std::uint64_t lo = rng.below(n);
  return {lo, lo + 1 + rng.below(n - lo)};
}

// A run of one to four of n pages: {first page, pages}.
std::pair<std::uint64_t, std::uint64_t> short_run(Rng& rng, std::uint64_t n) {
  const std::uint64_t count = 1 + rng.below(std::min<std::uint64_t>(4, n));
  return {rng.below(n - count + 1), count};
}

constexpr std::uint64_t kBase = 0x10000000;
constexpr std::uint64_t kMapSpan = std::uint64_t{1} << 36;

vm::VmConfig vm_config(const Config& c) {
  vm::VmConfig v;
  v.npages = c.pages;
  v.seed = c.seed;
  v.io_latency_us = c.io_latency_us;
  v.io_error_ppm = c.io_error_ppm;
  v.mutant = c.mutant;
  v.fixes = c.fixes;
  return v;
}

std::string describe_value(std::uint64_t v) {
  if (v == 0) return "0";
  return fmt::format("{:#x} (pid {} seq {})", v, tag_of(v), seq_of(v));
}

// Stream numbers of the run's generators: threads by (pid, thread), actors apart.
std::uint64_t thread_stream(std::uint32_t pid, int j) {
  return (static_cast<std::uint64_t>(pid) << 20) | static_cast<std::uint64_t>(j);
}
constexpr std::uint64_t kTruncatorStream = ~std::uint64_t{0} - 1;
constexpr std::uint64_t kDeviceStream = std::uint64_t{1} << 62;

}  // namespace

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
  live_threads_.store(cfg.processes * cfg.workers);
  std::vector<Process*> roots;
  {
    std::lock_guard<std::mutex> l(procs_mtx_);
    for (auto& p : procs_) roots.push_back(p.get());
  }
  for (Process* p : roots) p->live_workers.store(cfg.workers);
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
      for (int j = 0; j < cfg.workers; ++j) thread_done(*roots[k]);
    return false;
  }
  return true;
}

bool World::start_threads(Process& p, int nworkers, std::uint64_t ops) {
  for (int j = 0; j < nworkers; ++j) {
    std::string err;
    if (!ex_.spawn(fmt::format("p{}.t{}", p.pid, j), [this, &p, j, ops] { worker(p, j, ops); }, &err)) {
      setup_error_ = true;
      fail("setup", fmt::format("could not start thread {} of process {} (thread #{} of the run): {}", j, p.pid,
                                threads_started.load() + 1, err));
      // The threads never started are still counted: settle them.
      for (int k = j; k < nworkers; ++k) thread_done(p);
      return false;
    }
    threads_started.fetch_add(1, std::memory_order_relaxed);
  }
  return true;
}

Kern World::access(vm::Map& m, std::uint64_t va, bool write, std::uint64_t* v) {
  for (int i = 0; i < 1000; ++i) {
    if (vm::pmap_access(m.pmap, va, write, v)) return Kern::kSuccess;
    // As trap_pfault in 7.x's trap.c: a user write fault is VM_FAULT_DIRTY,
    // so the page is dirty before the store lands.  (Without it, a fresh
    // COW copy is clean until the store: pageout may cache and reuse it
    // while the backing copy is already collapsed away, losing the data.
    // The data oracle caught exactly that when this was kFaultNormal.)
    ChromeTrace* trace = ChromeTrace::current();
    const std::uint64_t t0 = trace != nullptr ? ChromeTrace::now_ns() : 0;
    const Kern r = vm::vm_fault(m, va, write ? vm::kProtRead | vm::kProtWrite : vm::kProtRead,
                                write ? vm::kFaultDirty : vm::kFaultNormal);
    if (trace != nullptr) trace->fault(t0, ChromeTrace::now_ns(), va, write, vm::kern_name(r));
    if (r != Kern::kSuccess) return r;
  }
  fail("liveness", fmt::format("address {:#x}: 1000 successful faults and the access still missed", va));
  return Kern::kFailure;
}

bool World::inherited_ok(const Process& p, std::size_t idx, std::uint64_t v) const {
  if (!p.inherited) return v == 0;
  for (const SeqRange& r : p.inherited[idx])
    if (tag_of(v) == r.tag && seq_of(v) >= r.lo && seq_of(v) <= r.hi) return true;
  return false;
}

void World::check_read(const Process& p, int region, std::uint64_t page, int slot, bool owner, std::uint64_t c1,
                       std::uint64_t v, std::uint64_t p2, std::uint64_t c2, const char* when) {
  const std::size_t idx = p.slot_index(region, page, slot);
  bool ok = false;
  if (tag_of(v) == p.pid && v != 0) {
    if (owner) {
      ok = v == c1;
    } else {
      const std::uint64_t lo = tag_of(c1) == p.pid ? seq_of(c1) : 1;
      const std::uint64_t hi = tag_of(c2) == p.pid ? seq_of(c2) : 0;
      ok = seq_of(v) >= lo && (seq_of(v) <= hi || v == p2);
    }
  } else {
    // Not written by this process: only before its first committed write.
    ok = c1 == 0 && inherited_ok(p, idx, v);
  }
  reads_checked.fetch_add(1, std::memory_order_relaxed);
  if (ok) return;
  std::string why;
  if (tag_of(v) != p.pid && v != 0 && c1 != 0)
    why = "a value from another process after this process wrote the slot";
  else if (tag_of(v) != p.pid && v != 0)
    why = "a value this process could not have inherited (COW isolation)";
  else if (v == 0)
    why = "zeros where a write was committed (lost write or stale page)";
  else if (seq_of(v) < seq_of(c1))
    why = "an older value than one already committed (lost write or stale page)";
  else
    why = "a value never committed";
  std::string lineage, may;
  for (const Process* a = p.parent; a != nullptr; a = a->parent) lineage += fmt::format(" <- {}", a->pid);
  if (p.inherited)
    for (const SeqRange& r : p.inherited[idx]) may += fmt::format(" pid {} seq {}..{};", r.tag, r.lo, r.hi);
  const std::uint64_t va = p.va[region] + page * vm.page_size() + 8 * static_cast<std::uint64_t>(slot);
  fail("data", fmt::format("{}: process {} {} page {} slot {} read {}; committed {} before and {} after the read,"
                           " pending {}: {} [lineage {}{}; inherited:{}]\n  now: {}",
                           when, p.pid, region_name(region), page, slot, describe_value(v), describe_value(c1),
                           describe_value(c2), describe_value(p2), why, p.pid, lineage, may.empty() ? " 0" : may,
                           vm::describe_address(*p.map, va)));
}

bool World::wired_refusal(Process& p, std::uint64_t page, std::uint64_t va, std::uint64_t g1) {
  // A loan write-protects the page (vm_page_cowsetup): once a send has lent
  // a wired page, the process's next store faults, and the fault is refused
  // until munlock, even after the loan ended (nothing restores write access
  // but a fault).  Only such a page, and only while its entry is
  // user-wired.  A send whose socow_setup is still being accounted
  // (lending) may have lent the page after it was wired: it counts as lent.
  //
  // A loan that began before the mlock is different: the mlock's fault
  // copies a lent page (seed L343-350; fix rename-skips-lent when it sits
  // in a backing object), so the wired page is not lent and is mapped
  // writable.  But if the loan was still on when the mlock began, a write
  // fault that found the lent page before the mlock wired it may copy it
  // afterwards: vm_page_cowfault's pmap_remove_all removes the wired
  // translation too, and the user-wired entry then refuses every write
  // fault (a read fault maps the copy back).  That refusal is 7.x's, and
  // its mark is a missing translation (or a writable one, if a read fault
  // has mapped the copy since); a read-only translation of a page that is
  // not lent-while-wired is not.
  Process::Wiring& w = p.wiring[page];
  const bool lent = w.lent.load() || w.lending.load() != 0;
  const bool wired_during_loan = w.wired_during_loan.load();
  bool user_wired = false;
  vm::Translation t;
  if (lent || wired_during_loan) {
    vm::map_lock_read(*p.map);
    const vm::MapEntry* e = p.map->lookup_entry(va);
    user_wired = e != nullptr && (e->eflags & vm::kEntryUserWired) != 0;
    vm::map_unlock_read(*p.map);
    t = vm::pmap_translation(p.map->pmap, va);
  }
  // Checked last: an mlock or munlock of this page since the access began,
  // even one that ran while this looked at the entry, explains the refusal.
  if (w.active.load() != 0 || w.gen.load() != g1) {
    segv_racing_mlock.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  if (!user_wired) return false;
  if (lent) {
    segv_lent_wired.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  if (wired_during_loan && (t.page == nullptr || (t.prot & vm::kProtWrite) != 0)) {
    segv_cowfault_unmapped.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  return false;
}

bool World::pager_error(Kern r) {
  // KERN_FAILURE from vm_fault is its pager-error return and nothing else
  // (seed L612-619: a read error frees the page, the fault fails, the
  // process gets SIGBUS); the pager fails only when --io-error-ppm injects
  // errors.
  if (r != Kern::kFailure || cfg.io_error_ppm == 0) return false;
  sigbus_pager_error.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool World::read_slot(Process& p, int region, std::uint64_t page, int slot, bool owner, const char* when,
                      Kern* result) {
  const std::size_t idx = p.slot_index(region, page, slot);
  const std::uint64_t va = p.va[region] + page * vm.page_size() + 8 * static_cast<std::uint64_t>(slot);
  const std::uint64_t c1 = p.committed[idx].load();
  const std::uint64_t g1 = region == kAnon ? p.wiring[page].gen.load() : 0;
  std::uint64_t v = 0;
  *result = access(*p.map, va, false, &v);
  const std::uint64_t p2 = p.pending[idx].load();
  const std::uint64_t c2 = p.committed[idx].load();
  // A read fault on a wired entry asks for the entry's full protection
  // when it retries (the seed sets fault_type = prot for wired entries
  // before `goto RetryFault`), so a read can meet the same refusal as a
  // write (see write_slot).
  if (*result == Kern::kProtectionFailure && region == kAnon && wired_refusal(p, page, va, g1)) {
    *result = Kern::kSuccess;
    return true;
  }
  if (pager_error(*result)) return true;  // SIGBUS: nothing read (*result says so)
  if (*result != Kern::kSuccess) return false;
  check_read(p, region, page, slot, owner, c1, v, p2, c2, when);
  return true;
}

int World::pick_region(Rng& rng) const {
  const std::uint64_t total = region_weights_[kAnon] + region_weights_[kScratch] + region_weights_[kChurn];
  std::uint64_t x = rng.below(total);
  for (int r = 0; r < kRegions; ++r) {
    if (x < region_weights_[r]) return r;
    x -= region_weights_[r];
  }
  return kAnon;
}

void World::op_read(Process& p, Rng& rng, int j) {
  const int region = pick_region(rng);
  const std::uint64_t page = rng.below(p.npages[region]);
  const int slot = static_cast<int>(rng.below(static_cast<std::uint64_t>(p.slots_per_page)));
  const std::uint64_t va = p.va[region] + page * vm.page_size() + 8 * static_cast<std::uint64_t>(slot);
  std::uint64_t v = 0;
  if (region == kChurn) {
    // The churn region comes and goes: unmapped is legitimate, and its
    // values may only come from this process's lineage (or be zeros).
    const Kern r = access(*p.map, va, false, &v);
    if (r == Kern::kInvalidAddress) {
      unmapped_churn.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (pager_error(r)) return;
    if (r != Kern::kSuccess) {
      fail("data", fmt::format("process {} churn page {} read failed: {}", p.pid, page, vm::kern_name(r)));
      return;
    }
    bool ok = v == 0;
    for (const Process* a = &p; a != nullptr && !ok; a = a->parent) ok = tag_of(v) == a->pid;
    if (!ok)
      fail("data", fmt::format("process {} churn page {} slot {} read {}: not from its lineage", p.pid, page, slot,
                               describe_value(v)));
    return;
  }
  Kern r = Kern::kSuccess;
  if (!read_slot(p, region, page, slot, slot == j, "read", &r))
    fail("data", fmt::format("process {} {} page {} read failed: {}\n  now: {}", p.pid, region_name(region), page,
                             vm::kern_name(r), vm::describe_address(*p.map, p.va[region] + page * vm.page_size())));
}

void World::op_write(Process& p, Rng& rng, int j, std::uint64_t& seq) {
  const int region = pick_region(rng);
  const std::uint64_t page = rng.below(p.npages[region]);
  write_slot(p, region, page, j, seq);
}

Kern World::write_slot(Process& p, int region, std::uint64_t page, int j, std::uint64_t& seq) {
  const std::uint64_t va = p.va[region] + page * vm.page_size() + 8 * static_cast<std::uint64_t>(j);
  std::uint64_t v = make_value(p.pid, ++seq);
  if (region != kChurn) p.pending[p.slot_index(region, page, j)].store(v);
  const std::uint64_t g1 = region == kAnon      ? p.wiring[page].gen.load()
                          : region == kScratch ? p.scratch_ro[page].gen.load()
                                               : 0;
  // A scratch page an mprotect made read-only before the store began, with
  // no mprotect back since, nor one running: the store must be refused.
  bool sure_ro = false;
  std::uint64_t restores = 0;
  if (region == kScratch) {
    const Process::ScratchRo& ro = p.scratch_ro[page];
    restores = ro.restores.load();
    sure_ro = ro.restoring.load() == 0 && ro.sure_at.load() == restores && !ro.inherited.load();
  }
  const Kern r = access(*p.map, va, true, &v);
  if (r == Kern::kSuccess && sure_ro && p.scratch_ro[page].restores.load() == restores) {
    fail("data", fmt::format("process {} scratch page {}: a store succeeded through a mapping an mprotect made"
                             " read-only before it began (none back since)\n  now: {}",
                             p.pid, page, vm::describe_address(*p.map, va)));
    return r;
  }
  // 7.x's vm_map_lookup refuses a write fault on a user-wired COW entry
  // (MAP_ENTRY_USER_WIRED and MAP_ENTRY_COW): once mlock has copied the
  // pages they are mapped writable and never fault again, but a write fault
  // that began while the mlock ran and retries after it finished meets the
  // refusal, and so does a write to a wired page lent to a send.  The
  // writer gets SIGSEGV.  The harness found both in the seed's protocol;
  // they are counted, not failed (the model follows 7.x).
  const bool refused = r == Kern::kProtectionFailure && region == kAnon && wired_refusal(p, page, va, g1);
  if (region == kChurn) {
    if (r == Kern::kInvalidAddress) unmapped_churn.fetch_add(1, std::memory_order_relaxed);
    else if (r != Kern::kSuccess && !pager_error(r))
      fail("data", fmt::format("process {} churn page {} write failed: {}", p.pid, page, vm::kern_name(r)));
    return r;
  }
  if (r == Kern::kSuccess) {
    p.committed[p.slot_index(region, page, j)].store(v);
    writes_committed.fetch_add(1, std::memory_order_relaxed);
  } else if (region == kScratch && r == Kern::kProtectionFailure && scratch_read_only(p, page, g1)) {
    segv_on_scratch.fetch_add(1, std::memory_order_relaxed);  // mprotect'ed meanwhile: SIGSEGV
  } else if (refused) {
    // counted by wired_refusal
  } else if (pager_error(r)) {
    // SIGBUS: the store did not happen (pending says it may have)
  } else {
    fail("data", fmt::format("process {} {} page {} write failed: {}\n  now: {}", p.pid, region_name(region), page,
                             vm::kern_name(r), vm::describe_address(*p.map, va)));
  }
  return r;
}

void World::op_send(Process& p, Rng& rng, int j, std::uint64_t& seq) {
  // Write this thread's slot of a page, then send the page zero-copy: 7.0's
  // socow_setup lends it (vm_page_cowsetup: write-protected, wired; the
  // page queues only, whatever the page is doing) while the send takes a
  // pager I/O's time, and socow_iodone ends the loan.  Other threads keep
  // writing their slots of the page: each such write must fault, copy the
  // page for the process (the seed's L343-350 retry) and leave the lent
  // bytes alone.  The oracle: the page the socket holds is byte for byte
  // what was lent.  Loans vary: one in three is of a page as it is (read,
  // not written first: clean if it came back from swap), and a send takes
  // one to four pager I/Os' time.
  const bool as_it_is = rng.below(3) == 0;
  const std::uint64_t page = rng.below(p.npages[kAnon]);
  if (as_it_is) {
    Kern rr = Kern::kSuccess;
    if (!read_slot(p, kAnon, page, j, false, "read before a send", &rr) || rr != Kern::kSuccess) return;
  } else if (write_slot(p, kAnon, page, j, seq) != Kern::kSuccess) {
    return;
  }
  const std::uint64_t ios = 1 + rng.below(4);
  const std::uint64_t va = p.va[kAnon] + page * vm.page_size();
  // The wired-refusal excuse: a write refused because the page is lent and
  // its entry user-wired (checked before and after the loan; an mlock or
  // munlock in progress counts).  From before socow_setup until that check
  // after it, `lending` stands for it: a store refused meanwhile may have
  // met a page lent after it was wired.  Once the check found the page
  // neither wired nor being wired, the loan preceded any wiring, and an
  // mlock must copy a lent page (seed L343-350), never keep it; `loans`
  // tells an mlock that begins while the loan is on (see wired_refusal).
  const auto note_wired = [&] {
    vm::map_lock_read(*p.map);
    const vm::MapEntry* e = p.map->lookup_entry(va);
    if ((e != nullptr && (e->eflags & vm::kEntryUserWired) != 0) || p.wiring[page].active.load() != 0)
      p.wiring[page].lent.store(true);
    vm::map_unlock_read(*p.map);
  };
  p.wiring[page].loans.fetch_add(1);
  p.wiring[page].lending.fetch_add(1);
  note_wired();
  vm::Page* m = vm::socow_setup(*p.map, va);
  if (m != nullptr) note_wired();
  p.wiring[page].lending.fetch_sub(1);
  if (m == nullptr) {
    p.wiring[page].loans.fetch_sub(1);
    loans_skipped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Write-protected everywhere (a shootdown waited for stores in flight),
  // and no kernel path writes a mapped anonymous page: the bytes are stable.
  std::vector<std::byte> lent(m->data, m->data + vm.page_size());
  loans.fetch_add(1, std::memory_order_relaxed);
  ex_.pause_us(cfg.io_latency_us * static_cast<std::uint32_t>(ios));
  const bool intact = std::memcmp(lent.data(), m->data, lent.size()) == 0;
  vm::socow_iodone(m);
  p.wiring[page].loans.fetch_sub(1);
  if (!intact)
    fail("loan", fmt::format("process {} anon page {}: the page lent to a send changed while lent (a write"
                             " went to the lent page instead of a copy)", p.pid, page));
}

void World::op_dev_read(Process& p, Rng& rng) {
  const std::uint64_t off = rng.below(std::uint64_t{cfg.device_pages} * vm.page_size() / 8) * 8;
  std::uint64_t v = 0;
  const Kern r = access(*p.map, p.device_va + off, false, &v);
  device_reads_checked.fetch_add(1, std::memory_order_relaxed);
  if (pager_error(r)) return;
  if (r != Kern::kSuccess) {
    fail("device", fmt::format("process {} device offset {}: {}", p.pid, off, vm::kern_name(r)));
    return;
  }
  if (v != device_word(off))
    fail("device", fmt::format("process {} device offset {} read {:#x}, expected {:#x}", p.pid, off, v,
                               device_word(off)));
}

bool World::file_value_ok(const FileAccess& a) const {
  const std::uint64_t off = a.off, v = a.v;
  if (v == file_expected(off, a.s1) || v == file_expected(off, a.s2)) return true;
  // The newest generation the truncator may have begun to store by t2.
  const auto gen_hi = static_cast<std::uint32_t>((a.t2 + kTruncSteps - 1) / kTruncSteps);
  // v may be a generation from lo to gen_hi (or zeros): one the word held
  // while an overlapping step changed it, or a racing store's.
  const auto among = [&](std::uint32_t lo) {
    if (v == 0) return true;
    if (gen_hi - lo > 64) return true;  // too many generations to tell
    for (std::uint32_t g = lo; g <= gen_hi; ++g)
      if (v == file_word(off, g)) return true;
    return false;
  };
  if (!a.quiet()) {
    // A truncation step overlapped the read: a shrink cutting at or below
    // off zeroes the word before its state says so; a store of the new
    // generation lands before its state says so.
    const bool zeroable = some_truncation(a.t1, a.t2, [&](std::uint64_t k) { return cut_of(k) <= off; });
    if (v == 0 ? zeroable : among(a.s1 >> 1)) return true;
  }
  const std::uint64_t taint = ftaint_[off / 8].load(std::memory_order_acquire);
  return taint != 0 && among(Taint::unpack(taint).gen);
}

World::FileAccess World::read_file_word(vm::Map& m, std::uint64_t va, std::uint64_t off) {
  FileAccess a;
  a.off = off;
  a.t1 = trunc_seq_.load(std::memory_order_acquire);
  a.s1 = fstate_[off / 8].load(std::memory_order_acquire);
  a.r = access(m, va, false, &a.v);
  a.s2 = fstate_[off / 8].load(std::memory_order_acquire);
  a.t2 = trunc_seq_.load(std::memory_order_acquire);
  a.may_fail = past_eof(off, a.t1, a.t2, &a.must_fail, &a.left_wired);
  return a;
}

World::FileAccess World::store_file_word(vm::Map& m, std::uint64_t va, std::uint64_t off) {
  FileAccess a;
  a.off = off;
  a.t1 = trunc_seq_.load(std::memory_order_acquire);
  a.s1 = fstate_[off / 8].load(std::memory_order_acquire);
  a.v = file_expected(off, a.s1);
  a.r = access(m, va, true, &a.v);
  a.t2 = trunc_seq_.load(std::memory_order_acquire);
  a.may_fail = past_eof(off, a.t1, a.t2, &a.must_fail, &a.left_wired);
  return a;
}

std::string World::stale_reason(std::uint32_t s) {
  return (s & 1) != 0 ? "past a truncation: stale data survived it"
                      : "generation " + std::to_string(s >> 1) + " was stored there: a lost write-back, or stale data";
}

void World::op_file_read(Process& p, Rng& rng) {
  const std::uint64_t off = rng.below(file_size_ / 8) * 8;
  const FileProt prot = file_prot(p, off / vm.page_size());
  check_file_read(p, read_file_word(*p.map, p.file_va + off, off), prot);
}

World::FileProt World::file_prot(const Process& p, std::uint64_t page) {
  // A page with an mprotect or mlock in progress counts as changed whatever
  // the generation does.
  return FileProt{gen_at(p.file_ro[page]), gen_at(p.file_mlock[page]), gen_at(p.file_gone[page])};
}

bool World::unmapped_meanwhile(const Process& p, std::uint64_t page, const FileProt& before) const {
  return p.file_gone[page].inherited.load() || moved(p.file_gone[page], before.gone_gen);
}

bool World::retried_wired_refusal(const Process& p, std::uint64_t page, const FileProt& before) {
  return moved(p.file_ro[page], before.ro_gen) && moved(p.file_mlock[page], before.mlock_gen);
}

void World::check_file_read(Process& p, const FileAccess& a, const FileProt& prot) {
  const std::uint64_t off = a.off;
  file_reads_checked.fetch_add(1, std::memory_order_relaxed);
  if (a.r != Kern::kSuccess) {
    if (a.r == Kern::kProtectionFailure && a.may_fail) {
      (a.quiet() ? sigbus_past_eof : sigbus_in_truncation).fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (a.r == Kern::kProtectionFailure && retried_wired_refusal(p, off / vm.page_size(), prot)) {
      file_reads_refused_wired.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (a.r == Kern::kInvalidAddress && unmapped_meanwhile(p, off / vm.page_size(), prot)) {
      file_access_unmapped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (pager_error(a.r)) return;
    fail("file", fmt::format("process {} file offset {}: {} inside the file (truncation steps {}..{})", p.pid,
                             off, vm::kern_name(a.r), a.t1, a.t2));
    return;
  }
  if (a.must_fail) {
    fail("file", fmt::format("process {} file offset {} read {:#x} past the end of the file (cut at {}): no SIGBUS",
                             p.pid, off, a.v, cut_of(a.t1 / kTruncSteps)));
    return;
  }
  // Zeros, or a racing store's value (file_value_ok judges it as any read).
  if (a.left_wired) past_eof_left_wired.fetch_add(1, std::memory_order_relaxed);
  if (file_value_ok(a)) return;
  fail("file", fmt::format("process {} file offset {} read {:#x}, expected {:#x} ({}; truncation steps {}..{})",
                           p.pid, off, a.v, file_expected(off, a.s2), stale_reason(a.s2), a.t1, a.t2));
}

void World::op_file_write(Process& p, Rng& rng) {
  // The store writes what the word holds by the oracle's record, through
  // the shared mapping, so it dirties the page (the vnode pager launders
  // it, truncation meets it dirty).  A store that no truncation step
  // overlapped leaves the word as it was; one that overlapped a step may
  // land before or after the step's change, so the word is marked as
  // possibly holding the store's value (ftaint_) until a later step
  // rewrites it.
  const std::uint64_t off = rng.below(file_size_ / 8) * 8;
  const FileProt prot = file_prot(p, off / vm.page_size());
  check_file_store(p, store_file_word(*p.map, p.file_va + off, off), prot);
}

void World::check_file_store(Process& p, const FileAccess& a, const FileProt& prot) {
  const std::uint64_t off = a.off;
  if (a.r == Kern::kSuccess) {
    if (a.must_fail) {
      fail("file", fmt::format("process {} file offset {}: a store past the end of the file (cut at {}): no SIGBUS",
                               p.pid, off, cut_of(a.t1 / kTruncSteps)));
      return;
    }
    // It stored what the record says, zeros past the cut.
    if (a.left_wired) past_eof_left_wired.fetch_add(1, std::memory_order_relaxed);
    if (!a.quiet()) {
      file_writes_racing.fetch_add(1, std::memory_order_relaxed);
      // Combined with a taint already there: the older generation and the
      // later finish of the two.
      const Taint mine{a.s1 >> 1, a.t2};
      std::uint64_t old = ftaint_[off / 8].load();
      std::uint64_t want = 0;
      do {
        Taint t = mine;
        if (old != 0) {
          const Taint o = Taint::unpack(old);
          t = Taint{std::min(o.gen, mine.gen), std::max(o.done, mine.done)};
        }
        want = t.pack();
      } while (!ftaint_[off / 8].compare_exchange_weak(old, want));
    }
    file_writes.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (a.r == Kern::kProtectionFailure && a.may_fail) {
    (a.quiet() ? sigbus_past_eof : sigbus_in_truncation).fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // (A generation of ~0, an mprotect in progress when the store began,
  // never matches: excused.)
  if (a.r == Kern::kProtectionFailure && read_only(p.file_ro.get(), off / vm.page_size(), prot.ro_gen)) {
    segv_on_file.fetch_add(1, std::memory_order_relaxed);  // mprotect'ed read-only meanwhile: SIGSEGV
    return;
  }
  if (a.r == Kern::kInvalidAddress && unmapped_meanwhile(p, off / vm.page_size(), prot)) {
    file_access_unmapped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (pager_error(a.r)) return;
  fail("file", fmt::format("process {} file offset {}: write {} inside the file (truncation steps {}..{})", p.pid,
                           off, vm::kern_name(a.r), a.t1, a.t2));
}

// A private (copy-on-write) mapping of the file (stores to its even pages
// only).  A page no store of this
// process or of its ancestors before its fork has copied reads the file
// itself, so a read of it is judged as a read of the shared mapping
// (file_value_ok, past_eof); past the end of the short file it must fail,
// the fault reaching the vnode object beyond its size (seed L423-427).  A
// copied page keeps its copy: it reads, past the end of the file too, what
// this process stored there, or else the file as it was when the copy was
// made (a generation of the word, or zeros) or an ancestor's store.
void World::op_file_private(Process& p, Rng& rng, int j, std::uint64_t& seq) {
  const std::uint64_t ps = vm.page_size(), words = file_size_ / 8, per_page = ps / 8;
  const auto owner = static_cast<std::uint64_t>(p.nworkers);
  // Stores go to even pages only, so the odd ones are never copied and
  // their reads are judged exactly; of a page's words, thread j stores to
  // those whose index in the page is j modulo the process's threads.
  const bool write = rng.below(2) == 0 && per_page >= owner;
  std::uint64_t w = rng.below(words);
  if (write) {
    const std::uint64_t pg = (w / per_page) & ~std::uint64_t{1};
    std::uint64_t in = w % per_page;
    in = in - in % owner + static_cast<std::uint64_t>(j);
    if (in >= per_page) in -= owner;
    w = pg * per_page + in;
  }
  const std::uint64_t off = w * 8, page = off / ps, va = p.fpriv_va + off;
  // munmap-private's generation first: the records it clears are read after.
  const std::uint64_t gone_gen = gen_at(p.fpriv_gone[page]);
  if (write) {
    // t1 first: a copy another thread makes before the flags are read is
    // made while the file is as t1 found it (a fault holds the vnode lock,
    // a truncation step takes it exclusive), so `must` below cannot meet a
    // copy the flags do not show.
    const std::uint64_t t1 = trunc_seq_.load(std::memory_order_acquire);
    const bool sure = p.fpriv_sure[page].load(), maybe = p.fpriv_maybe[page].load();
    const std::uint64_t wire_gen = p.fpriv_wire[page].gen.load(), ro_gen = gen_at(p.fpriv_ro[page]);
    const PrivateInFlight in_flight(p, page, page + 1);
    const std::uint64_t v = make_value(p.pid, ++seq);
    p.fpriv_pending[w].store(v);
    std::uint64_t x = v;
    const Kern r = access(*p.map, va, true, &x);
    const std::uint64_t t2 = trunc_seq_.load(std::memory_order_acquire);
    bool must = false;
    const bool may = past_eof(off, t1, t2, &must);
    // An munmap of the page began during the store (or before, in a parent
    // this child was forked from meanwhile): the store may have landed in
    // the old mapping, whose copy the munmap dropped, or in the new one.
    // It is not committed, and the page is murky until its next munmap.
    const bool unmapped = moved(p.fpriv_gone[page], gone_gen) || p.fpriv_gone[page].inherited.load();
    if (unmapped) {
      p.fpriv_murky[page].store(true);
      p.fpriv_pending[w].store(0);
      if (r == Kern::kSuccess || r == Kern::kInvalidAddress || r == Kern::kProtectionFailure || pager_error(r)) {
        fpriv_unmapped.fetch_add(1, std::memory_order_relaxed);
        return;
      }
    } else if (r == Kern::kSuccess) {
      if (must && !maybe) {
        fail("file-private", fmt::format("process {} private file offset {}: a store past the end of the file (cut at"
                                         " {}), its page never copied: no SIGBUS",
                                         p.pid, off, cut_of(t1 / kTruncSteps)));
        return;
      }
      p.fpriv_committed[w].store(v);
      p.fpriv_pending[w].store(0);
      p.fpriv_sure[page].store(true);
      fpriv_writes.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    p.fpriv_pending[w].store(0);
    if (r == Kern::kProtectionFailure && may && !sure) {
      fpriv_sigbus.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    // The page read-only: an mprotect-private of it meanwhile, one a fork
    // left the child, or one left for good by a refused mprotect back.
    if (r == Kern::kProtectionFailure && read_only(p.fpriv_ro.get(), page, ro_gen)) {
      fpriv_refused_ro.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    // The entry user-wired by an mlock of the page meanwhile (mlock-private).
    if (r == Kern::kProtectionFailure && read_only(p.fpriv_wire.get(), page, wire_gen)) {
      fpriv_refused_wired.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (pager_error(r)) return;
    fail("file-private", fmt::format("process {} private file offset {}: store {} ({}; truncation steps {}..{})\n"
                                     "  at it: {}",
                                     p.pid, off, vm::kern_name(r), sure ? "its page is copied" : "inside the file",
                                     t1, t2, vm::describe_address(*p.map, va)));
    return;
  }
  const bool maybe1 = p.fpriv_maybe[page].load(), sure = p.fpriv_sure[page].load();
  const std::uint64_t c1 = p.fpriv_committed[w].load(), wire_gen = p.fpriv_wire[page].gen.load();
  const FileAccess a = read_file_word(*p.map, va, off);
  // Pending before committed, as the owner clears pending after it commits.
  const std::uint64_t pend = p.fpriv_pending[w].load();
  const std::uint64_t c2 = p.fpriv_committed[w].load();
  // An munmap of the page during the read (or one a fork left this child),
  // or a store that raced one earlier: the page holds a file generation or
  // some store of this process or its ancestors, and the read may fail.
  const bool murky = moved(p.fpriv_gone[page], gone_gen) || p.fpriv_gone[page].inherited.load() ||
                     p.fpriv_murky[page].load();
  // A page the file may have had left wired past its end: the fault there
  // (fix fault-keeps-wired) goes on below it and zero-fills a page in the
  // shadow, which reads zeros until pageout frees it (clean) and the file
  // shows through again (FileWiring::ever_left).  Stores in flight before
  // the mark: an munmap may have cleared it meanwhile (PrivateInFlight).
  const bool copied = maybe1 || p.fpriv_storing[page].load() != 0 || p.fpriv_maybe[page].load() ||
                      fwiring_[page].ever_left.load() || murky;
  if (a.r != Kern::kSuccess) {
    if (a.r == Kern::kProtectionFailure && a.may_fail && !sure) {
      fpriv_sigbus.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if ((a.r == Kern::kInvalidAddress || a.r == Kern::kProtectionFailure) &&
        (moved(p.fpriv_gone[page], gone_gen) || p.fpriv_gone[page].inherited.load())) {
      fpriv_unmapped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    // A read retried while an mlock had the entry user-wired: the seed's
    // fault_type, made the entry's read/write at L309-310, outlives the
    // retry, and the lookup for write of a user-wired copy-on-write entry
    // is refused (mlock-private).
    if (a.r == Kern::kProtectionFailure && read_only(p.fpriv_wire.get(), page, wire_gen)) {
      fpriv_refused_wired.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (pager_error(a.r)) return;
    fail("file-private", fmt::format("process {} private file offset {}: read {} ({}; truncation steps {}..{})\n"
                                     "  at it: {}",
                                     p.pid, off, vm::kern_name(a.r), sure ? "its page is copied" : "inside the file",
                                     a.t1, a.t2, vm::describe_address(*p.map, va)));
    return;
  }
  if (!copied) {
    fpriv_reads_exact.fetch_add(1, std::memory_order_relaxed);
    if (p.fpriv_dropped[page].load()) fpriv_reads_reset.fetch_add(1, std::memory_order_relaxed);
    if (a.must_fail) {
      fail("file-private", fmt::format("process {} private file offset {} read {:#x} past the end of the file (cut at"
                                       " {}), its page never copied: no SIGBUS",
                                       p.pid, off, a.v, cut_of(a.t1 / kTruncSteps)));
      return;
    }
    if (!file_value_ok(a))
      fail("file-private", fmt::format("process {} private file offset {} (page never copied) read {:#x}, expected"
                                       " {:#x} ({}; truncation steps {}..{})",
                                       p.pid, off, a.v, file_expected(off, a.s2), stale_reason(a.s2), a.t1, a.t2));
    return;
  }
  fpriv_reads_loose.fetch_add(1, std::memory_order_relaxed);
  // A generation of the word the file held when the page was copied.  (A
  // file word is random: its top bits can read as a pid, so it is tried
  // before the tags are judged; seed 480 of private-file --ops 300 read
  // one tagged as its own process.)
  const auto gen_hi = static_cast<std::uint32_t>((a.t2 + kTruncSteps - 1) / kTruncSteps);
  const auto generation = [&] {
    if (gen_hi > 4096) return true;  // too many to try
    for (std::uint32_t g = 0; g <= gen_hi; ++g)
      if (a.v == file_word(off, g)) return true;
    return false;
  };
  if ((c1 == 0 || murky) && (a.v == 0 || generation())) return;
  // One thread stores to the word, so its values' seqs grow: a store of
  // this process's must be one committed when the read began (c1) or made
  // since (up to the newest committed or pending after it).  On a murky
  // page, any store of this process's: one that raced an munmap is never
  // committed.
  if (a.v != 0 && tag_of(a.v) == p.pid) {
    if (murky) return;
    if (seq_of(a.v) >= seq_of(c1) && seq_of(a.v) <= std::max(seq_of(c2), seq_of(pend))) return;
    fail("file-private", fmt::format("process {} private file offset {} read {}: its stores there were {} when the"
                                     " read began, {} (pending {}) after it",
                                     p.pid, off, describe_value(a.v), describe_value(c1), describe_value(c2),
                                     describe_value(pend)));
    return;
  }
  if (c1 != 0) {  // it had stored there: exactly its store
    fail("file-private", fmt::format("process {} private file offset {} read {}, but it had stored {} there", p.pid,
                                     off, describe_value(a.v), describe_value(c1)));
    return;
  }
  if (p.parent != nullptr && tag_of(a.v) == p.parent->pid) {
    // The parent's store: one made before the fork ended, not after.
    // (Murky: a store of the parent's that raced an munmap before the fork
    // is not committed, so the inherited bound may miss it.)
    const std::uint64_t inh = p.fpriv_inherited ? p.fpriv_inherited[w] : 0;
    if ((inh != 0 && seq_of(a.v) <= seq_of(inh)) || murky) return;
    fail("file-private", fmt::format("process {} private file offset {} read {}, a store its parent made after the"
                                     " fork (the newest it may see: {}): copy-on-write isolation",
                                     p.pid, off, describe_value(a.v), describe_value(inh)));
    return;
  }
  for (const Process* anc = p.parent; anc != nullptr; anc = anc->parent)
    if (tag_of(a.v) == anc->pid) return;
  fail("file-private", fmt::format("process {} private file offset {} read {}: neither a generation of the file, nor"
                                   " a store of this process or its ancestors",
                                   p.pid, off, describe_value(a.v)));
}

// mlock of a run of one to four pages of the private file mapping, then
// munlock.  The entry is read/write, so its wiring faults look up for
// write (a wired entry's fault takes its protection, L309-310) and copy
// every page into the process's shadow: from then on the pages are
// copies (fpriv_sure, dirty: fix cow-copy-dirty), holding what the file
// held then, and the vnode object's pages are not wired.  While the entry
// is user-wired a store that faults there is refused (fpriv_wire;
// vm_map_lookup), and a wiring fault past the end of the short file fails
// (seed L423-427), unless a page the cut left wired lies below (then it
// zero-fills the copy).
// With mprotect-private in the mix the entry may be read-only meanwhile:
// its wiring faults then take read (L309-310), copy nothing and wire the
// file's own pages, which a cut may leave wired past the end as
// mlock-file's (FileWiring); a fault retried after the entry went
// read-only looks up for write, fails, and takes the user-wire override,
// which takes write out of the maximum protection (L249-271), or fails
// against one already without it.
void World::op_wire_private(Process& p, Rng& rng) {
  const std::uint64_t ps = vm.page_size();
  const auto [lo, npages] = short_run(rng, file_size_ / ps);
  const std::uint64_t hi = lo + npages;
  const std::uint64_t start = p.fpriv_va + lo * ps, end = p.fpriv_va + hi * ps;
  struct Unbracket {
    World& w;
    Process& p;
    std::uint64_t lo, hi;
    bool file_pages;
    std::vector<std::uint64_t> loan_gen, ro_gen;
    ~Unbracket() {
      for (std::uint64_t i = lo; i < hi; ++i) {
        if (moved(p.fpriv_ro[i], ro_gen[i - lo])) p.fpriv_max_write_lost[i].store(true);
        if (file_pages) {
          FileWiring& f = w.fwiring_[i];
          if (f.loans.load() != 0 || f.loan_gen.load() != loan_gen[i - lo]) f.mark_left(true);
        }
      }
      end_run(p.fpriv_wire.get(), lo, hi, false);
      if (file_pages) w.bracket_file_wiring(lo, hi - lo, -1);
    }
  };
  const bool file_pages = cfg.mix[static_cast<std::size_t>(Op::kProtectPrivate)] != 0;
  std::vector<std::uint64_t> gone_gen;
  for (std::uint64_t i = lo; i < hi; ++i) gone_gen.push_back(gen_at(p.fpriv_gone[i]));
  const PrivateInFlight in_flight(p, lo, hi);
  if (file_pages) bracket_file_wiring(lo, npages, +1);
  Unbracket unbracket{*this, p, lo, hi, file_pages, {}, {}};
  for (std::uint64_t i = lo; i < hi; ++i) {
    unbracket.loan_gen.push_back(fwiring_[i].loans.load() != 0 ? kBusy : fwiring_[i].loan_gen.load());
    unbracket.ro_gen.push_back(gen_at(p.fpriv_ro[i]));
  }
  begin_run(p.fpriv_wire.get(), lo, hi);
  // munmap-private during the mlock (it waits for PrivateInFlight only if
  // it began after this), or before it in a parent this child was forked
  // from meanwhile: the run may be a hole, or mapped again, not wired.
  const auto unmapped = [&] {
    bool any = false;
    for (std::uint64_t i = lo; i < hi; ++i)
      any = any || moved(p.fpriv_gone[i], gone_gen[i - lo]) || p.fpriv_gone[i].inherited.load();
    return any;
  };
  const auto read_only_meanwhile = [&](std::uint64_t i) {
    return moved(p.fpriv_ro[i], unbracket.ro_gen[i - lo]) || p.fpriv_ro[i].inherited.load();
  };
  const std::uint64_t t1 = trunc_seq_.load(std::memory_order_acquire);
  const Kern r = vm::map_wire(*p.map, start, end, true);
  const std::uint64_t t2 = trunc_seq_.load(std::memory_order_acquire);
  if (r == Kern::kSuccess) {
    mlocks_of_private.fetch_add(1, std::memory_order_relaxed);
    // Not a page the file may have had left wired past its end: there the
    // wiring fault zero-fills the copy (L646-672), clean (a wire fault does
    // not dirty, L864-867), and once unwired pageout frees a clean page of
    // an anonymous object its pager does not have (7.0 vm_page_cache), so
    // the file shows through again, and past its end a fault fails.  (The
    // mark is set at the cut, before any fault can zero-fill for it.)  Nor
    // one read-only meanwhile (no copy), nor one unmapped meanwhile.
    const bool gone = unmapped();
    for (std::uint64_t i = lo; i < hi; ++i) {
      if (gone) p.fpriv_murky[i].store(true);
      if (!fwiring_[i].ever_left.load() && !read_only_meanwhile(i) && !gone) p.fpriv_sure[i].store(true);
    }
    locking::schedule_point(locking::Point::kUser, &p);
    if (vm::map_unwire(*p.map, start, end, true) != Kern::kSuccess && !unmapped())
      fail("ops", fmt::format("process {}: munlock of private file pages failed", p.pid));
    return;
  }
  bool must = false;
  const bool may = past_eof((hi - 1) * ps, t1, t2, &must);
  bool ro = false;
  for (std::uint64_t i = lo; i < hi; ++i) ro = ro || read_only_meanwhile(i);
  if (r == Kern::kProtectionFailure && may) {
    mlock_private_past_eof.fetch_add(1, std::memory_order_relaxed);
  } else if ((r == Kern::kInvalidAddress || r == Kern::kProtectionFailure) && unmapped()) {
    fpriv_unmapped.fetch_add(1, std::memory_order_relaxed);
  } else if (r == Kern::kProtectionFailure && ro) {
    mlock_private_refused.fetch_add(1, std::memory_order_relaxed);
  } else if (!pager_error(r)) {
    fail("ops", fmt::format("process {}: mlock of private file pages {}..{} failed: {} (truncation steps {}..{})\n"
                            "  at its start: {}",
                            p.pid, lo, hi - 1, vm::kern_name(r), t1, t2, vm::describe_address(*p.map, start)));
  }
}

// mprotect a run of the private file mapping read-only, then back: the
// whole mapping one time in two, else pages [lo, hi).  As op_protect_file
// for the shared one: the entries are clipped there, maybe ones an mlock
// has wired; stores meeting the read-only pages fail (SIGSEGV), excused by
// fpriv_ro; a fork meanwhile may leave the child's mapping read-only for
// good; an mprotect back is refused where an mlock's retried fault took
// write out of the maximum protection (L249-271), and then the run stays
// read-only.
void World::op_protect_private(Process& p, Rng& rng) {
  const std::uint64_t ps = vm.page_size();
  const auto [lo, hi] = some_run(rng, file_size_ / ps);
  const std::uint64_t start = p.fpriv_va + lo * ps, end = p.fpriv_va + hi * ps;
  std::vector<std::uint64_t> mlock_gen, gone_gen;
  for (std::uint64_t i = lo; i < hi; ++i) {
    mlock_gen.push_back(gen_at(p.fpriv_wire[i]));
    gone_gen.push_back(gen_at(p.fpriv_gone[i]));
  }
  begin_run(p.fpriv_ro.get(), lo, hi);
  if (vm::map_protect(*p.map, start, end, vm::kProtRead) != Kern::kSuccess)
    fail("ops", fmt::format("process {}: mprotect read-only of the private file mapping failed", p.pid));
  locking::schedule_point(locking::Point::kUser, &p);
  locking::schedule_point(locking::Point::kUser, &p);
  const Kern r = vm::map_protect(*p.map, start, end, vm::kProtRead | vm::kProtWrite);
  mprotects_of_private.fetch_add(1, std::memory_order_relaxed);
  bool lost = false;
  for (std::uint64_t i = lo; i < hi; ++i) {
    if (moved(p.fpriv_wire[i], mlock_gen[i - lo])) p.fpriv_max_write_lost[i].store(true);
    // (An entry munmap-private replaced meanwhile has its maximum whole
    // again, but the mprotect may have met the old one.)
    lost = lost || p.fpriv_max_write_lost[i].load() || moved(p.fpriv_gone[i], gone_gen[i - lo]);
  }
  if (r != Kern::kSuccess) {
    // The range stays read-only, and so does the record.
    if (r == Kern::kProtectionFailure && lost)
      mprotect_private_refused.fetch_add(1, std::memory_order_relaxed);
    else
      fail("ops", fmt::format("process {}: mprotect read/write of the private file mapping failed: {}\n"
                              "  at its start: {}",
                              p.pid, vm::kern_name(r), vm::describe_address(*p.map, start)));
    return;
  }
  end_run(p.fpriv_ro.get(), lo, hi, true);
}

// munmap a run of the private file mapping, then map the file privately
// there again (the vnode object at the run's offset, copy-on-write): the
// entries are clipped, wired ones unwired first, the translations go, and
// the process's copies of the run's pages with them (vm_map_entry_delete
// removes them from a one-mapping shadow; a shadow the process shares with
// a child since a fork keeps them, but the new entry does not see them).
// From then on the run reads the file again.  One at a time per process.
// The oracle's records of the run are cleared first, once the stores in
// flight that began before this are done (PrivateInFlight): those landed
// in the old mapping.  Stores that begin after may land in either mapping,
// or meet the hole (KERN_INVALID_ADDRESS), or the new mapping past the end
// of the short file (SIGBUS): fpriv_gone excuses them and leaves the page
// murky.
void World::op_unmap_private(Process& p, Rng& rng) {
  if (p.unmapping_private.exchange(true)) {
    unmap_private_skipped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const std::uint64_t ps = vm.page_size();
  const auto [lo, hi] = some_run(rng, file_size_ / ps);
  begin_run(p.fpriv_gone.get(), lo, hi);
  for (std::uint64_t i = lo; i < hi; ++i)
    while (p.fpriv_storing[i].load() != 0) ex_.pause_us(20);
  for (std::uint64_t i = lo; i < hi; ++i) {
    for (std::uint64_t w = i * ps / 8; w < (i + 1) * ps / 8; ++w) p.fpriv_committed[w].store(0);
    p.fpriv_dropped[i].store(p.fpriv_maybe[i].load());
    p.fpriv_maybe[i].store(false);
    p.fpriv_sure[i].store(false);
    p.fpriv_murky[i].store(false);
  }
  std::uint64_t addr = p.fpriv_va + lo * ps;
  const std::uint64_t len = (hi - lo) * ps;
  vm::map_munmap(*p.map, addr, addr + len);
  locking::schedule_point(locking::Point::kUser, &p);
  vm::Object* pobj = vm::vnode_pager_alloc(*file_);  // a reference for the mapping
  const Kern r = vm::map_mmap(*p.map, &addr, len, pobj, lo, vm::kProtRead | vm::kProtWrite, vm::kProtAll,
                              vm::kEntryCow | vm::kEntryNeedsCopy, vm::Inherit::kCopy);
  if (r != Kern::kSuccess) {
    vm::object_deallocate(pobj);
    fail("ops", fmt::format("process {}: private mmap of the file at pages {}..{} again failed: {}", p.pid, lo, hi - 1,
                            vm::kern_name(r)));
  } else {
    munmaps_of_private.fetch_add(1, std::memory_order_relaxed);
    // A new entry: read/write, with its maximum protection whole again.
    for (std::uint64_t i = lo; i < hi; ++i) {
      p.fpriv_ro[i].inherited.store(false);
      p.fpriv_max_write_lost[i].store(false);
    }
    end_run(p.fpriv_gone.get(), lo, hi, true);  // mapped again, whatever a fork left
  }
  p.unmapping_private.store(false);
}

void World::op_fork(Process& p, Rng& rng) {
  (void)rng;
  // Children fork too, so without a budget a fork storm never dies out.
  if (live_processes_.load() >= cfg.max_live_processes || forks_begun_.fetch_add(1) >= static_cast<std::uint64_t>(cfg.max_forks)) {
    forks_skipped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // The child's snapshot is taken while the parent's other threads write:
  // for each slot, what the parent had committed before the fork began and
  // after it ended bounds what the child may see.
  std::vector<std::uint64_t> before(p.nslots);
  for (std::size_t i = 0; i < p.nslots; ++i) before[i] = p.committed[i].load();
  const std::size_t fpages = p.fpriv_sure ? file_size_ / vm.page_size() : 0;
  std::vector<bool> sure_before(fpages);
  for (std::size_t i = 0; i < fpages; ++i) sure_before[i] = p.fpriv_sure[i].load();
  // Likewise whether each scratch page was read-only at any time of the
  // fork: then the child may have it read-only for good.
  // (And each page of the shared file mapping, which mprotect-file makes
  // read-only.)
  struct RoBefore {
    std::vector<std::uint64_t> gen;
    std::vector<bool> ro;
  };
  const auto ro_snapshot = [](const Process::ScratchRo* ro, std::size_t n) {
    RoBefore b{std::vector<std::uint64_t>(n), std::vector<bool>(n)};
    for (std::size_t i = 0; i < n; ++i) {
      b.gen[i] = ro[i].gen.load();
      b.ro[i] = ro[i].active.load() != 0 || ro[i].inherited.load();
    }
    return b;
  };
  const auto ro_inherit = [](const RoBefore& b, const Process::ScratchRo* ro, Process::ScratchRo* child) {
    for (std::size_t i = 0; i < b.gen.size(); ++i)
      child[i].inherited.store(b.ro[i] || ro[i].active.load() != 0 || ro[i].inherited.load() ||
                               ro[i].gen.load() != b.gen[i]);
  };
  const RoBefore scratch_before = ro_snapshot(p.scratch_ro.get(), cfg.scratch_pages);
  const RoBefore file_before = ro_snapshot(p.file_ro.get(), cfg.file_pages);
  const RoBefore gone_before = ro_snapshot(p.file_gone.get(), cfg.file_pages);
  const RoBefore fpriv_ro_before = ro_snapshot(p.fpriv_ro.get(), fpages);
  const RoBefore fpriv_gone_before = ro_snapshot(p.fpriv_gone.get(), fpages);
  std::unique_ptr<vm::Map> cmap = vm::vmspace_fork(*p.map);
  Process& c = new_process(&p, cfg.child_workers);
  ro_inherit(scratch_before, p.scratch_ro.get(), c.scratch_ro.get());
  ro_inherit(file_before, p.file_ro.get(), c.file_ro.get());
  ro_inherit(gone_before, p.file_gone.get(), c.file_gone.get());
  if (fpages != 0) ro_inherit(fpriv_ro_before, p.fpriv_ro.get(), c.fpriv_ro.get());
  // The child's entries copy the parent's maximum protection: lost there,
  // or maybe being lost by an mlock in progress.
  for (std::size_t i = 0; i < cfg.file_pages; ++i)
    c.file_mlock[i].max_write_lost.store(p.file_mlock[i].max_write_lost.load() ||
                                         p.file_mlock[i].active.load() != 0);
  c.map = std::move(cmap);
  for (int r = 0; r < kRegions; ++r) c.va[r] = p.va[r];
  c.file_va = p.file_va;
  c.device_va = p.device_va;
  c.fpriv_va = p.fpriv_va;
  if (fpages != 0) {
    const std::size_t words = file_size_ / 8;
    c.fpriv_inherited = std::make_unique<std::uint64_t[]>(words);
    for (std::size_t i = 0; i < words; ++i) {
      const std::uint64_t pend = p.fpriv_pending[i].load(), after = p.fpriv_committed[i].load();
      c.fpriv_inherited[i] = std::max(pend, after);  // one thread stores a word: its seqs grow
    }
  }
  for (std::size_t i = 0; i < fpages; ++i) {
    // A store that began before the fork ended may have made a copy the
    // child shares; one that finished before the fork began surely did.
    // (A store in flight marks its page maybe again at its end, and the
    // child's copy of the mark may come before that: in flight counts.)
    c.fpriv_maybe[i].store(p.fpriv_storing[i].load() != 0 || p.fpriv_maybe[i].load());
    c.fpriv_sure[i].store(sure_before[i]);
    // Murky after the inherited words were read: a store that raced an
    // munmap marks the page murky before it clears its pending word.
    c.fpriv_murky[i].store(p.fpriv_murky[i].load());
    // The child's entries copy the parent's maximum protection: lost
    // there, or maybe being lost by an mlock in progress.
    c.fpriv_max_write_lost[i].store(p.fpriv_max_write_lost[i].load() || p.fpriv_wire[i].active.load() != 0);
  }
  // Last, after every record of the parent's the child copied: an
  // munmap-private of the parent's that overlapped the fork, or any part
  // of these copies, makes the page murky and maybe a hole for the child.
  if (fpages != 0) ro_inherit(fpriv_gone_before, p.fpriv_gone.get(), c.fpriv_gone.get());
  c.inherited = std::make_unique<std::vector<SeqRange>[]>(c.nslots);
  for (std::size_t i = 0; i < p.nslots; ++i) {
    const std::uint64_t pend = p.pending[i].load();
    const std::uint64_t after = p.committed[i].load();
    std::vector<SeqRange>& set = c.inherited[i];
    if (before[i] != 0) {
      set.push_back(SeqRange{p.pid, seq_of(before[i]), seq_of(after)});
    } else {
      if (p.inherited)
        set = p.inherited[i];
      else
        set.push_back(SeqRange{0, 0, 0});
      if (after != 0) set.push_back(SeqRange{p.pid, 1, seq_of(after)});
    }
    if (pend != 0 && pend != after) set.push_back(SeqRange{p.pid, seq_of(pend), seq_of(pend)});  // in flight
  }
  forks.fetch_add(1, std::memory_order_relaxed);
  c.live_workers.store(cfg.child_workers);
  live_threads_.fetch_add(cfg.child_workers);
  start_threads(c, cfg.child_workers, static_cast<std::uint64_t>(cfg.child_ops));
}

void World::op_protect(Process& p, Rng& rng) {
  const std::uint64_t ps = vm.page_size();
  // One in four: an mprotect that changes nothing, read/write over a run of
  // one to four pages of the anonymous region (read/write already).  It
  // clips the entries there, maybe one an mlock is faulting in: 7.0's
  // mprotect does not wait for it, and the mlock must settle both pieces;
  // then it joins them again (vm_map_simplify_entry).
  if (p.npages[kAnon] > 1 && rng.below(4) == 0) {
    const auto [first, n] = short_run(rng, p.npages[kAnon]);
    const std::uint64_t a = p.va[kAnon] + first * ps;
    const Kern r = vm::map_protect(*p.map, a, a + n * ps, vm::kProtRead | vm::kProtWrite);
    if (r != Kern::kSuccess)
      fail("ops", fmt::format("process {}: mprotect read-write of anonymous memory failed: {}", p.pid,
                              vm::kern_name(r)));
    return;
  }
  // A run of the scratch region read-only, then back: the whole region one
  // time in two, else pages [lo, hi).
  const auto [lo, hi] = some_run(rng, p.npages[kScratch]);
  const std::uint64_t start = p.va[kScratch] + lo * ps, end = p.va[kScratch] + hi * ps;
  Process::ScratchRo* ro = p.scratch_ro.get();
  begin_run(ro, lo, hi);
  std::vector<std::uint64_t> before;
  for (std::uint64_t i = lo; i < hi; ++i) before.push_back(ro[i].restores.load());
  if (vm::map_protect(*p.map, start, end, vm::kProtRead) != Kern::kSuccess)
    fail("ops", fmt::format("process {}: mprotect read-only failed", p.pid));
  // Read-only for sure from here, unless an mprotect back ran meanwhile.
  for (std::uint64_t i = lo; i < hi; ++i)
    if (ro[i].restoring.load() == 0 && ro[i].restores.load() == before[i - lo]) ro[i].sure_at.store(before[i - lo]);
  locking::schedule_point(locking::Point::kUser, &p);
  locking::schedule_point(locking::Point::kUser, &p);
  for (std::uint64_t i = lo; i < hi; ++i) {
    ro[i].restoring.fetch_add(1);
    ro[i].restores.fetch_add(1);
  }
  const Kern back = vm::map_protect(*p.map, start, end, vm::kProtRead | vm::kProtWrite);
  for (std::uint64_t i = lo; i < hi; ++i) {
    ro[i].restores.fetch_add(1);
    ro[i].restoring.fetch_sub(1);
  }
  if (back != Kern::kSuccess) {
    fail("ops", fmt::format("process {}: mprotect read-write failed", p.pid));
    return;  // still read-only: the record says so
  }
  end_run(ro, lo, hi, true);  // read/write now, whatever the fork left
}

// mprotect a run of the shared file mapping read-only, then back: the whole
// mapping one time in two, else pages [lo, hi).  The entries are clipped
// there, maybe ones an mlock has wired (read-only wired entries, wired
// entries mprotected after wiring), and joined again after.  Stores meeting
// the read-only pages fail (SIGSEGV), excused by file_ro; a fork meanwhile
// may leave the child's mapping read-only for good.
void World::op_protect_file(Process& p, Rng& rng) {
  const std::uint64_t ps = vm.page_size();
  const auto [lo, hi] = some_run(rng, file_size_ / ps);
  const std::uint64_t start = p.file_va + lo * ps, end = p.file_va + hi * ps;
  std::vector<std::uint64_t> mlock_gen;
  for (std::uint64_t i = lo; i < hi; ++i)
    mlock_gen.push_back(gen_at(p.file_mlock[i]));
  begin_run(p.file_ro.get(), lo, hi);
  if (vm::map_protect(*p.map, start, end, vm::kProtRead) != Kern::kSuccess)
    fail("ops", fmt::format("process {}: mprotect read-only of the file mapping failed", p.pid));
  locking::schedule_point(locking::Point::kUser, &p);
  locking::schedule_point(locking::Point::kUser, &p);
  const Kern r = vm::map_protect(*p.map, start, end, vm::kProtRead | vm::kProtWrite);
  bool lost = false;
  for (std::uint64_t i = lo; i < hi; ++i) {
    Process::FileMlock& m = p.file_mlock[i];
    if (moved(m, mlock_gen[i - lo])) m.max_write_lost.store(true);
    lost = lost || m.max_write_lost.load();
  }
  if (r != Kern::kSuccess) {
    // The range stays read-only (the first pass refuses before any
    // change), and so does the record.
    if (r == Kern::kProtectionFailure && lost)
      mprotect_file_refused.fetch_add(1, std::memory_order_relaxed);
    else
      fail("ops", fmt::format("process {}: mprotect read/write of the file mapping failed: {}\n  at its start: {}",
                              p.pid, vm::kern_name(r), vm::describe_address(*p.map, start)));
    return;
  }
  end_run(p.file_ro.get(), lo, hi, true);
}

// munmap a run of the shared file mapping, then map the file there again
// (the vnode object at the run's offset, read/write, shared): the entries
// are clipped, wired ones unwired first, and the run's translations go.
// One at a time per process, so the run is free to map again.  Accesses to
// it meanwhile fail (KERN_INVALID_ADDRESS, SIGSEGV), excused by file_gone;
// a child forked meanwhile may keep the hole for good.
void World::op_unmap_file(Process& p, Rng& rng) {
  if (p.unmapping_file.exchange(true)) {
    unmap_file_skipped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const std::uint64_t ps = vm.page_size();
  const auto [lo, hi] = some_run(rng, file_size_ / ps);
  begin_run(p.file_gone.get(), lo, hi);
  std::uint64_t addr = p.file_va + lo * ps;
  const std::uint64_t len = (hi - lo) * ps;
  vm::map_munmap(*p.map, addr, addr + len);
  locking::schedule_point(locking::Point::kUser, &p);
  vm::Object* fobj = vm::vnode_pager_alloc(*file_);  // a reference for the mapping
  const Kern r = vm::map_mmap(*p.map, &addr, len, fobj, lo, vm::kProtRead | vm::kProtWrite, vm::kProtAll, 0,
                              vm::Inherit::kShare);
  if (r != Kern::kSuccess) {
    vm::object_deallocate(fobj);
    fail("ops", fmt::format("process {}: mmap of the file at pages {}..{} again failed: {}", p.pid, lo, hi - 1,
                            vm::kern_name(r)));
  } else {
    // A new entry: read/write, with its maximum protection whole again.
    for (std::uint64_t i = lo; i < hi; ++i) {
      p.file_ro[i].inherited.store(false);
      p.file_mlock[i].max_write_lost.store(false);
    }
    end_run(p.file_gone.get(), lo, hi, true);  // mapped again, whatever a fork left
  }
  p.unmapping_file.store(false);
}

// madvise a run of a mapping of the file: the shared one, or, where
// processes map it privately too, the private one one time in two.
void World::op_advise_file(Process& p, Rng& rng) {
  static constexpr vm::Behavior kBehaviours[] = {vm::Behavior::kNormal, vm::Behavior::kSequential,
                                                 vm::Behavior::kRandom};
  const std::uint64_t ps = vm.page_size();
  const std::uint64_t base = p.fpriv_va != 0 && rng.below(2) == 0 ? p.fpriv_va : p.file_va;
  const auto [lo, hi] = some_run(rng, file_size_ / ps);
  vm::map_madvise(*p.map, base + lo * ps, base + hi * ps, kBehaviours[rng.below(3)]);
}

// A refused store to scratch page `page` (its generation was g1 when the
// store began): excused only if an mprotect to read-only covered the page
// during the store, or the page may have come read-only from the parent.
bool World::scratch_read_only(Process& p, std::uint64_t page, std::uint64_t g1) {
  return read_only(p.scratch_ro.get(), page, g1);
}

bool World::read_only(const Process::ScratchRo* ro, std::uint64_t page, std::uint64_t g1) {
  return ro[page].inherited.load() || moved(ro[page], g1);
}

void World::op_churn(Process& p, Rng& rng) {
  // munmap the churn region and map fresh memory there; one time in two
  // only a run of it, [lo, hi), which clips the entry there (an unmap of
  // part of a one-mapping object frees that part's pages:
  // vm_map_entry_delete).
  const std::uint64_t ps = vm.page_size();
  const auto [lo, hi] = some_run(rng, p.npages[kChurn]);
  const std::uint64_t len = (hi - lo) * ps;
  std::uint64_t addr = p.va[kChurn] + lo * ps;
  vm::map_munmap(*p.map, addr, addr + len);
  locking::schedule_point(locking::Point::kUser, &p);
  const Kern r = vm::map_mmap(*p.map, &addr, len, nullptr, 0, vm::kProtRead | vm::kProtWrite, vm::kProtAll, 0,
                              vm::Inherit::kCopy);
  if (r != Kern::kSuccess && r != Kern::kNoSpace)  // kNoSpace: another thread mapped some of it again first
    fail("ops", fmt::format("process {}: mmap of the churn region failed: {}", p.pid, vm::kern_name(r)));
}

void World::op_wire(Process& p, Rng& rng, int j, std::uint64_t& seq) {
  const std::uint64_t ps = vm.page_size();
  // A run of one to four pages.
  const auto [page, npages] = short_run(rng, p.npages[kAnon]);
  const std::uint64_t start = p.va[kAnon] + page * ps, end = start + npages * ps;
  // Brackets an mlock or munlock of the range for wired_refusal.
  const auto bracket = [&](int delta) {
    for (std::uint64_t i = page; i < page + npages; ++i) {
      if (delta > 0 && p.wiring[i].loans.load() != 0) p.wiring[i].wired_during_loan.store(true);
      // The generation moves first both ways: a check that sees `active`
      // at 0 after an munlock then sees the generation it bumped.
      p.wiring[i].gen.fetch_add(1);
      p.wiring[i].active.fetch_add(delta);
    }
  };
  bracket(+1);
  const Kern r = vm::map_wire(*p.map, start, end, true);
  bracket(-1);
  if (r != Kern::kSuccess) {
    if (r != Kern::kResourceShortage && r != Kern::kFailure)
      fail("ops", fmt::format("process {}: mlock failed: {}", p.pid, vm::kern_name(r)));
    return;
  }
  // Wired pages are resident and mapped writable (mlock copied them): a
  // program mlocks a buffer to fill it.  These stores must succeed, unless
  // a send lent the page since or another mlock or munlock of it raced (see
  // wired_refusal), and the read must see the store to the range's first
  // page (the last one made).
  for (std::uint64_t i = npages; i-- > 0;) write_slot(p, kAnon, page + i, j, seq);
  Kern rr = Kern::kSuccess;
  // (Not even a pager read error: a wired page is resident.)
  if (!read_slot(p, kAnon, page, j, true, "read of a wired page", &rr) || rr != Kern::kSuccess)
    fail("data", fmt::format("process {}: read of a wired page failed: {}", p.pid, vm::kern_name(rr)));
  // The flags are cleared before the munlock, not after it: an mlock of
  // the page that begins meanwhile (another thread's, overlapping this
  // range) sets them again and must keep them.  While this munlock runs,
  // `active` excuses a refusal anyway.
  bracket(+1);
  for (std::uint64_t i = page; i < page + npages; ++i) {
    p.wiring[i].lent.store(false);
    p.wiring[i].wired_during_loan.store(false);
  }
  const Kern ru = vm::map_unwire(*p.map, start, end, true);
  bracket(-1);
  if (ru != Kern::kSuccess) fail("ops", fmt::format("process {}: munlock failed", p.pid));
}

void World::bracket_file_wiring(std::uint64_t first, std::uint64_t n, int delta) {
  // The generation moves first both ways: a truncator that sees `active`
  // at 0 after the end sees the generation it bumped.
  for (std::uint64_t i = first; i < first + n; ++i) {
    fwiring_[i].gen.fetch_add(1);
    fwiring_[i].active.fetch_add(delta);
  }
}

// A zero-copy send of a page of the shared file mapping (7.0's socow_setup
// lends vnode pages as any: write-protected and wired, under the page
// queues only).  Stores through any mapping of the file must copy the page
// (seed L343-350) and leave the lent bytes alone, so with no truncation
// step during the loan the page the socket holds is byte for byte what was
// lent.  A truncation may change it: the cut zeroes the partial last page
// in place, and leaves a lent page past the cut in its object, wired and
// invalid (FileWiring), where a fault zero-fills it (past the end) or reads
// the regrown file into it.  Those loans are not compared.  The bytes are
// read with the vnode lock shared, so no truncation step runs meanwhile,
// and a fault writes only into a page that a step made invalid.
void World::op_send_file(Process& p, Rng& rng) {
  const std::uint64_t ps = vm.page_size(), page = rng.below(file_size_ / ps);
  const std::uint64_t va = p.file_va + page * ps;
  const std::uint64_t ios = 1 + rng.below(4);
  bracket_file_wiring(page, 1, +1);
  fwiring_[page].loan_gen.fetch_add(1);
  fwiring_[page].loans.fetch_add(1);
  struct EndLoan {
    FileWiring& f;
    ~EndLoan() {
      f.loan_gen.fetch_add(1);
      f.loans.fetch_sub(1);
    }
  };
  const EndLoan end_loan{fwiring_[page]};
  const std::uint64_t t0 = trunc_seq_.load(std::memory_order_acquire);
  vm::Page* m = vm::socow_setup(*p.map, va);
  if (m == nullptr) {  // past the end of the short file, a pager error, or unmapped again
    bracket_file_wiring(page, 1, -1);
    loans_skipped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Only a shrink cutting at or below the page's end can change it (the
  // partial page zeroed in place, or a page past the cut left invalid for a
  // fault to fill); a regrow, a store of the new generation and higher cuts
  // cannot.
  const auto quiet = [&](std::uint64_t t) {
    return !some_truncation(t0, t, [&](std::uint64_t k) {
      return std::max(t0, k * kTruncSteps) <= std::min(t, k * kTruncSteps + 2) && cut_of(k) < (page + 1) * ps;
    });
  };
  std::vector<std::byte> lent;
  {
    locking::SxSharedLock vl(file_->lock);
    if (quiet(trunc_seq_.load(std::memory_order_acquire))) lent.assign(m->data, m->data + ps);
  }
  ex_.pause_us(cfg.io_latency_us * static_cast<std::uint32_t>(ios));
  bool compared = false, intact = true;
  {
    locking::SxSharedLock vl(file_->lock);
    if (!lent.empty() && quiet(trunc_seq_.load(std::memory_order_acquire))) {
      compared = true;
      intact = std::memcmp(lent.data(), m->data, ps) == 0;
    }
  }
  vm::socow_iodone(m);
  bracket_file_wiring(page, 1, -1);
  (compared ? file_loans : file_loans_truncated).fetch_add(1, std::memory_order_relaxed);
  if (!intact)
    fail("loan", fmt::format("process {} file page {}: the page lent to a send changed while lent, no truncation"
                             " meanwhile (a store went to the lent page instead of a copy)", p.pid, page));
}

// mlock of a run of one to four pages of the shared file mapping, a store
// and a read in each of its pages (judged as op_file_write and
// op_file_read judge theirs), then munlock.  The truncator meets the wired
// pages: 7.0's vm_object_page_remove unmaps a wired page and, truncating,
// makes it invalid, but leaves it in its object, still wired; after the
// regrow a fault reads it from the file again, and past the end of the
// short file a fault zero-fills it and maps it, no SIGBUS (FileWiring).  munlock's vm_fault_unwire
// unwires only the pages it finds mapped (seed L1065-1075), so a wired
// page that a truncation unmapped (past the cut, or the partial last page
// vnode_pager_setsize unmaps) and no fault of this process mapped again
// stays wired for good, in its object (window unwire.unmapped): at most one
// page per page of the file, since a later wiring there finds that page.
void World::op_wire_file(Process& p, Rng& rng) {
  const std::uint64_t ps = vm.page_size();
  const auto [page, npages] = short_run(rng, file_size_ / ps);
  const std::uint64_t start = p.file_va + page * ps, end = start + npages * ps;
  // Brackets the mlock and munlock for the truncator (FileWiring); at the
  // end, a page a send lent meanwhile is marked: the munlock may have left
  // its wiring on a copy it did not find.
  // And for this process's mprotects of the file (Process::FileMlock): an
  // mprotect to read-only during the mlock may take write out of the
  // maximum protection.
  struct Unbracket {
    World& w;
    Process& p;
    std::uint64_t first, n;
    std::vector<std::uint64_t> loan_gen, ro_gen;
    ~Unbracket() {
      for (std::uint64_t i = first; i < first + n; ++i) {
        FileWiring& f = w.fwiring_[i];
        if (f.loans.load() != 0 || f.loan_gen.load() != loan_gen[i - first]) f.mark_left(true);
        if (moved(p.file_ro[i], ro_gen[i - first])) p.file_mlock[i].max_write_lost.store(true);
        p.file_mlock[i].gen.fetch_add(1);
        p.file_mlock[i].active.fetch_sub(1);
      }
      w.bracket_file_wiring(first, n, -1);
    }
  };
  bracket_file_wiring(page, npages, +1);
  std::vector<FileProt> before;
  for (std::uint64_t i = page; i < page + npages; ++i) before.push_back(file_prot(p, i));
  Unbracket unbracket{*this, p, page, npages, {}, {}};
  for (std::uint64_t i = page; i < page + npages; ++i) {
    unbracket.loan_gen.push_back(fwiring_[i].loans.load() != 0 ? kBusy : fwiring_[i].loan_gen.load());
    p.file_mlock[i].gen.fetch_add(1);
    p.file_mlock[i].active.fetch_add(1);
    unbracket.ro_gen.push_back(gen_at(p.file_ro[i]));
  }
  const std::uint64_t t1 = trunc_seq_.load(std::memory_order_acquire);
  const Kern r = vm::map_wire(*p.map, start, end, true);
  const std::uint64_t t2 = trunc_seq_.load(std::memory_order_acquire);
  // A wiring fault past the end of the short file fails (seed L423-427),
  // and the mlock with it; the last page of the run is the one furthest
  // past it.  (An mlock may succeed past the end: pages another thread's
  // mlock has wired are not faulted again.)
  bool must = false;
  const bool may = past_eof((page + npages - 1) * ps, t1, t2, &must);
  if (r != Kern::kSuccess) {
    if (r == Kern::kProtectionFailure && may) {
      mlock_file_past_eof.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    // The wire fault retried after an mprotect to read-only of the run:
    // with the seed's fault_type kept from its first pass (read/write, the
    // entry wired, L309-310) the lookup fails, and so may the user-wire
    // override against a maximum protection without write (L249-271).
    bool ro = false;
    for (std::uint64_t i = page; i < page + npages; ++i)
      ro = ro || moved(p.file_ro[i], unbracket.ro_gen[i - page]);
    if (r == Kern::kProtectionFailure && ro) {
      mlock_file_refused.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    // A hole munmap-file made (map_wire refuses a range with holes).
    bool gone = false;
    for (std::uint64_t i = page; i < page + npages; ++i) gone = gone || unmapped_meanwhile(p, i, before[i - page]);
    if (r == Kern::kInvalidAddress && gone) {
      file_access_unmapped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (pager_error(r)) return;
    fail("ops", fmt::format("process {}: mlock of file pages {}..{} failed: {} (truncation steps {}..{})", p.pid,
                            page, page + npages - 1, vm::kern_name(r), t1, t2));
    return;
  }
  mlocks_of_file.fetch_add(1, std::memory_order_relaxed);
  for (std::uint64_t i = page; i < page + npages; ++i) {
    const std::uint64_t w = i * ps + rng.below(ps / 8) * 8, x = i * ps + rng.below(ps / 8) * 8;
    const FileProt sprot = file_prot(p, i);
    check_file_store(p, store_file_word(*p.map, p.file_va + w, w), sprot);
    const FileProt prot = file_prot(p, i);
    check_file_read(p, read_file_word(*p.map, p.file_va + x, x), prot);
  }
  if (vm::map_unwire(*p.map, start, end, true) != Kern::kSuccess)
    fail("ops", fmt::format("process {}: munlock of file pages failed", p.pid));
}

// mlock of an inaccessible page: the user wire's read lookup fails, so 7.x
// looks up again for write against the maximum protection, copies the page
// on write (the COW a later store would need), and, the entry not being
// writable, takes write out of its maximum protection (seed L249-271).  So
// after a successful mlock an mprotect to read/write must be refused.  The
// page is this operation's own: mapped, wired, unwired and unmapped here.
// 7.x's own quirk, which the harness met: if the wire fault has to start
// over (RetryFault, seed L226: a busy page, VM_WAIT), its override lookup
// runs again against the maximum protection it has already reduced, and
// fails: the mlock fails with KERN_PROTECTION_FAILURE (counted; the
// maximum protection has lost write all the same).
void World::op_wire_none(Process& p) {
  const std::uint64_t ps = vm.page_size();
  std::uint64_t addr = 0;
  if (vm::map_mmap(*p.map, &addr, ps, nullptr, 0, vm::kProtNone, vm::kProtAll, 0, vm::Inherit::kCopy) !=
      Kern::kSuccess) {
    fail("ops", fmt::format("process {}: mmap of an inaccessible page failed", p.pid));
    return;
  }
  const Kern r = vm::map_wire(*p.map, addr, addr + ps, true);
  if (r == Kern::kSuccess || r == Kern::kProtectionFailure) {
    if (r == Kern::kProtectionFailure) mlock_none_refused.fetch_add(1, std::memory_order_relaxed);
    const Kern rp = vm::map_protect(*p.map, addr, addr + ps, vm::kProtRead | vm::kProtWrite);
    if (rp != Kern::kProtectionFailure)
      fail("ops", fmt::format("process {}: mprotect read/write of a page mlocked while inaccessible: {}, not"
                              " KERN_PROTECTION_FAILURE (the wire did not take write out of its maximum protection)",
                              p.pid, vm::kern_name(rp)));
    if (r == Kern::kSuccess && vm::map_unwire(*p.map, addr, addr + ps, true) != Kern::kSuccess)
      fail("ops", fmt::format("process {}: munlock of an inaccessible page failed", p.pid));
  } else if (r != Kern::kResourceShortage && r != Kern::kFailure) {
    fail("ops", fmt::format("process {}: mlock of an inaccessible page failed: {}", p.pid, vm::kern_name(r)));
  }
  vm::map_munmap(*p.map, addr, addr + ps);
}

void World::op_advise(Process& p, Rng& rng) {
  static constexpr vm::Behavior kBehaviours[] = {vm::Behavior::kNormal, vm::Behavior::kSequential,
                                                 vm::Behavior::kRandom};
  // The whole anonymous region one time in two, else a run [lo, hi) of it:
  // the entry is clipped there, and joined again by the next madvise that
  // gives the run its neighbours' behaviour.
  const auto [lo, hi] = some_run(rng, p.npages[kAnon]);
  const std::uint64_t ps = vm.page_size();
  vm::map_madvise(*p.map, p.va[kAnon] + lo * ps, p.va[kAnon] + hi * ps, kBehaviours[rng.below(3)]);
}

void World::worker(Process& p, int j, std::uint64_t ops) {
  Rng rng = Rng::stream(cfg.seed, thread_stream(p.pid, j));
  std::uint64_t total = 0;
  for (std::uint32_t w : cfg.mix) total += w;
  std::uint64_t seq = 0;
  for (std::uint64_t i = 0; i < ops && !stop_.load(std::memory_order_relaxed); ++i) {
    if (cfg.duration_s > 0 && (i & 15) == 0 && std::chrono::steady_clock::now() >= deadline_) break;
    std::uint64_t x = rng.below(total);
    std::size_t k = 0;
    while (x >= cfg.mix[k]) x -= cfg.mix[k++];
    {
      QuiesceScope in(threads_gate_);
      switch (static_cast<Op>(k)) {
        case Op::kRead: op_read(p, rng, j); break;
        case Op::kWrite: op_write(p, rng, j, seq); break;
        case Op::kFileRead: op_file_read(p, rng); break;
        case Op::kFork: op_fork(p, rng); break;
        case Op::kProtect: op_protect(p, rng); break;
        case Op::kChurn: op_churn(p, rng); break;
        case Op::kWire: op_wire(p, rng, j, seq); break;
        case Op::kAdvise: op_advise(p, rng); break;
        case Op::kFilePrivate: op_file_private(p, rng, j, seq); break;
        case Op::kSend: op_send(p, rng, j, seq); break;
        case Op::kDevRead: op_dev_read(p, rng); break;
        case Op::kFileWrite: op_file_write(p, rng); break;
        case Op::kWireNone: op_wire_none(p); break;
        case Op::kWireFile: op_wire_file(p, rng); break;
        case Op::kSendFile: op_send_file(p, rng); break;
        case Op::kProtectFile: op_protect_file(p, rng); break;
        case Op::kAdviseFile: op_advise_file(p, rng); break;
        case Op::kUnmapFile: op_unmap_file(p, rng); break;
        case Op::kWirePrivate: op_wire_private(p, rng); break;
        case Op::kProtectPrivate: op_protect_private(p, rng); break;
        case Op::kUnmapPrivate: op_unmap_private(p, rng); break;
        case Op::kCount: break;
      }
    }
    op_counts[k].fetch_add(1, std::memory_order_relaxed);
    const std::uint64_t done = ops_done.fetch_add(1, std::memory_order_relaxed) + 1;
    if (cfg.check_every != 0 && done % cfg.check_every == 0) quiescent_check(done);
  }
  thread_done(p);
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

bool World::past_eof(std::uint64_t off, std::uint64_t t1, std::uint64_t t2, bool* must, bool* left_wired) const {
  const std::uint64_t ps = vm.page_size();
  // Pages [0, ceil(size / ps)) are inside the object (vnode_pager_setsize).
  const auto beyond = [&](std::uint64_t size) { return off / ps >= (size + ps - 1) / ps; };
  *must = false;
  if (left_wired != nullptr) *left_wired = false;
  if (t1 == t2 && t1 % 2 == 0) {
    *must = t1 % kTruncSteps == 2 && beyond(cut_of(t1 / kTruncSteps));
    // (Marked before the step went to 6k+2: seen here.)
    if (*must && fwiring_[off / ps].left.load(std::memory_order_acquire)) {
      *must = false;
      if (left_wired != nullptr) *left_wired = true;
      return true;
    }
    return *must;
  }
  // Truncation k's file is short from within step 6k+1 to within 6k+3.
  return some_truncation(t1, t2, [&](std::uint64_t k) {
    return std::max(t1, k * kTruncSteps + 1) <= std::min(t2, k * kTruncSteps + 3) && beyond(cut_of(k));
  });
}

void World::final_data_check() {
  // Every slot of every initial process holds exactly its last committed
  // value (or, never written, zeros).
  if (setup_error_) return;
  std::vector<Process*> roots;
  {
    std::lock_guard<std::mutex> l(procs_mtx_);
    for (auto& p : procs_)
      if (p->parent == nullptr) roots.push_back(p.get());
  }
  for (Process* p : roots) check_every_slot(*p, "final check");
  final_file_check();
}

// Every word of the file, read through the truncator's mapping, holds what
// the oracle's record says (or, where a store raced a truncation step, what
// that store may have left); dirty file pages the daemon laundered and freed
// are read back from the file here.  The truncator still runs (as the
// daemon does, for the data check before): a read the short file refuses
// is tried again.
void World::final_file_check() {
  if (!fmap_ || failed()) return;
  for (std::uint64_t w = 0; w < file_size_ / 8 && !failed(); ++w) {
    const std::uint64_t off = w * 8;
    for (int tries = 0;; ++tries) {
      if (tries == 10000) {
        fail("file", fmt::format("final check: file offset {}: 10000 reads refused in a row", off));
        return;
      }
      const FileAccess a = read_file_word(*fmap_, fmap_va_ + off, off);
      if (a.r != Kern::kSuccess) {
        if ((a.r == Kern::kProtectionFailure && a.may_fail) || pager_error(a.r)) continue;
        fail("file", fmt::format("final check: file offset {}: {} inside the file", off, vm::kern_name(a.r)));
        return;
      }
      if (a.must_fail) {
        fail("file",
             fmt::format("final check: file offset {} read {:#x} past the end of the file: no SIGBUS", off, a.v));
        return;
      }
      if (!file_value_ok(a))
        fail("file", fmt::format("final check: file offset {} holds {:#x}, expected {:#x} ({})", off, a.v,
                                 file_expected(off, a.s2), stale_reason(a.s2)));
      file_final_words.fetch_add(1, std::memory_order_relaxed);
      break;
    }
  }
}

std::uint64_t World::check_every_slot(Process& p, const char* when) {
  std::uint64_t reads = 0;
  for (int region : {kAnon, kScratch}) {
    for (std::uint64_t page = 0; page < p.npages[region] && !failed(); ++page) {
      for (int slot = 0; slot < p.slots_per_page; ++slot) {
        Kern r = Kern::kSuccess;
        // A pager read error is a SIGBUS for that read: read again.
        bool ok = read_slot(p, region, page, slot, true, when, &r);
        for (int tries = 1; ok && r == Kern::kFailure && tries < 100; ++tries)
          ok = read_slot(p, region, page, slot, true, when, &r);
        if (ok && r == Kern::kFailure)
          fail("data", fmt::format("{}: process {} {} page {}: 100 pager read errors in a row", when, p.pid,
                                   region_name(region), page));
        if (!ok)
          fail("data", fmt::format("{}: process {} {} page {} unreadable: {}", when, p.pid, region_name(region), page,
                                   vm::kern_name(r)));
        ++reads;
      }
    }
  }
  return reads;
}

void World::quiescent_check(std::uint64_t done) {
  if (stop_.load() || checking_.exchange(true)) {
    quiescent_checks_skipped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const std::uint64_t n = quiescent_checks.fetch_add(1) + 1;
  // Phase 1: every simulated thread between two operations (or not started);
  // the daemon and the truncator go on, so a thread waiting for memory or
  // for a truncation inside its operation can finish it.
  threads_gate_.close();
  std::vector<Process*> live;
  {
    std::lock_guard<std::mutex> l(procs_mtx_);
    for (auto& p : procs_)
      if (!p->exited && p->map) live.push_back(p.get());
  }
  // No write is in flight: every slot of one process (a different one each
  // time, in pid order) must hold exactly its last committed value, or one
  // it may have inherited if it never wrote the slot.
  const std::string when = fmt::format("quiescent check {} (after {} operations)", n, done);
  if (!live.empty())
    quiescent_reads.fetch_add(check_every_slot(*live[(n - 1) % live.size()], when.c_str()), std::memory_order_relaxed);
  // Phase 2: the daemon and the truncator between two steps.  The daemon
  // may sleep until memory runs short (forever, in a deterministic run):
  // wake it as an allocator would.
  actors_gate_.close([this] { vm::wake_pagedaemon(vm); });
  std::vector<vm::Map*> maps;
  maps.reserve(live.size());
  for (Process* p : live) maps.push_back(p->map.get());
  if (fmap_) maps.push_back(fmap_.get());
  for (const std::string& f : vm::check_invariants(vm, maps, {file_.get()}, {device_.get()},
                                                   {threads_gate_.parking_channel(), actors_gate_.parking_channel()}))
    fail("invariants", when + ": " + f);
  actors_gate_.open();
  threads_gate_.open();
  checking_.store(false);
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
