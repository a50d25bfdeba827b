// The simulated system a run hammers: one VM, a shared file, processes (a
// map with anonymous, scratch and churn regions plus the file mapped shared),
// their threads, the pageout daemon and a truncator; and the data oracle
// that knows what every read may legitimately return.
//
// The data oracle.  Every simulated thread owns one 8-byte slot in each page
// of its process's anonymous and scratch regions (slot j of every page
// belongs to thread j) and writes only there; any thread reads any slot.
// A written value is (pid << 40 | seq): the writer's process and a sequence
// number that grows with each of its writes, so values in a slot grow, and a
// value names the process that wrote it.  After a write completes, the
// writer publishes it as the slot's `committed` value; before writing it
// announces it as the slot's `pending` value.  A read of a slot loads
// committed before the access (c1), then pending (p2) and committed (c2)
// after it; the value read must be:
//   - written in this process: at least c1, and at most c2 or exactly p2
//     (the write in flight); for the slot's owner, exactly c1;
//   - otherwise (nothing committed yet in this process): a value the slot
//     could hold when the process was forked: the parent's values between
//     its committed value when the fork began and the one after it ended
//     (the child's snapshot is taken while the parent's threads run), or,
//     if the parent had not written the slot either, the parent's own
//     inherited set; 0 for an initial process (zero fill).
// This catches lost writes (a laundered page coming back stale, a COW copy
// made from the wrong page), COW leaks in both directions across fork,
// non-zero fill, and torn pages.  The file's words hold generation 0 of a
// pattern; the truncator cuts the file at an 8-byte boundary, leaves it
// short a while, regrows it (words past the cut read 0), then stores
// generation k+1 over a range past the cut through a mapping of its own.
// Each word's state (generation, zeroed) is recorded; a read no truncation
// step overlapped must see exactly it (file_value_ok).  An access to a page
// past the end of the short file must fail (SIGBUS), and a failed access is
// legitimate only if its page was past a cut made while it ran
// (World::past_eof).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/fault.h"
#include "core/map.h"
#include "core/pager.h"
#include "core/vm.h"
#include "stress/config.h"
#include "stress/exec/executor.h"
#include "stress/exec/quiesce.h"
#include "stress/rng.h"

namespace faultline::stress {

inline constexpr unsigned kSeqBits = 40;
inline constexpr std::uint64_t make_value(std::uint32_t pid, std::uint64_t seq) {
  return (static_cast<std::uint64_t>(pid) << kSeqBits) | seq;
}
inline constexpr std::uint32_t tag_of(std::uint64_t v) { return static_cast<std::uint32_t>(v >> kSeqBits); }
inline constexpr std::uint64_t seq_of(std::uint64_t v) { return v & ((std::uint64_t{1} << kSeqBits) - 1); }

// Values of one writer process a slot may hold: seqs lo..hi.
struct SeqRange {
  std::uint32_t tag;
  std::uint64_t lo, hi;
};

enum Region : int { kAnon, kScratch, kChurn, kRegions };
const char* region_name(int r) noexcept;

class Process {
 public:
  Process(std::uint32_t pid, Process* parent, int nworkers);

  const std::uint32_t pid;
  Process* const parent;
  const int nworkers;
  std::unique_ptr<vm::Map> map;
  std::uint64_t va[kRegions] = {};
  std::uint32_t npages[kRegions] = {};
  std::uint64_t file_va = 0;
  std::uint64_t device_va = 0;
  // The private (copy-on-write) mapping of the file, when the mix has
  // file-private operations (0: none), and its oracle state.  Per word:
  // what this process stored there last (committed) and is storing
  // (pending); a word is stored only by one thread of the process
  // (World::op_file_private).  Per page: whether a copy of it may be in this process's chain
  // (set before each store, inherited at fork after it) and whether one
  // surely is (set after a store, inherited as it was before the fork).
  std::uint64_t fpriv_va = 0;
  std::unique_ptr<std::atomic<std::uint64_t>[]> fpriv_committed, fpriv_pending;
  std::unique_ptr<std::atomic<bool>[]> fpriv_maybe, fpriv_sure;
  // Per word, for a child: the newest store of its parent's it may see
  // there (the parent's committed or pending store when the fork ended;
  // 0: none).  A later store of the parent's must not reach the child.
  std::unique_ptr<std::uint64_t[]> fpriv_inherited;
  std::atomic<int> live_workers{0};
  // Per anonymous page, what the oracle knows of its wiring (see
  // World::wired_refusal): mlocks and munlocks covering it in progress, a
  // generation bumped before and after each, sends lending it whose
  // socow_setup is not known to have preceded every wiring, whether a send
  // lent it while its entry was user-wired, loans of it in progress, and
  // whether an mlock of it began during one; the two flags hold until an
  // munlock of the page finishes.
  // Per page, not per process: the entries mlock wires are clipped to its
  // range, so only the pages of that range can meet a wired refusal.
  struct Wiring {
    std::atomic<int> active{0};
    std::atomic<std::uint64_t> gen{0};
    std::atomic<int> lending{0};
    std::atomic<bool> lent{false};
    std::atomic<int> loans{0};
    std::atomic<bool> wired_during_loan{false};
  };
  std::unique_ptr<Wiring[]> wiring;
  // Per scratch page, what the oracle knows of its protection: mprotects
  // to read-only of a run covering it not yet undone, a generation bumped
  // before and after each such pair, and whether it may have come read-only
  // from the parent (a fork while the parent had it read-only; cleared by
  // this process's own mprotect back to read/write).  A refused store to a
  // scratch page is excused only by these.
  struct ScratchRo {
    std::atomic<int> active{0};
    std::atomic<std::uint64_t> gen{0};
    std::atomic<bool> inherited{false};
    // (scratch_ro only.)  mprotects back to read/write in progress, and a
    // count bumped as each begins and ends; `sure_at` is that count when an
    // mprotect to read-only last returned with none running meanwhile:
    // while the count stays there, the page is read-only for sure, and a
    // store to it must be refused (World::write_slot).
    std::atomic<int> restoring{0};
    std::atomic<std::uint64_t> restores{0};
    std::atomic<std::uint64_t> sure_at{~std::uint64_t{0}};
  };
  std::unique_ptr<ScratchRo[]> scratch_ro;
  // The same for each page of the shared file mapping (mprotect-file): a
  // store refused there is excused only by these.
  std::unique_ptr<ScratchRo[]> file_ro;
  // Per page of the private mapping, this process's mlocks of it in
  // progress and a generation bumped before and after each (mlock-private;
  // `inherited` unused: a child's entries are not wired).  While an entry
  // is user-wired, 7.0's vm_map_lookup refuses a write fault on it unless
  // the fault overrides (MAP_ENTRY_USER_WIRED and MAP_ENTRY_COW), so a
  // store that faults on a page the mlock has not copied yet is refused,
  // and so is a read whose fault retries (its fault_type made read/write
  // at L309-310): excused only by these.
  std::unique_ptr<ScratchRo[]> fpriv_wire;
  // Per page of the private mapping, as file_ro and file_mlock's
  // max_write_lost for the shared one: mprotects of it to read-only
  // (mprotect-private) not yet undone, and whether an mlock of it and one
  // such mprotect overlapped (the entry may have lost write from its
  // maximum protection, seed L249-271); inherited at fork.
  std::unique_ptr<ScratchRo[]> fpriv_ro;
  std::unique_ptr<std::atomic<bool>[]> fpriv_max_write_lost;
  // Per page of the private mapping, munmap-private's record (as
  // file_gone): unmapped meanwhile, or maybe for good in a child forked
  // meanwhile.  An munmap drops the process's copies there and the file
  // shows through again, so it clears the page's records (committed words,
  // fpriv_maybe, fpriv_sure) before it unmaps; stores in flight then
  // (fpriv_storing) may land in either mapping, so a store that overlapped
  // an munmap leaves the page murky (fpriv_murky: its copy, if any, holds
  // a file generation or some store of this process or its ancestors),
  // until the next munmap of it.  One munmap-private at a time per process.
  std::unique_ptr<ScratchRo[]> fpriv_gone;
  std::unique_ptr<std::atomic<int>[]> fpriv_storing;
  std::unique_ptr<std::atomic<bool>[]> fpriv_murky;
  // Per page: an munmap-private dropped a copy of it (the page was maybe
  // copied then); for the count of exact reads of such pages.
  std::unique_ptr<std::atomic<bool>[]> fpriv_dropped;
  std::atomic<bool> unmapping_private{false};
  // Per page of the shared file mapping, this process's mlocks of it in
  // progress, a generation bumped before and after each, and whether the
  // entry there may have lost write from its maximum protection.  The
  // seed's `fault_type = prot` for a wired entry (L309-310) outlives a
  // RetryFault: an mlock whose fault retries after an mprotect made the
  // entry read-only looks up for write, fails, and takes the user-wire
  // override, which clears VM_PROT_WRITE from max_protection (L249-271);
  // every later mprotect back to read/write is refused.  Set when an mlock
  // and an mprotect to read-only of the page overlapped; inherited at fork.
  struct FileMlock {
    std::atomic<int> active{0};
    std::atomic<std::uint64_t> gen{0};
    std::atomic<bool> max_write_lost{false};
  };
  std::unique_ptr<FileMlock[]> file_mlock;
  // Per page of the shared file mapping, the same as file_ro for munmap-file
  // (unmapped meanwhile, or maybe for good in a child forked meanwhile), and
  // whether one munmap-file of this process is in progress (one at a time,
  // so each maps its run again).
  std::unique_ptr<ScratchRo[]> file_gone;
  std::atomic<bool> unmapping_file{false};
  bool exited = false;  // by its last thread

  // Oracle state for the anonymous and scratch regions.
  std::size_t slot_index(int region, std::uint64_t page, int slot) const;
  std::size_t nslots = 0;
  int slots_per_page = 0;
  std::unique_ptr<std::atomic<std::uint64_t>[]> committed;
  std::unique_ptr<std::atomic<std::uint64_t>[]> pending;
  // Per slot, what it may hold before this process writes it; null: 0 only
  // (an initial process).
  std::unique_ptr<std::vector<SeqRange>[]> inherited;
};

struct Failure {
  std::string oracle;  // which check saw it
  std::string what;
};

class World {
 public:
  World(const Config& cfg, Executor& ex);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  // Creates the initial processes and starts every thread and actor.
  // False if a thread could not be started (the message is in failures as
  // oracle "setup").
  bool start();
  // After the executor returned (quiescent): the invariant checker, then
  // teardown.  (The final data check of every slot ran at the end of the
  // run, by the last thread, while the pageout daemon could still work.)
  void finish();
  // Stops everything as soon as possible (Ctrl-C, a failure): threads end
  // after their current operation.  Async-signal-safe.
  void request_stop() noexcept;
  // Stops the actors now (the pageout daemon may be asleep without a
  // timeout).  Requires: no locks held.
  void wake_actors();

  void fail(std::string oracle, std::string what);
  bool failed() const noexcept { return failed_.load(std::memory_order_relaxed); }
  std::vector<Failure> failures() const;
  bool setup_error() const noexcept { return setup_error_; }

  const Config& cfg;
  vm::Vm vm;

  // Progress and statistics.
  std::atomic<std::uint64_t> ops_done{0};
  std::array<std::atomic<std::uint64_t>, kOps> op_counts{};
  std::atomic<std::uint64_t> reads_checked{0}, writes_committed{0}, file_reads_checked{0}, file_writes{0};
  std::atomic<std::uint64_t> segv_on_scratch{0}, sigbus_in_truncation{0}, unmapped_churn{0};
  std::atomic<std::uint64_t> sigbus_past_eof{0};  // file accesses past the end of the shrunk file (seed L423)
  std::atomic<std::uint64_t> file_fill_words{0};  // words the truncator stored after regrowing the file
  std::atomic<std::uint64_t> file_writes_racing{0};  // stores overlapping a truncation step: the word is uncertain
  std::atomic<std::uint64_t> file_final_words{0};    // words checked by the final check of the file
  // Private file mapping: reads checked exactly (no copy of the page can be
  // in the process's chain) and loosely (one may be), stores, and accesses
  // past the end of the short file refused (SIGBUS).
  std::atomic<std::uint64_t> fpriv_reads_exact{0}, fpriv_reads_loose{0}, fpriv_writes{0}, fpriv_sigbus{0};
  // mlocks of runs of the private file mapping: done, failed past the end of
  // the short file, and stores to it and reads of it refused while an mlock
  // of the page was in progress.
  std::atomic<std::uint64_t> mlocks_of_private{0}, mlock_private_past_eof{0}, fpriv_refused_wired{0};
  // mprotect-private and munmap-private: stores to the private mapping
  // refused while an mprotect had the page read-only; mprotects back to
  // read/write refused (the maximum protection lost, as for the shared
  // mapping); accesses (and mlocks) that met a run munmap-private unmapped
  // or had just mapped again; munmap-privates done, and skipped (another in
  // progress).
  std::atomic<std::uint64_t> fpriv_refused_ro{0}, mprotect_private_refused{0}, fpriv_unmapped{0};
  std::atomic<std::uint64_t> munmaps_of_private{0}, unmap_private_skipped{0}, mprotects_of_private{0};
  // Reads of a page never copied since an munmap-private dropped its copy,
  // judged exactly against the file.
  std::atomic<std::uint64_t> fpriv_reads_reset{0};
  // mlocks of the private mapping refused by a retried fault of an entry
  // made read-only meanwhile (seed L249-271, L309-310).
  std::atomic<std::uint64_t> mlock_private_refused{0};
  // mlocks of runs of the file: done, and failed past the end of the short
  // file (seed L423-427).
  std::atomic<std::uint64_t> mlocks_of_file{0}, mlock_file_past_eof{0};
  // Accesses past the end of the short file that succeeded on a page a
  // truncation may have left in the object wired (7.0 zero-fills it).
  std::atomic<std::uint64_t> past_eof_left_wired{0};
  std::atomic<std::uint64_t> mlock_none_refused{0};  // mlocks of PROT_NONE pages refused on a retried fault (7.x)
  std::atomic<std::uint64_t> segv_racing_mlock{0}, segv_lent_wired{0}, segv_cowfault_unmapped{0};
  std::atomic<std::uint64_t> sigbus_pager_error{0};  // accesses failed by an injected pager read error
  std::atomic<std::uint64_t> loans{0}, loans_skipped{0}, device_reads_checked{0}, device_moves{0};
  // Loans of file pages: checked intact, and not compared because a
  // truncation step overlapped them (it may change a lent file page).
  std::atomic<std::uint64_t> file_loans{0}, file_loans_truncated{0};
  std::atomic<std::uint64_t> segv_on_file{0};  // stores to the shared file mapping refused while it was read-only
  // mprotects of the file mapping back to read/write refused: an mlock's
  // retried fault took write out of the maximum protection (7.0).
  std::atomic<std::uint64_t> mprotect_file_refused{0};
  // Reads of the file mapping and mlocks of it refused by a retried fault
  // of a wired entry made read-only meanwhile (seed L309-310, 7.0).
  std::atomic<std::uint64_t> file_reads_refused_wired{0}, mlock_file_refused{0};
  // Accesses to the file mapping (and mlocks of it) that found a run unmapped
  // by munmap-file; munmap-files skipped, another in progress.
  std::atomic<std::uint64_t> file_access_unmapped{0}, unmap_file_skipped{0};
  std::atomic<std::uint64_t> forks{0}, forks_skipped{0}, children_exited{0}, truncations{0};
  std::atomic<std::uint64_t> threads_started{0};
  std::atomic<std::uint32_t> peak_live_processes{0};
  // Quiescent checks during the run (cfg.check_every), and those not made
  // because one was in progress or the run was stopping.
  std::atomic<std::uint64_t> quiescent_checks{0}, quiescent_checks_skipped{0}, quiescent_reads{0};

 private:
  Process& new_process(Process* parent, int nworkers);
  bool start_threads(Process& p, int nworkers, std::uint64_t ops);
  void worker(Process& p, int j, std::uint64_t ops);
  void pagedaemon();
  void truncator();
  void thread_done(Process& p);
  void final_data_check();
  // Reads every anonymous and scratch slot of p, each of which must hold
  // exactly its committed value (no write in flight); `when` names the
  // check in failures.  Returns the reads made.
  std::uint64_t check_every_slot(Process& p, const char* when);
  // Every check_every operations, by the thread that completed the last of
  // them (between its operations): stops every thread at the threads' gate,
  // checks one live process's data (every slot holds exactly its committed
  // value) while the pageout daemon and truncator still run, then stops them
  // too and runs the structural invariant checker; a finding fails the run.
  void quiescent_check(std::uint64_t done);

  // One user access through the MMU, faulting as needed.
  vm::Kern access(vm::Map& m, std::uint64_t va, bool write, std::uint64_t* v);
  void check_read(const Process& p, int region, std::uint64_t page, int slot, bool owner, std::uint64_t c1,
                  std::uint64_t v, std::uint64_t p2, std::uint64_t c2, const char* when);
  // A checked read of one slot (c1, access, p2, c2).  False if the access failed.
  // Whether a KERN_PROTECTION_FAILURE on anonymous page `page` (at va) is
  // 7.x's refusal of a write fault on a user-wired COW entry: an mlock or
  // munlock of that page ran during the access (its wiring generation was g1
  // before it), or a send
  // lent the page while it was wired and the entry is still user-wired.
  // Counts it.
  bool wired_refusal(Process& p, std::uint64_t page, std::uint64_t va, std::uint64_t g1);
  bool scratch_read_only(Process& p, std::uint64_t page, std::uint64_t g1);
  // Whether an access's result is a pager read error (SIGBUS), which only
  // --io-error-ppm causes.  Counts it.
  bool pager_error(vm::Kern r);
  // A pager read error counts as no failure: true with *result kFailure.
  bool read_slot(Process& p, int region, std::uint64_t page, int slot, bool owner, const char* when,
                 vm::Kern* result);
  bool inherited_ok(const Process& p, std::size_t idx, std::uint64_t v) const;

  void op_read(Process& p, Rng& rng, int j);
  void op_write(Process& p, Rng& rng, int j, std::uint64_t& seq);
  void op_file_read(Process& p, Rng& rng);
  void op_file_write(Process& p, Rng& rng);
  void op_fork(Process& p, Rng& rng);
  void op_protect(Process& p, Rng& rng);
  void op_churn(Process& p, Rng& rng);
  void op_wire(Process& p, Rng& rng, int j, std::uint64_t& seq);
  void op_wire_file(Process& p, Rng& rng);
  void op_send_file(Process& p, Rng& rng);
  void op_protect_file(Process& p, Rng& rng);
  void op_advise_file(Process& p, Rng& rng);
  void op_unmap_file(Process& p, Rng& rng);
  // A refused store to page `page` of a region whose protection `ro`
  // records, its generation g1 when the store began: excused only if an
  // mprotect to read-only covered the page meanwhile or the page may have
  // come read-only from the parent.
  static bool read_only(const Process::ScratchRo* ro, std::uint64_t page, std::uint64_t g1);
  // Marks file pages [first, first + n) as wired by an mlock or a loan
  // (FileWiring), delta +1 before and -1 after.
  void bracket_file_wiring(std::uint64_t first, std::uint64_t n, int delta);
  void op_advise(Process& p, Rng& rng);
  void op_send(Process& p, Rng& rng, int j, std::uint64_t& seq);
  void op_dev_read(Process& p, Rng& rng);
  void op_wire_none(Process& p);
  void op_file_private(Process& p, Rng& rng, int j, std::uint64_t& seq);
  void op_wire_private(Process& p, Rng& rng);
  void op_protect_private(Process& p, Rng& rng);
  void op_unmap_private(Process& p, Rng& rng);
  // Whether processes map the file privately too (an operation on the
  // private mapping in the mix).
  bool private_mapping() const {
    for (Op op : {Op::kFilePrivate, Op::kWirePrivate, Op::kProtectPrivate, Op::kUnmapPrivate})
      if (cfg.mix[static_cast<std::size_t>(op)] != 0) return true;
    return false;
  }
  // A checked store of this thread's slot; false (failure reported) if it
  // failed for a reason the protocol does not allow.
  vm::Kern write_slot(Process& p, int region, std::uint64_t page, int j, std::uint64_t& seq);
  int pick_region(Rng& rng) const;
  // File word `off` of generation `gen` (0: the file as created); never 0.
  std::uint64_t file_word(std::uint64_t off, std::uint32_t gen) const;
  // What a word in state `s` holds: (gen << 1) | zeroed.
  std::uint64_t file_expected(std::uint64_t off, std::uint32_t s) const {
    return (s & 1) != 0 ? 0 : file_word(off, s >> 1);
  }
  // One access to a file word, with what the oracle needs to judge it:
  // the word's state (s1, s2) and trunc_seq_ (t1, t2) before and after it,
  // and past_eof's verdict for that span.
  struct FileAccess {
    std::uint64_t off = 0;
    vm::Kern r = vm::Kern::kSuccess;
    std::uint64_t v = 0;
    std::uint32_t s1 = 0, s2 = 0;
    std::uint64_t t1 = 0, t2 = 0;
    bool may_fail = false, must_fail = false;
    bool left_wired = false;  // past the end of the short file, on a page maybe left there wired: no SIGBUS due
    // No truncation step overlapped the access.
    bool quiet() const { return t1 == t2 && t1 % 2 == 0; }
  };
  // Reads file word `off` through map m at va (v is what it read).
  FileAccess read_file_word(vm::Map& m, std::uint64_t va, std::uint64_t off);
  // Stores at file word `off`, through map m at va, what the record says
  // the word holds (v, by s1).
  FileAccess store_file_word(vm::Map& m, std::uint64_t va, std::uint64_t off);
  // What the oracle knows of a file page's protection and wiring in one
  // process before an access (Process::file_ro, Process::file_mlock).
  struct FileProt {
    std::uint64_t ro_gen = 0, mlock_gen = 0, gone_gen = 0;
  };
  // An access to the page failed unmapped (KERN_INVALID_ADDRESS): excused
  // only if a munmap-file of it overlapped the access, or the page may have
  // been unmapped when this process was forked.
  bool unmapped_meanwhile(const Process& p, std::uint64_t page, const FileProt& before) const;
  static FileProt file_prot(const Process& p, std::uint64_t page);
  // A read of the page refused (SIGSEGV) though it is readable: the seed's
  // `fault_type = prot` of a wired entry (L309-310) outlives a RetryFault,
  // so a read fault on a page this process had mlocked read/write that
  // retries after an mprotect to read-only looks up for write and fails
  // (L233-246).  Excused only if an mlock and an mprotect to read-only of
  // the page both overlapped the read.
  static bool retried_wired_refusal(const Process& p, std::uint64_t page, const FileProt& before);
  // Judge a read (store) of a file word as op_file_read (op_file_write)
  // does, and count it.  `prot`: the page's FileProt before the read.
  void check_file_read(Process& p, const FileAccess& a, const FileProt& prot);
  void check_file_store(Process& p, const FileAccess& a, const FileProt& prot);
  // Why a read of a word in state s that does not match it is wrong.
  static std::string stale_reason(std::uint32_t s);
  // Whether a file read that returned a.v is allowed.
  bool file_value_ok(const FileAccess& a) const;
  // The word's state changed at truncation step `step`: a store that had
  // finished before the step began is superseded.
  void file_word_set(std::uint64_t w, std::uint32_t s, std::uint64_t step);
  void file_fill(std::uint64_t cut, std::uint32_t gen, std::uint64_t step, Rng& rng);
  void final_file_check();
  std::uint64_t device_word(std::uint64_t off) const;

  Executor& ex_;
  std::unique_ptr<vm::Vnode> file_;
  std::unique_ptr<vm::Device> device_;
  std::atomic<std::uint64_t> device_calls_{0};  // d_mmap calls: which ones say "moving" derives from the seed
  const std::uint64_t file_size_;
  // Truncation k moves trunc_seq_ from 6k to 6k+6: odd while the file
  // changes (6k+1 shrinking, 6k+3 growing back, 6k+5 the new generation
  // being stored), even while it does not (6k+2 short, 6k+4 regrown, reading
  // zeros past the cut, 6k+6 written).
  static constexpr std::uint64_t kTruncSteps = 6;
  std::atomic<std::uint64_t> trunc_seq_{0};
  static constexpr std::uint64_t kCuts = 64;
  std::array<std::atomic<std::uint64_t>, kCuts> cuts_{};  // truncation k's cut, at k % kCuts
  // Per file word: its state, (gen << 1) | zeroed, and its taint: a store
  // that overlapped a truncation step may have landed before or after it,
  // so the word may hold what the store wrote until a later step rewrites
  // it.  A taint is packed in one word (0: none): bit 63, the oldest
  // generation a tainting store wrote (23 bits, from bit 40) and the step
  // number when the latest of them finished (40 bits).
  struct Taint {
    std::uint32_t gen = 0;
    std::uint64_t done = 0;
    static constexpr std::uint64_t kDoneMask = (std::uint64_t{1} << 40) - 1;
    static constexpr std::uint64_t kGenMask = (std::uint64_t{1} << 23) - 1;
    static Taint unpack(std::uint64_t w) {
      return Taint{static_cast<std::uint32_t>((w >> 40) & kGenMask), w & kDoneMask};
    }
    std::uint64_t pack() const {
      return (std::uint64_t{1} << 63) | ((std::uint64_t{gen} & kGenMask) << 40) | (done & kDoneMask);
    }
  };
  std::unique_ptr<std::atomic<std::uint32_t>[]> fstate_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> ftaint_;
  // The truncator's own process-less map of the file, through which it
  // stores each new generation (so the pages are dirtied as a store through
  // a mapping dirties them, and the vnode pager launders them); the final
  // check reads the file through it.
  std::unique_ptr<vm::Map> fmap_;
  std::uint64_t fmap_va_ = 0;
  // Whether an access to file offset `off` that ran while trunc_seq_ went
  // from t1 to t2 may fail past the end of the file (seed L423-427): the
  // file was cut below off's page at some point in between.  `must`: the
  // file was short all along (t1 == t2), so it must fail, unless its page
  // may be one a truncation left in the object wired (then *left_wired).
  bool past_eof(std::uint64_t off, std::uint64_t t1, std::uint64_t t2, bool* must,
                bool* left_wired = nullptr) const;
  // Per page of the file: mlocks of runs covering it in progress (from
  // before map_wire to after map_unwire), a generation bumped before and
  // after each, and whether a truncation may have left it in the object
  // wired.  7.0's vm_object_page_remove leaves a wired page in its object,
  // invalid; a fault that finds it there does not check the end of the
  // file (seed L423 is for pages not resident): the pager does not have it
  // (vnode_pager_haspage: past the end), so the fault zero-fills it and
  // maps it (L646-672), no SIGBUS.  And munlock may leave it wired for good
  // (vm_fault_unwire skips what is unmapped, L1065-1075, and a truncation
  // unmaps the wired pages past the cut and the partial last page), so the
  // mark stays, and is set from the cut's own page on.
  // A loan makes a second way: a store to a lent page moves the object's
  // wirings to a copy (vm_page_cowfault) that an munlock meanwhile may not
  // find mapped, so an mlock that overlapped a loan of its page marks it
  // too (loans and loan_gen: sends of the page in progress, and a
  // generation bumped before and after each).
  struct FileWiring {
    std::atomic<int> active{0};
    std::atomic<std::uint64_t> gen{0};
    std::atomic<int> loans{0};
    std::atomic<std::uint64_t> loan_gen{0};
    std::atomic<bool> left{false};
    // left was set once: a private mapping's fault past the end may have
    // zero-filled a page of its own in its shadow then, for good (kept
    // wired below it, fix fault-keeps-wired).  Never cleared.
    std::atomic<bool> ever_left{false};
    void mark_left(bool on) {
      if (on) ever_left.store(true, std::memory_order_release);
      left.store(on, std::memory_order_release);
    }
  };
  std::unique_ptr<FileWiring[]> fwiring_;
  // Truncation k's cut (while one of the last kCuts).
  std::uint64_t cut_of(std::uint64_t k) const { return cuts_[k % kCuts].load(std::memory_order_relaxed); }
  // Whether pred(k) holds for a truncation k that trunc_seq_ from t1 to t2
  // may have seen; true if the span covers too many truncations for their
  // cuts to be still known.
  template <typename Pred>
  bool some_truncation(std::uint64_t t1, std::uint64_t t2, Pred pred) const {
    if (t2 / kTruncSteps - t1 / kTruncSteps >= kCuts) return true;
    for (std::uint64_t k = t1 / kTruncSteps; k <= t2 / kTruncSteps; ++k)
      if (pred(k)) return true;
    return false;
  }
  std::chrono::steady_clock::time_point deadline_{};
  std::uint64_t region_weights_[kRegions] = {};

  std::mutex procs_mtx_;  // brief, never held across a schedule point
  std::vector<std::unique_ptr<Process>> procs_;
  std::atomic<std::uint32_t> next_pid_{1};
  std::atomic<std::uint64_t> forks_begun_{0};  // against cfg.max_forks
  std::atomic<int> live_processes_{0};
  std::atomic<int> live_threads_{0};
  std::atomic<bool> stop_{false};         // threads: start no more operations
  std::atomic<bool> actors_stop_{false};  // actors: every thread is done (the daemon must outlive them)
  // The daemon stops only once no other actor can fault any more: the
  // truncator's stores may wait for memory (VM_WAIT), which only the daemon
  // frees.  Actors that fault, still running:
  std::atomic<int> faulting_actors_{0};
  std::atomic<bool> daemon_stop_{false};
  void stop_daemon();
  std::atomic<std::uint64_t> next_stream_{0};
  // Simulated threads pass threads_gate_ around each operation (and a
  // child's exit); the pageout daemon and the truncator pass actors_gate_
  // around each step.  checking_: a quiescent check is in progress.
  QuiesceGate threads_gate_{"threads' gate"};
  QuiesceGate actors_gate_{"actors' gate"};
  std::atomic<bool> checking_{false};

  mutable std::mutex failures_mtx_;
  std::vector<Failure> failures_;
  std::atomic<bool> failed_{false};
  bool setup_error_ = false;
};

}  // namespace faultline::stress
