// The oracles: what a read, a store or a quiescent point must have seen
// (data, file, scratch, wired refusals, invariants at quiescent checks and
// at the end).  The workload that makes the accesses is in
// workload/ops.cpp; world.h documents the data oracle.
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

std::string World::stale_reason(std::uint32_t s) {
  return (s & 1) != 0 ? "past a truncation: stale data survived it"
                      : "generation " + std::to_string(s >> 1) + " was stored there: a lost write-back, or stale data";
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

// A refused store to scratch page `page` (its generation was g1 when the
// store began): excused only if an mprotect to read-only covered the page
// during the store, or the page may have come read-only from the parent.
bool World::scratch_read_only(Process& p, std::uint64_t page, std::uint64_t g1) {
  return read_only(p.scratch_ro.get(), page, g1);
}

bool World::read_only(const Process::ScratchRo* ro, std::uint64_t page, std::uint64_t g1) {
  return ro[page].inherited.load() || moved(ro[page], g1);
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

}  // namespace faultline::stress
