// The workload: what a simulated thread does, one operation at a time
// (World::worker and the op_* members), and the accesses they make.  The
// oracles that judge what the accesses saw are in oracle/oracles.cpp.
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

void World::op_file_read(Process& p, Rng& rng) {
  const std::uint64_t off = rng.below(file_size_ / 8) * 8;
  const FileProt prot = file_prot(p, off / vm.page_size());
  check_file_read(p, read_file_word(*p.map, p.file_va + off, off), prot);
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
  // Whether an entry's maximum protection may have lost write (an mlock's
  // user-wire override, L249-271) when the child copied it: the parent's
  // record before the fork, after it, or an mlock overlapping it.  (An
  // munmap of the parent's during the fork may clear the record, a new
  // entry, after the child copied the old one.)
  struct LostBefore {
    std::vector<std::uint64_t> gen;
    std::vector<bool> lost;
  };
  const auto lost_snapshot = [](std::size_t n, auto&& mlock, auto&& lost) {
    LostBefore b{std::vector<std::uint64_t>(n), std::vector<bool>(n)};
    for (std::size_t i = 0; i < n; ++i) {
      b.gen[i] = gen_at(mlock(i));
      b.lost[i] = lost(i).load();
    }
    return b;
  };
  const auto lost_inherit = [](const LostBefore& b, std::size_t i, const auto& mlock, const auto& lost) {
    return b.lost[i] || lost.load() || moved(mlock, b.gen[i]);
  };
  const LostBefore fpriv_lost_before = lost_snapshot(
      fpages, [&](std::size_t i) -> auto& { return p.fpriv_wire[i]; },
      [&](std::size_t i) -> auto& { return p.fpriv_max_write_lost[i]; });
  const LostBefore file_lost_before = lost_snapshot(
      cfg.file_pages, [&](std::size_t i) -> auto& { return p.file_mlock[i]; },
      [&](std::size_t i) -> auto& { return p.file_mlock[i].max_write_lost; });
  std::unique_ptr<vm::Map> cmap = vm::vmspace_fork(*p.map);
  Process& c = new_process(&p, cfg.child_workers);
  ro_inherit(scratch_before, p.scratch_ro.get(), c.scratch_ro.get());
  ro_inherit(file_before, p.file_ro.get(), c.file_ro.get());
  ro_inherit(gone_before, p.file_gone.get(), c.file_gone.get());
  if (fpages != 0) ro_inherit(fpriv_ro_before, p.fpriv_ro.get(), c.fpriv_ro.get());
  for (std::size_t i = 0; i < cfg.file_pages; ++i)
    c.file_mlock[i].max_write_lost.store(
        lost_inherit(file_lost_before, i, p.file_mlock[i], p.file_mlock[i].max_write_lost));
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
    c.fpriv_max_write_lost[i].store(
        lost_inherit(fpriv_lost_before, i, p.fpriv_wire[i], p.fpriv_max_write_lost[i]));
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

}  // namespace faultline::stress
