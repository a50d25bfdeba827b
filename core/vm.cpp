#include "core/vm.h"

#include "core/object.h"

#include <cstdio>
#include <cstring>
#include <iterator>

namespace faultline::vm {

namespace {

struct MutantInfo {
  Mutant m;
  const char* name;
  const char* lines;
  const char* what;
};

// The catalogue: each mutant removes or weakens exactly one thing the seed
// (or 7.0 around it) does; off by default, for self-tests only.
constexpr MutantInfo kMutants[] = {
    {Mutant::kNone, "none", "", "no mutant"},
    {Mutant::kSkipTimestampRecheck, "skip-timestamp-recheck", "seed L790-839",
     "the fault trusts the lookup it made before the pager ran: a change of the map meanwhile (mprotect, munmap, "
     "a fork's copy-on-write) is not seen, and the page is mapped with what the map said before"},
    {Mutant::kNoWriteProtectAtFork, "no-write-protect-at-fork", "vmspace_fork, vm_map_copy_entry (7.0 vm_map.c)",
     "fork leaves the parent's translations writable: the parent's stores after the fork reach the pages the "
     "child shares (copy-on-write isolation broken)"},
    {Mutant::kCleanCowCopy, "clean-cow-copy", "seed L757-758, L840-867",
     "the COW copy stays clean (the fix cow-copy-dirty undone): pageout frees it as if zero-filled once the "
     "backing page is gone, and the process reads zeros"},
    {Mutant::kNoEofCheck, "no-eof-check", "seed L423-427; vnode_pager_getpages",
     "no SIGBUS past the end of a file: a fault past EOF maps a zero page into the file's object"},
    {Mutant::kWireKeepsMaxWrite, "wire-keeps-max-write", "seed L249-271",
     "a user wire of an inaccessible copy-on-write entry leaves write in its maximum protection: a later "
     "mprotect gives write to a wired entry the file's page is mapped in, and stores reach the file"},
    {Mutant::kVnodeWriteLost, "vnode-write-lost", "vnode_pager_putpages",
     "the vnode pager reports a write done without writing it: a laundered file word is lost"},
    {Mutant::kMprotectPastEnd, "mprotect-past-end", "vm_map_protect (7.0 vm_map.c 1562-1630)",
     "no vm_map_clip_end: the new protection reaches past the range asked for, refusing stores elsewhere"},
    {Mutant::kMunmapKeepsTranslations, "munmap-keeps-translations", "vm_map_delete (7.0 vm_map.c)",
     "no pmap_remove where the entry's object keeps its pages: the range, mapped again, still reads the old "
     "pages, and a terminated object keeps a mapped page"},
    {Mutant::kBusyPageTaken, "busy-page-taken", "seed L368-400",
     "the fault takes a page another thread holds busy (paging it in or out, or its own fault's page) as if it "
     "were idle, instead of sleeping on it and starting over"},
    {Mutant::kNoDeadCheck, "no-dead-check", "seed L323",
     "no OBJ_DEAD test: a fault walks into an object a collapse or a deallocation is tearing down"},
    {Mutant::kRevalidateKeepsProt, "revalidate-keeps-prot", "seed L837",
     "the re-lookup after the pager does not narrow the protection: an mprotect to read-only while the fault "
     "slept is undone for that page, which is mapped writable"},
    {Mutant::kNoPagerRelookup, "no-pager-relookup", "seed L579-583",
     "the page is not looked up again after the pager: a pager that replaced or freed the page (the device "
     "pager's moving page) leaves the fault holding a page that is not there"},
    {Mutant::kReadMapsBackingWritable, "read-maps-backing-writable", "seed L781-783",
     "a read fault that found the page in a backing object maps it with the entry's write permission: the "
     "process's next store goes into the page it shares with its parent or the file (no copy-on-write)"},
    {Mutant::kBusyWakeupLost, "busy-wakeup-lost", "vm_page_wakeup (7.0 vm_page.c)",
     "clearing VPO_BUSY does not wake the threads asleep on the page (VPO_WANTED): they sleep for good"},
    {Mutant::kFirstPageLeaked, "first-page-leaked", "seed L371-379",
     "the retry after sleeping on a busy page below the first object leaves the first object's placeholder "
     "busy in place: every later fault on that page sleeps on it for good"},
    {Mutant::kLookupDoneMissing, "lookup-done-missing", "seed L423-427, L145-151",
     "the SIGBUS return past the end of a file skips vm_map_lookup_done: the map stays read-locked, and the "
     "next mmap, mprotect, fork or exit of that process waits for ever"},
    {Mutant::kVmWaitSkipped, "vm-wait-skipped", "seed L444-447",
     "no VM_WAIT when memory is severely short: the fault retries at once without waking the pageout daemon "
     "or waiting for it, spinning while the daemon, which only runs when woken, frees nothing"},
    {Mutant::kPagerErrorLeavesBusy, "pager-error-leaves-busy", "seed L612-619",
     "the pager's error path (an I/O error, or a page past the end of the file) neither frees nor unbusies "
     "its page: the page stays busy in its object, and every later fault on it sleeps for good"},
    {Mutant::kUnwireKeepsWiring, "unwire-keeps-wiring", "seed L1068-1072",
     "munlock clears the translation's wired bit but leaves the page wired: pageout can never take it, and "
     "wired pages pile up until nothing can be allocated"},
    {Mutant::kMprotectKeepsTimestamp, "mprotect-keeps-timestamp", "vm_map_protect, vm_map_unlock (7.0 vm_map.c)",
     "the mprotect's unlock does not bump the map's timestamp: a fault that unlocked the map for the pager "
     "sees no change at its re-lookup (L801) and maps the page with the protection it had before"},
    {Mutant::kQueueWithoutLock, "queue-without-lock", "seed L401-402",
     "the fault takes the page off its paging queue after dropping the page-queues lock: the pageout daemon "
     "and other faults race on the queue's links"},
    {Mutant::kPrefaultTakesBusy, "prefault-takes-busy", "vm_fault_prefault (seed L986-989)",
     "prefault maps a neighbour without checking it is idle and fully valid: a page being read in, or a COW "
     "copy being filled, is mapped and read before its bytes are there"},
    {Mutant::kPageoutNoRevalidate, "pageout-no-revalidate", "vm_pageout_fallback_object_lock (7.0 vm_pageout.c)",
     "after waiting for the object's lock with the page queues dropped, the daemon goes on with the page "
     "without checking it is still on the same queue in the same object: it may launder, cache or free a page "
     "that has moved"},
    {Mutant::kMsleepEarlyRelease, "msleep-early-release", "msleep (7.0 kern_synch.c)",
     "msleep releases its interlock before the sleeper is on the channel: a wakeup in between is lost, and "
     "the sleeper sleeps for good (the lock library's lost-wakeup window)"},
    {Mutant::kMprotectKeepsWrite, "mprotect-keeps-write", "vm_map_protect (7.0 vm_map.c 1562-1630)",
     "an mprotect to read-only lowers the entry's protection but leaves its translations writable (no "
     "pmap_protect): stores through them succeed while the mapping is read-only, and no fault ever sees it"},
};
static_assert(std::size(kMutants) == static_cast<std::size_t>(Mutant::kCount));

const MutantInfo& info(Mutant m) noexcept {
  const auto i = static_cast<std::size_t>(m);
  return i < std::size(kMutants) ? kMutants[i] : kMutants[0];
}

}  // namespace

const char* mutant_name(Mutant m) noexcept { return info(m).name; }
const char* mutant_lines(Mutant m) noexcept { return info(m).lines; }
const char* mutant_what(Mutant m) noexcept { return info(m).what; }

const char* fix_name(Fix f) noexcept {
  switch (f) {
    case Fix::kDeadObjectRetry: return "dead-object-retry";
    case Fix::kCollapseUnmaps: return "collapse-unmaps";
    case Fix::kSwapCopyKeepsResident: return "swap-copy-keeps-resident";
    case Fix::kForkWaitsForWiring: return "fork-waits-for-wiring";
    case Fix::kProtectCopiesWired: return "protect-copies-wired";
    case Fix::kQcollapseSkipsInvalid: return "qcollapse-skips-invalid";
    case Fix::kBypassUnmaps: return "bypass-unmaps";
    case Fix::kLentPageReadOnly: return "lent-page-read-only";
    case Fix::kCowfaultAfterBusy: return "cowfault-after-busy";
    case Fix::kCowfaultLeavesBusy: return "cowfault-leaves-busy";
    case Fix::kRenameSkipsLent: return "rename-skips-lent";
    case Fix::kCopyEntryDirties: return "copy-entry-dirties";
    case Fix::kCowCopyDirty: return "cow-copy-dirty";
    case Fix::kFaultKeepsWired: return "fault-keeps-wired";
    case Fix::kUnwireUnderQueues: return "unwire-under-queues";
    case Fix::kCowfaultKeepsValidity: return "cowfault-keeps-validity";
    case Fix::kWiredFaultWires: return "wired-fault-wires";
    case Fix::kCopyEntrySkipsPlaceholder: return "copy-entry-skips-placeholder";
    case Fix::kCount: break;
  }
  return "?";
}

const char* fix_what(Fix f) noexcept {
  switch (f) {
    case Fix::kDeadObjectRetry:
      return "seed L323: a fault that meets a backing object marked dead by a collapse in progress (asleep "
             "with both objects unlocked) fails with KERN_PROTECTION_FAILURE in 7.x, a spurious SIGSEGV; "
             "the fix pauses and retries the fault (later FreeBSD does)";
    case Fix::kCollapseUnmaps:
      return "vm_object_backing_scan frees a backing page the shadow already has, asserting it unmapped; a "
             "write fault that copied it and then failed its re-lookup (L810-820) leaves it mapped read-only, "
             "so 7.x frees a mapped page; the fix removes its mappings first";
    case Fix::kSwapCopyKeepsResident:
      return "swap_pager_copy (7.0) gives the object collapsed into the backing object's swap block wherever "
             "it has no block of its own, even under a valid resident page of its own (its comment says the "
             "source is thrown away there); once that page is clean and reclaimed, the next fault reads the "
             "older data back: the data oracle finds it (the default campaign with the fix off fails COW "
             "isolation in seconds, 7.0's page cache caching the clean page); the fix does what the "
             "comment says";
    case Fix::kProtectCopiesWired:
      return "mlock of a read-only private mapping wires the pages its chain has, the file's among them, with "
             "no copy (L309-310); 7.0's vm_map_protect then makes the user-wired copy-on-write entry read/write "
             "and copies nothing: a fork copies the wired entry from its first object alone (the seed falls "
             "back to backing objects only for a read-only entry, L1160-1173) and panics \"page missing\"; "
             "and an mprotect during the mlock, before vm_map_wire sets MAP_ENTRY_USER_WIRED, lets a store "
             "copy the page unwired under a wired translation, which the munlock then unwires; the fix, as "
             "later FreeBSD: vm_map_protect waits (\"vmmaps\") for such an entry being wired, and copies a "
             "user-wired copy-on-write entry's pages into its first object when it gains write "
             "(vm_fault_copy_entry's upgrade), wired and mapped writable, the entry no longer copy-on-write";
    case Fix::kForkWaitsForWiring:
      return "vm_map_wire (7.0) counts an entry wired, marks it in transition and unlocks the map to fault "
             "its pages in; vmspace_fork does not wait for entries in transition, so a fork in that window "
             "copies a wired entry with vm_fault_copy_entry whose pages are not resident or not valid yet "
             "(7.0 panics \"page missing\" or copies a page still being read), and the child's entry keeps "
             "the in-transition flag; the fix makes fork wait (\"vmmaps\") for such entries";
    case Fix::kQcollapseSkipsInvalid:
      return "vm_object_backing_scan's quick collapse (7.0, paging in progress) frees a backing page "
             "whenever the shadow has a page at that index, valid or not; a fault that read the page "
             "through the shadow unbusies it (mapped, seed L912, or not, on its way back to the start, "
             "L795-827) before it frees its invalid placeholder in the shadow (L159-163), so a fork "
             "collapsing the shadow in between frees the page and the only copy of its data; the fix "
             "leaves such a page alone, as FreeBSD 9.3's vm_object_backing_scan does (9.3 frees the "
             "page's swap slot before that test; the fix keeps it)";
    case Fix::kBypassUnmaps:
      return "vm_object_collapse's bypass (7.0) points a shadow past a backing object it covers without "
             "touching that object's pages; a write fault that copied a backing page into the shadow and "
             "then started over (the map re-lookup failed, L795-827) leaves its process a read-only "
             "translation of the backing page, which is then outside the process's chain: when the "
             "bypassed object goes, 7.0 frees a mapped page (vm_page_free_toq asserts it is not), and the "
             "process reads whatever the page holds next; the fix removes the mappings of the backing "
             "pages the shadow covers, as collapse-unmaps does before a collapse frees one (other processes' "
             "translations of those pages go too, and are faulted back in; wired ones stay)";
    case Fix::kLentPageReadOnly:
      return "socow_setup (7.0 uipc_cow.c) lends a page holding only the page queues and write-protects its "
             "mappings once; the seed copies a lent page on a write fault (L343-350) but a read fault enters "
             "it with the entry's protection (L873-891), writable on a writable entry, so the process's next "
             "store changes the bytes the socket is sending, with no fault and no copy; the fix drops write "
             "permission for a lent page in pmap_enter, under the page queues the loan takes too";
    case Fix::kCowfaultAfterBusy:
      return "the seed runs vm_page_cowfault on a lent page (L343-350) before its busy check (L368), so a "
             "write copies a page another fault holds busy while it maps it with the object unlocked "
             "(L887-891): vm_page_remove clears that fault's VPO_BUSY, and it maps the socket's page and "
             "wakes a page it no longer owns (\"page not busy\"); the fix checks busy first";
    case Fix::kCowfaultLeavesBusy:
      return "vm_page_cowfault (7.0 vm_page.c 1947-1955) waits for memory with the lent page back in its "
             "object and unbusy, then starts over whenever the lookup still finds it, though a fault may "
             "have busied it meanwhile and be mapping it with the object unlocked: vm_page_remove clears "
             "that fault's busy bit; the fix returns instead and the write fault retries, waiting for the "
             "page";
    case Fix::kRenameSkipsLent:
      return "the COW rename shortcut (seed L698-760) moves a backing page up into the top object when the "
             "backing object has no other user, lent or not; a lent page moved up is the socket's and the "
             "process's at once, mapped writable, so the process's stores change the bytes being sent "
             "(and with fix lent-page-read-only it is mapped read-only, so on an mlocked COW entry every "
             "store fails); the fix copies a lent page instead, deciding under the page queues the loan "
             "takes too";
    case Fix::kCopyEntryDirties:
      return "vm_fault_copy_entry (seed L1110-1130) leaves the child's copies of a wired entry clean; a "
             "clean page of a default object is one pageout frees as if zero-filled (7.0 vm_page_cache), "
             "so once the child unwires it the copied bytes are lost; the fix dirties them, as later "
             "FreeBSD does";
    case Fix::kCowCopyDirty:
      return "the seed's COW copy (L757-758) stays clean unless the fault is VM_FAULT_DIRTY and still "
             "writable at the end (L840-867); a wire fault, or a write fault whose re-lookup finds write "
             "permission gone (mprotect during the pager I/O, L837), leaves it clean while a collapse has "
             "already discarded the backing page it copied, and pageout frees a clean default page as if "
             "zero-filled: the process reads zeros or an older value; the fix dirties the copy at once "
             "(--mutant clean-cow-copy also turns the fix off)";
    case Fix::kFaultKeepsWired:
      return "a truncation leaves a wired page in its object, invalid (7.0 vm_object_page_remove); a fault "
             "that meets it reads it again, and when the pager fails (L612-619) or, below the first "
             "object, does not have it past the end of the file (L621-625), the seed frees it, and 7.0's "
             "vm_page_free_toq panics on a wired page (\"vm_page_free: freeing wired page\"); the fix "
             "frees it only if it is not wired, else leaves it in its object unbusied, as later FreeBSD "
             "does";
    case Fix::kUnwireUnderQueues:
      return "vm_fault_unwire (seed L1065-1073) finds each page with pmap_extract, then takes the page "
             "queues to unwire it; a write to a page lent to a send runs vm_page_cowfault in between, which "
             "moves the object's wirings to the copy and leaves the lent page only the loans' (7.0 "
             "vm_page.c), so the unwire takes a loan's wiring, the copy stays wired for good, and the "
             "loan's end panics (vm_page_unwire: \"invalid wire count\"); the fix looks the page up under "
             "the page queues";
    case Fix::kCowfaultKeepsValidity:
      return "vm_page_cowfault (7.0 vm_page.c) copies a lent page and marks the copy fully valid and dirty "
             "whatever the page held; a lent file page that a truncation left in its object is invalid "
             "(wired by the loan, vm_object_page_remove keeps it with valid = 0), so a write to it after "
             "the regrow (seed L343-350, before any validity test) brings the bytes from before the cut "
             "back as the file's; the fix makes the copy as valid as the page, so the fault's retry reads "
             "the rest from the pager";
    case Fix::kWiredFaultWires:
      return "a truncation unmaps a wired page and leaves it in its object, invalid (7.0 "
             "vm_object_page_remove); a read past the end through a wired private mapping whose first "
             "object is a shadow then faults on the wired entry, goes on below that page (fix "
             "fault-keeps-wired; 7.0 panics freeing it) and zero-fills a page in the shadow, which the "
             "seed maps wired without wiring it (pmap_enter's wired argument is the entry's, and only a "
             "wiring fault wires the page, L891-910); the munlock unwires every page it finds mapped "
             "(L1065-1073), that one too, and 7.0's vm_page_unwire panics (\"invalid wire count\"); the "
             "fix wires a page such a fault maps when it is not wired already (the wired page below stays "
             "wired, as one the munlock finds unmapped does); the model's own fix: later FreeBSD keeps "
             "the seed's shape here (PMAP_ENTER_WIRED without vm_page_wire), not checked further";
    case Fix::kCopyEntrySkipsPlaceholder:
      return "vm_fault_copy_entry (seed L1157-1176) copies a wired read-only entry page by page, falling "
             "back to backing objects, and takes the first page it finds; where a child shares a backing "
             "object with the entry since a fork and that object is the child's first object, a fault of "
             "the child leaves its placeholder there (busy, invalid, L423-442) while it reads the page "
             "below, and 7.0 copies the placeholder's stale bytes into the new child and calls them valid "
             "(the model panics \"page not valid\" instead: the placeholder's bytes are not defined); the "
             "fix passes over a page neither valid nor wired to the page below, as the model's "
             "vm_fault_copy_entry_upgrade does (the model's own fix: later FreeBSD's walk stops at the "
             "first page and copies its validity)";
    case Fix::kCount: break;
  }
  return "?";
}

using locking::MutexLock;

std::string VmConfig::validate() const {
  auto bad = [](const char* field, std::uint64_t v, const char* why) {
    return std::string(field) + "=" + std::to_string(v) + ": " + why;
  };
  if (page_size < 512 || page_size > (1u << 20) || (page_size & (page_size - 1)) != 0)
    return bad("page_size", page_size, "must be a power of two from 512 to 1048576");
  if (npages < 16 || npages > (1u << 22))
    return bad("npages", npages, "must be from 16 to 4194304");
  if (static_cast<std::uint64_t>(npages) * page_size > (std::uint64_t{8} << 30))
    return bad("npages", npages, "times page_size exceeds 8 GiB of simulated memory");
  if (io_error_ppm > 1000000) return bad("io_error_ppm", io_error_ppm, "must be at most 1000000");
  if (io_latency_us > 1000000) return bad("io_latency_us", io_latency_us, "must be at most 1000000");
  if (!(free_reserved < free_severe && free_severe <= free_min && free_min <= free_target &&
        free_target < npages))
    return "thresholds must satisfy free_reserved < free_severe <= free_min <= free_target < npages"
           " (got " + std::to_string(free_reserved) + ", " + std::to_string(free_severe) + ", " +
           std::to_string(free_min) + ", " + std::to_string(free_target) + ", " +
           std::to_string(npages) + ")";
  return "";
}

namespace {

VmConfig with_defaults(VmConfig c) {
  const std::uint32_t unit = c.npages / 128 > 2 ? c.npages / 128 : 2;
  if (c.free_reserved == 0) c.free_reserved = unit;
  if (c.free_severe == 0) c.free_severe = c.free_reserved + unit;
  if (c.free_min == 0) c.free_min = c.free_severe + 2 * unit;
  if (c.free_target == 0) c.free_target = c.free_min + 4 * unit;
  return c;
}

}  // namespace

Vm::Vm(const VmConfig& config) : config_(with_defaults(config)) {
  if (std::string err = config_.validate(); !err.empty())
    throw std::invalid_argument("VmConfig: " + err);
  declare_vm_lock_order();
  locking::set_msleep_early_release(config_.mutant == Mutant::kMsleepEarlyRelease);
  io_error_ppm_.store(config_.io_error_ppm, std::memory_order_relaxed);
  // --mutant clean-cow-copy is the seed's clean COW copy: fix cow-copy-dirty off.
  fixes_.store(config_.mutant == Mutant::kCleanCowCopy
                   ? config_.fixes & ~(1u << static_cast<unsigned>(Fix::kCowCopyDirty))
                   : config_.fixes,
               std::memory_order_relaxed);
  memory_ = std::make_unique<std::byte[]>(std::size_t{config_.npages} * config_.page_size);  // zeroed
  pages_ = std::make_unique<Page[]>(config_.npages);
  MutexLock f(free_mtx);
  for (std::uint32_t i = 0; i < config_.npages; ++i) {
    Page& p = pages_[i];
    p.vm = this;
    p.index = i;
    p.data = memory_.get() + std::size_t{i} * config_.page_size;
    p.flags = kPgZero;  // fresh memory is zero: prezeroed pages go at the tail
    p.queue = PageQueue::kFree;
    free_list.push_tail(&p);
  }
  free_count.store(config_.npages, std::memory_order_relaxed);
}

void Vm::pageout_scan_end() {
  if (scans_running_.fetch_sub(1) != 1) return;
  std::vector<Object*> dead;
  {
    std::lock_guard<std::mutex> g(graveyard_mu_);
    dead.swap(graveyard_);
  }
  for (Object* o : dead) delete o;
}

void Vm::defer_free(Object* o) {
  std::lock_guard<std::mutex> g(graveyard_mu_);
  graveyard_.push_back(o);
}

Vm::~Vm() {
  for (Object* o : graveyard_) delete o;
  if (const auto n = live_objects.load(); n != 0)
    std::fprintf(stderr, "faultline: Vm destroyed with %lld live object(s)\n", static_cast<long long>(n));
}

std::uint32_t Vm::prezero_free_pages(std::uint32_t n) {
  MutexLock f(free_mtx);
  std::uint32_t done = 0;
  // Unzeroed pages are at the head; zero them and move them to the tail.
  for (std::size_t scanned = free_list.count; scanned != 0 && done < n; --scanned) {
    Page* p = free_list.head;
    if ((p->flags & kPgZero) != 0) break;
    std::memset(p->data, 0, config_.page_size);
    p->flags |= kPgZero;
    free_list.unlink(p);
    free_list.push_tail(p);
    ++done;
  }
  return done;
}

std::uint32_t Vm::draw_ppm() noexcept {
  // splitmix64 of (seed, sequence number)
  std::uint64_t z = config_.seed + 0x9E3779B97F4A7C15ull * (draw_seq_.fetch_add(1) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<std::uint32_t>(z % 1000000);
}

}  // namespace faultline::vm
