// The page fault, modelled on the seed (FreeBSD 7 vm_fault.c).  "seed Lnnn"
// points into ../shared/reference/vm_fault.c.freebsd7.txt.
//
// The fault holds a changing set of locks (the map shared, the vnode shared,
// the current object, sometimes the first object too), which Clang's static
// analysis cannot follow; the functions here are excluded from it and rely on
// the run-time checker instead: every lock is a locking/ lock, every object
// lock carries its object's chain key (object_order_key: the checker reports
// a chain locked bottom-up), and ownership is asserted on entry to every
// helper.
#include "core/fault.h"

#include <cstdio>
#include <cstdlib>

#include "core/pager.h"
#include "core/vm.h"
#include "locking/kassert.h"

namespace faultline::vm {

using locking::MutexLock;

namespace {

constexpr int kReadAhead = 8;                                 // VM_FAULT_READ_AHEAD
constexpr int kReadBehind = 7;                                // VM_FAULT_READ_BEHIND
constexpr int kFaultRead = kReadAhead + kReadBehind + 1;      // VM_FAULT_READ
constexpr int kPrefaultBack = 4, kPrefaultForward = 4;        // PFBAK, PFFOR

struct FaultState {
  Page* m = nullptr;
  Object* object = nullptr;
  Pindex pindex = 0;
  Page* first_m = nullptr;
  Object* first_object = nullptr;
  Pindex first_pindex = 0;
  Map* map = nullptr;
  MapEntry* entry = nullptr;
  bool lookup_still_valid = false;
  Vnode* vp = nullptr;
  // The entry's read-ahead inputs, taken under the map lock at lookup: a
  // second pager call further down the chain runs with the map unlocked,
  // when madvise or a clip may change them (and munmap free the entry).
  Behavior behavior = Behavior::kNormal;
  std::uint64_t entry_start = 0, entry_end = 0;
  Pindex lastr = 0;
  // The first object's page was found resident (invalid), not allocated by
  // this fault: a wired page a truncation or an unmap left.  Others write
  // its flags under the page queues meanwhile (an unwire, a loan's end), so
  // the zero-fill reads them under the page queues too.
  bool first_m_resident = false;
};

// seed L135: the page is no longer needed: unbusy it and let pageout have it.
void release_page(FaultState& fs) FL_NO_THREAD_SAFETY_ANALYSIS {
  fs.object->mtx.assert_owned();
  page_wakeup(fs.m);
  {
    MutexLock pq(fs.m->vm->page_queues);
    page_deactivate(fs.m);
  }
  fs.m = nullptr;
}

// seed L612-625: the page the pager could not fill goes.  A wired one is a
// page a truncation left in its object, invalid: 7.0 frees it all the same
// and panics in vm_page_free_toq; fix fault-keeps-wired leaves it there,
// unbusied (on no queue, as a wired page is).  Requires: its object and
// the page queues locked.
void free_unless_wired(Page* m) FL_NO_THREAD_SAFETY_ANALYSIS {
  Vm& vm = *m->vm;
  if (m->wire_count != 0 && vm.fix(Fix::kFaultKeepsWired)) {
    vm.counters().bump(vm.counters().fault_kept_wired);
    page_wakeup(m);
    return;
  }
  page_free(m);
}

// Leaves the backing object the search stopped in (its pip dropped, its lock
// released) and continues with the first object's page: seed L651-659 and
// L770-779.  `lock_first`: take the first object's lock (not already held).
void back_to_first_object(FaultState& fs, bool lock_first) FL_NO_THREAD_SAFETY_ANALYSIS {
  fs.object->mtx.assert_owned();
  object_pip_wakeup(*fs.object);
  fs.object->mtx.unlock();
  fs.object = fs.first_object;
  fs.pindex = fs.first_pindex;
  fs.m = fs.first_m;
  if (lock_first) fs.object->mtx.lock();
}

// seed L145.
void unlock_map(FaultState& fs) FL_NO_THREAD_SAFETY_ANALYSIS {
  if (fs.lookup_still_valid) {
    map_lookup_done(*fs.map);
    fs.lookup_still_valid = false;
  }
}

void unlock_vnode(FaultState& fs) FL_NO_THREAD_SAFETY_ANALYSIS {
  if (fs.vp != nullptr) {
    fs.vp->lock.sunlock();
    fs.vp = nullptr;
  }
}

// Frees the placeholder page left busy in the first object while the search
// went down the chain.  A wired one (only fix protect-copies-wired makes
// one: its copy of a wired page a truncation left invalid) is left there,
// unbusied, as later FreeBSD's fault_page_free leaves a wired page.
// Requires: nothing held.
void free_first_m(FaultState& fs) FL_NO_THREAD_SAFETY_ANALYSIS {
  fs.first_object->mtx.lock();
  bool wired = false;
  {
    MutexLock pq(fs.first_object->vm.page_queues);
    wired = fs.first_m->wire_count != 0 && fs.first_object->vm.fix(Fix::kProtectCopiesWired);
    if (!wired) page_free(fs.first_m);
  }
  if (wired) page_wakeup(fs.first_m);
  object_pip_wakeup(*fs.first_object);
  fs.first_object->mtx.unlock();
  fs.first_m = nullptr;
}

// seed L154: drop everything the fault holds.  Requires: fs.object locked.
void unlock_and_deallocate(FaultState& fs) FL_NO_THREAD_SAFETY_ANALYSIS {
  fs.object->mtx.assert_owned();
  object_pip_wakeup(*fs.object);
  fs.object->mtx.unlock();
  if (fs.object != fs.first_object) free_first_m(fs);
  object_deallocate(fs.first_object);
  unlock_map(fs);
  unlock_vnode(fs);
}

// vnode_pager_lock: if a vnode object is in first_object's chain, lock its
// vnode shared (map -> vnode -> object: the object is unlocked around it) and
// return it.  Requires: first_object locked; returns with it locked.
Vnode* vnode_pager_lock(Object* first_object) FL_NO_THREAD_SAFETY_ANALYSIS {
  first_object->mtx.assert_owned();
  Object* o = first_object;
  while (o != nullptr && o->type != ObjectType::kVnode) {
    Object* backing = o->backing_object;
    if (backing != nullptr) backing->mtx.lock();
    if (o != first_object) o->mtx.unlock();
    o = backing;
  }
  if (o == nullptr) return nullptr;
  Vnode* vp = (o->flags & kObjDead) != 0 ? nullptr : static_cast<Vnode*>(o->handle);
  if (o != first_object) o->mtx.unlock();
  if (vp == nullptr) return nullptr;
  first_object->mtx.unlock();
  vp->lock.slock();
  first_object->mtx.lock();
  return vp;
}

// seed L1214 (vm_fault_additional_pages): around m, allocate busy pages the
// pager says it also has, stopping at resident ones.  Returns the count in
// marray and m's index in *reqpage.  Requires: m's object locked.  Never
// sleeps.
int additional_pages(Page* m, int rbehind, int rahead, Page** marray, int* reqpage)
    FL_NO_THREAD_SAFETY_ANALYSIS {
  Object& object = *m->object;
  object.mtx.assert_owned();
  const Pindex pindex = m->pindex;
  int cbehind = 0, cahead = 0;
  if (!pager_has_page(object, pindex, &cbehind, &cahead)) return 0;
  if (cbehind == 0 && cahead == 0) {
    *reqpage = 0;
    marray[0] = m;
    return 1;
  }
  if (rahead > cahead) rahead = cahead;
  if (rbehind > cbehind) rbehind = cbehind;
  int i = 0;
  if (pindex > 0) {
    Pindex startpindex = rbehind > static_cast<int>(pindex) ? 0 : pindex - static_cast<Pindex>(rbehind);
    // Stop behind at the nearest resident page.
    auto it = object.pages.find(pindex);
    if (it != object.pages.begin()) {
      Pindex prev = std::prev(it)->first;
      if (prev >= startpindex) startpindex = prev + 1;
    }
    // Allocate from pindex-1 down; on failure keep the ones made so far,
    // moved to the front of the array.
    for (Pindex t = pindex; t > startpindex; --t, ++i) {
      Page* rtm = page_alloc(object, t - 1, kAllocNormal | kAllocIfNotCached);
      if (rtm == nullptr) {
        for (int j = 0; j < i; ++j) marray[j] = marray[j + static_cast<int>(t - startpindex)];
        break;
      }
      marray[t - 1 - startpindex] = rtm;
    }
  }
  marray[i] = m;
  *reqpage = i;
  ++i;
  Pindex t = pindex + 1;
  Pindex endpindex = t + static_cast<Pindex>(rahead);
  auto it = object.pages.upper_bound(pindex);
  if (it != object.pages.end() && it->first < endpindex) endpindex = it->first;
  if (endpindex > object.size) endpindex = object.size;
  for (; t < endpindex; ++t, ++i) {
    Page* rtm = page_alloc(object, t, kAllocNormal | kAllocIfNotCached);
    if (rtm == nullptr) break;
    marray[i] = rtm;
  }
  return i;
}

// seed L932 (vm_fault_prefault): map up to PFBAK + PFFOR resident, valid,
// unbusy neighbours read-only, looking down the chain of default objects.
// Requires: the map share-locked (entry stable), nothing else.
void prefault(Pmap& pmap, std::uint64_t addra, const MapEntry& entry) FL_NO_THREAD_SAFETY_ANALYSIS {
  const std::uint64_t ps = pmap.vm.page_size();
  static constexpr int kOrder[] = {-1, 1, -2, 2, -3, 3, -4, 4};
  std::uint64_t starta = addra >= kPrefaultBack * ps ? addra - kPrefaultBack * ps : 0;
  if (starta < entry.start) starta = entry.start;
  // Which neighbours have no translation: one look under the pmap lock
  // instead of the seed's pmap_is_prefaultable per address (the answer is
  // rechecked by pmap_enter_quick, which maps only where nothing is).
  bool candidate[8] = {};
  {
    MutexLock pl(pmap.mtx);
    for (int k = 0; k < 8; ++k) {
      const int d = kOrder[k];
      if (d < 0 && addra < static_cast<std::uint64_t>(-d) * ps) continue;
      const std::uint64_t addr = addra + static_cast<std::int64_t>(d) * static_cast<std::int64_t>(ps);
      if (addr > addra + kPrefaultForward * ps || addr < starta || addr >= entry.end) continue;
      candidate[k] = pmap.find(addr) == nullptr;
    }
  }
  for (int k = 0; k < 8; ++k) {
    if (!candidate[k]) continue;
    const std::uint64_t addr =
        addra + static_cast<std::int64_t>(kOrder[k]) * static_cast<std::int64_t>(ps);
    Pindex pindex = (addr - entry.start) / ps + entry.offset;
    Object* lobject = entry.object;
    lobject->mtx.lock();
    Page* m = nullptr;
    while ((m = page_lookup(*lobject, pindex)) == nullptr && lobject->type == ObjectType::kDefault &&
           lobject->backing_object != nullptr) {
      Object* backing = lobject->backing_object;
      pindex += lobject->backing_offset;
      backing->mtx.lock();
      lobject->mtx.unlock();
      lobject = backing;
    }
    if (m == nullptr) {
      // Give up at the first neighbour not in memory.
      lobject->mtx.unlock();
      break;
    }
    // Busy first: the seed (L986) reads valid without checking VPO_BUSY,
    // but a COW fault fills a VPO_BUSY page and sets its valid bits holding
    // only the backing object's lock (L757-758).  A page seen unbusy under
    // its own object's lock is filled; later FreeBSD skips busy pages here
    // too.
    if (((m->oflags & kVpoBusy) == 0 && m->busy == 0 && m->fully_valid()) ||
        pmap.vm.config().mutant == Mutant::kPrefaultTakesBusy) {
      MutexLock pq(pmap.vm.page_queues);
      pmap_enter_quick(pmap, addr, m, entry.protection);
      pmap.vm.counters().bump(pmap.vm.counters().prefault_entered);
    }
    lobject->mtx.unlock();
  }
}

}  // namespace

// A harness failure, never a user error: report with every held lock, abort.
[[noreturn]] static void fatal(const char* what, std::uint64_t va) {
  std::fprintf(stderr, "panic: vm_fault: %s, addr 0x%llx\n%s", what,
               static_cast<unsigned long long>(va), locking::dump_all_locks().c_str());
  std::abort();
}

Kern vm_fault(Map& map, std::uint64_t vaddr, std::uint8_t fault_type, unsigned fault_flags)
    FL_NO_THREAD_SAFETY_ANALYSIS {
  Vm& vm = map.vm;
  Counters& cnt = vm.counters();
  const Mutant mutant = vm.config().mutant;
  const std::uint32_t ps = vm.page_size();
  vaddr &= ~static_cast<std::uint64_t>(ps - 1);
  // seed L309-310 sets fault_type to a wired entry's protection, and the
  // change outlives RetryFault (the label is at L226, before the lookup at
  // L233) and reaches the re-lookup at L802: a fault retried after an
  // mprotect to read-only of that entry looks up for write.  Counted where
  // that refuses what the fault itself asked.
  const std::uint8_t asked_type = fault_type;
  const auto wired_type_refused = [&](Kern r) {
    if (r == Kern::kProtectionFailure && fault_type != asked_type) cnt.bump(cnt.fault_wired_type_refused);
  };
  bool hardfault = false;
  cnt.bump(cnt.v_vm_faults);
  auto fail = [&](Kern k) {
    cnt.bump(cnt.v_fault_errors);
    return k;
  };

  // Retries for want of a free page.  Each follows a VM_WAIT that sleeps
  // until the daemon has freed pages (or returns at once when memory is
  // above free_min but no page could be had): a few tens per fault at most
  // (the largest seen: 128..255, scenario fork-tree; 16..127 elsewhere,
  // fibers and threads).  Ten thousand means the fault spins instead of
  // sleeping (--mutant vm-wait-skipped): a livelock, reported as one.
  constexpr unsigned kNoFreePageSpinLimit = 10000;
  unsigned no_free_page_retries = 0;
  for (;;) {  // RetryFault
    FaultState fs;
    fs.map = &map;
    // seed L233-272: find the object and offset to start from.
    Lookup lk;
    bool overridden = false;  // the lookup for a user wire took the maximum protection (L249-271)
    Kern result = map_lookup(map, vaddr, fault_type, &lk);
    if (result != Kern::kSuccess) {
      wired_type_refused(result);
      if (result != Kern::kProtectionFailure || (fault_flags & kFaultWireMask) != kFaultUserWire) {
        cnt.bump(cnt.fault_lookup_errors);
        return fail(result);  // (no stack to grow in this model)
      }
      cnt.bump(cnt.fault_wire_override);
      // A user wire of a read-only COW segment: COW it now, against the
      // maximum protection, or the wirer could never write it.
      result = map_lookup(map, vaddr, kProtRead | kProtWrite | kProtOverrideWrite, &lk);
      if (result != Kern::kSuccess) return fail(result);
      overridden = true;
      if ((lk.entry->protection & kProtWrite) == 0 && vm.config().mutant != Mutant::kWireKeepsMaxWrite)
        lk.entry->max_protection.fetch_and(static_cast<std::uint8_t>(~kProtWrite),
                                           std::memory_order_relaxed);
    }
    fs.entry = lk.entry;
    fs.first_object = lk.object;
    fs.first_pindex = lk.pindex;
    std::uint8_t prot = lk.prot;
    bool wired = lk.wired;  // the re-lookup after the pager refreshes it (seed L802-803)
    const std::uint32_t map_generation = map.timestamp;
    if ((fs.entry->eflags & kEntryNofault) != 0) fatal("fault on nofault entry", vaddr);
    fs.behavior = fs.entry->behavior;
    fs.entry_start = fs.entry->start;
    fs.entry_end = fs.entry->end;
    fs.lastr = fs.entry->lastr.load(std::memory_order_relaxed);

    // seed L293-307: a reference keeps the first object alive once the map is
    // unlocked; paging in progress keeps it from being truncated under us.
    fs.first_object->mtx.lock();
    object_reference_locked(*fs.first_object);
    fs.vp = vnode_pager_lock(fs.first_object);
    object_pip_add(*fs.first_object, 1);
    fs.lookup_still_valid = true;
    if (wired) fault_type = prot;
    fs.first_m = nullptr;

    // The search down the chain for the page.
    fs.object = fs.first_object;
    fs.pindex = fs.first_pindex;
    bool retry = false;
    for (;;) {
      // seed L323: the object is dead.  Short of termination (which no
      // fault can race: it holds a reference on the first object, and that
      // one on the chain below), a collapse in progress marked it, and
      // sleeps with it unlocked (vm_object_backing_scan's "vmocol",
      // swap_pager_copy waiting for memory).  7.x fails the fault: a
      // spurious SIGSEGV.  Fix dead-object-retry (later FreeBSD's): if it
      // is not a terminated object, pause and retry.
      if ((fs.object->flags & kObjDead) != 0 && mutant != Mutant::kNoDeadCheck) {
        cnt.bump(cnt.fault_dead_objects);
        const bool terminated = fs.object->type == ObjectType::kDead;
        unlock_and_deallocate(fs);
        if (terminated || !vm.fix(Fix::kDeadObjectRetry)) return fail(Kern::kProtectionFailure);
        locking::pause(&map, "vmf_de", 1000);
        cnt.retry(Retry::kDeadObject);
        retry = true;
        break;
      }
      fs.m = page_lookup(*fs.object, fs.pindex);
      bool readrest = false;
      if (fs.m != nullptr) {
        // Locked here, not by unique_lock's constructor, so that the lock
        // profile and the checker name this line as the acquisition site.
        vm.page_queues.lock();
        std::unique_lock<locking::Mutex> pq(vm.page_queues, std::adopt_lock);
        // seed L343-350: page-based COW (a loaned page) in the top object:
        // copy it (vm_page_cowfault) and start over.  Fix
        // cowfault-after-busy: the seed does this before its busy check
        // (L368), so it can replace a lent page that another fault holds
        // busy while it maps it with the object unlocked (L887-891):
        // vm_page_remove clears that fault's VPO_BUSY, and the fault maps
        // the socket's page into its process and wakes a page it no longer
        // owns.  The harness found it (scenario mixed: "page not busy" at
        // the wakeup).  With the fix the busy check comes first, and the
        // copy waits for the page to be idle.
        const auto lent_page_written = [&] {
          if (fs.m->cow == 0 || (fault_type & kProtWrite) == 0 || fs.object != fs.first_object) return false;
          page_cowfault(fs.m);
          pq.unlock();
          unlock_and_deallocate(fs);
          cnt.retry(Retry::kCowLoan);
          return true;
        };
        const bool busy_first = vm.fix(Fix::kCowfaultAfterBusy);
        if (!busy_first && lent_page_written()) {
          retry = true;
          break;
        }
        // seed L368-400: busy either way (VPO_BUSY or I/O): drop everything,
        // sleep on the page if it is still the page there, and start over.
        if (fs.m->any_busy() && mutant != Mutant::kBusyPageTaken) {
          pq.unlock();
          fs.object->mtx.unlock();
          if (fs.object != fs.first_object && mutant != Mutant::kFirstPageLeaked) free_first_m(fs);
          unlock_map(fs);
          unlock_vnode(fs);
          fs.object->mtx.lock();
          if (fs.m == page_lookup(*fs.object, fs.pindex)) page_sleep_if_busy(fs.m, true, "vmpfw");
          object_pip_wakeup(*fs.object);
          fs.object->mtx.unlock();
          cnt.bump(cnt.v_intrans);
          object_deallocate(fs.first_object);
          cnt.retry(Retry::kBusyPage);
          retry = true;
          break;
        }
        if (busy_first && lent_page_written()) {
          retry = true;
          break;
        }
        // seed L401-416: ours now; off its queue, busy, and if not fully
        // valid, read the rest.
        if (mutant == Mutant::kQueueWithoutLock) {
          pq.unlock();
          pageq_remove(fs.m);
        } else {
          pageq_remove(fs.m);
          pq.unlock();
        }
        page_busy(fs.m);
        if (!fs.m->fully_valid()) {
          cnt.bump(cnt.fault_readrest);
          readrest = true;
          if (fs.object == fs.first_object) fs.first_m_resident = true;
        } else {
          cnt.bump(cnt.fault_resident);
          break;  // found
        }
      }
      const bool trypager =
          fs.object->type != ObjectType::kDefault && ((fault_flags & kFaultWireMask) == 0 || wired);
      if (!readrest && (trypager || fs.object == fs.first_object)) {
        // seed L423-427: past the end of the object (truncated): SIGBUS.
        if (fs.pindex >= fs.object->size && mutant != Mutant::kNoEofCheck) {
          cnt.bump(cnt.fault_past_eof);
          if (mutant == Mutant::kLookupDoneMissing) fs.lookup_still_valid = false;  // the map stays locked
          unlock_and_deallocate(fs);
          return fail(Kern::kProtectionFailure);
        }
        // seed L433-447: allocate, unless memory is severely short.
        fs.m = nullptr;
        if (!vm.count_severe()) {
          fs.m = page_alloc(*fs.object, fs.pindex,
                            (fs.vp != nullptr || fs.object->backing_object != nullptr) ? kAllocNormal
                                                                                       : kAllocZero);
        } else if (object_has_cached(*fs.object, fs.pindex)) {
          // The page is in memory, cached; the seed waits all the same
          // (its lookup at L331 does not see cached pages).  Counted only.
          cnt.bump(cnt.fault_severe_cached);
        }
        if (fs.m == nullptr) {
          unlock_and_deallocate(fs);
          if (mutant != Mutant::kVmWaitSkipped) vm_wait(vm, "pfault");
          cnt.retry(Retry::kNoFreePage);
          if (++no_free_page_retries == kNoFreePageSpinLimit)
            fatal("livelock: one fault retried 10000 times for want of a free page (it spins, L444-447)", vaddr);
          retry = true;
          break;
        }
        // L448: a cached page given back by the allocation, still valid.
        if (fs.m->fully_valid()) {
          cnt.bump(cnt.fault_alloc_valid);
          break;
        }
      }

      // readrest: seed L462-631, ask the pager.
      if (trypager) {
        int behind = 0, ahead = 0;
        // Departure: the seed reads (and below, writes) the entry here even
        // when an earlier pager call in this fault unlocked the map; the
        // model uses what it read under the map lock at lookup, and updates
        // lastr only while the map is locked.  (TSan caught madvise writing
        // the behaviour meanwhile.)
        const Behavior behavior = fs.behavior;
        if (behavior != Behavior::kRandom) {
          behind = static_cast<int>((vaddr - fs.entry_start) / ps);
          if (behind > kReadBehind) behind = kReadBehind;
          ahead = static_cast<int>((fs.entry_end - vaddr) / ps) - 1;
          if (ahead > kReadAhead) ahead = kReadAhead;
        }
        // Sequential access: cache or deactivate the pages behind us in the
        // first object (they will not be wanted again soon).
        const Pindex lastr = fs.lookup_still_valid ? fs.entry->lastr.load(std::memory_order_relaxed) : fs.lastr;
        const bool sequential =
            behavior == Behavior::kSequential ||
            (behavior != Behavior::kRandom && fs.pindex >= lastr && fs.pindex < lastr + kFaultRead);
        bool first_locked_here = false;
        if (sequential && (fs.first_object == fs.object ||
                           (first_locked_here = fs.first_object->mtx.try_lock()))) {
          const Pindex firstpindex =
              fs.first_pindex < 2 * kFaultRead ? 0 : fs.first_pindex - 2 * kFaultRead;
          MutexLock pq(vm.page_queues);
          for (Pindex t = fs.first_pindex; t > firstpindex; --t) {
            Page* mt = page_lookup(*fs.first_object, t - 1);
            if (mt == nullptr) break;
            // Busy first (the seed reads valid first): a busy page may be a
            // COW copy that another fault fills and validates holding only
            // the backing object's lock (L757-758); TSan caught that read.
            // Busy pages are skipped either way.
            if (mt->any_busy()) continue;
            if (!mt->fully_valid()) break;
            if (mt->hold_count != 0 || mt->wire_count != 0) continue;
            cnt.bump(cnt.fault_cached_behind);
            pmap_remove_all(mt);
            if (mt->is_dirty())
              page_deactivate(mt);
            else
              page_cache(mt);
          }
          ahead += behind;
          behind = 0;
        }
        if (first_locked_here) fs.first_object->mtx.unlock();

        // seed L545-566: cluster with busy neighbours, then let go of the map
        // and call the pager; the object stays referenced and the pages busy.
        Page* marray[kFaultRead];
        int reqpage = 0;
        const int faultcount = additional_pages(fs.m, behind, ahead, marray, &reqpage);
        if (fs.lookup_still_valid)
          fs.entry->lastr.store(fs.pindex + static_cast<Pindex>(faultcount) - static_cast<Pindex>(behind),
                                std::memory_order_relaxed);
        unlock_map(fs);
        const PagerResult rv = faultcount != 0 ? pager_get_pages(*fs.object, marray, faultcount, reqpage)
                                               : PagerResult::kFail;
        if (rv == PagerResult::kOk) {
          // seed L579-583: the pager may have replaced the page; look again.
          if (mutant != Mutant::kNoPagerRelookup) fs.m = page_lookup(*fs.object, fs.pindex);
          if (fs.m == nullptr) {
            unlock_and_deallocate(fs);
            cnt.retry(Retry::kPagerPageGone);
            retry = true;
            break;
          }
          hardfault = true;
          break;  // found
        }
        // seed L601-620: an I/O error or a page the pager cannot have.
        if (rv == PagerResult::kError || rv == PagerResult::kBad) {
          if (mutant != Mutant::kPagerErrorLeavesBusy) {
            MutexLock pq(vm.page_queues);
            free_unless_wired(fs.m);
          }
          fs.m = nullptr;
          unlock_and_deallocate(fs);
          cnt.bump(cnt.fault_pager_errors);
          return fail(rv == PagerResult::kError ? Kern::kFailure : Kern::kProtectionFailure);
        }
        cnt.bump(cnt.fault_pager_absent);
        // seed L621-630: not here below the top object: free our page and go
        // on down.  In the top object the busy page stays, so nobody else
        // inserts one there meanwhile.
        if (fs.object != fs.first_object) {
          MutexLock pq(vm.page_queues);
          free_unless_wired(fs.m);
          fs.m = nullptr;
        }
      }

      // seed L637-682: on to the backing object, locked before this one is
      // unlocked; at the end of the chain, zero-fill in the first object.
      if (fs.object == fs.first_object) fs.first_m = fs.m;
      fs.pindex += fs.object->backing_offset;
      Object* next = fs.object->backing_object;
      if (next == nullptr) {
        if (fs.object != fs.first_object) back_to_first_object(fs, true);
        fs.first_m = nullptr;
        // The seed reads PG_ZERO with the page queues unlocked (L665).  A
        // page this fault allocated is busy, on no queue and unmapped: its
        // flags are ours.  A resident one may be wired, and lent: a loan's
        // end unwires it and clears PG_WINATCFLS under the page queues
        // (TSan caught the race in scenario truncate), so there the model
        // takes them.  Consumed: from now on the page holds data, not
        // known zeros.
        const auto take_zero = [&] {
          const bool zeroed = (fs.m->flags & kPgZero) != 0;
          fs.m->flags &= static_cast<std::uint8_t>(~kPgZero);
          return zeroed;
        };
        bool prezeroed;
        if (fs.first_m_resident) {
          MutexLock pq(vm.page_queues);
          prezeroed = take_zero();
        } else {
          prezeroed = take_zero();
        }
        if (!prezeroed)
          page_zero(fs.m);
        else
          cnt.bump(cnt.v_ozfod);
        cnt.bump(cnt.v_zfod);
        fs.m->valid = kPageBitsAll;
        // A resident page of a file past its end (a wired one a truncation
        // left, invalid): the EOF test (L423) is only for pages not
        // resident, and the pager does not have it, so it is zero-filled
        // here and mapped; no SIGBUS.
        if (fs.object->type == ObjectType::kVnode && fs.pindex >= fs.object->size)
          cnt.bump(cnt.fault_past_eof_zero_fill);
        break;  // found
      }
      FL_KASSERT(next != fs.object, "object loop");
      cnt.bump(cnt.fault_chain_steps);
      next->mtx.lock();
      object_pip_add(*next, 1);
      if (fs.object != fs.first_object) object_pip_wakeup(*fs.object);
      fs.object->mtx.unlock();
      fs.object = next;
    }
    if (retry) continue;

    // PAGE HAS BEEN FOUND (seed L685); fs.object is locked, fs.m busy.
    FL_KASSERT((fs.m->oflags & kVpoBusy) != 0, "vm_fault: not busy after main loop");

    // seed L698-784: the page lives in a backing object.
    if (fs.object != fs.first_object) {
      if ((fault_type & kProtWrite) != 0) {
        // Writing: the first object needs its own copy.  If the backing
        // object has no other user and no name, move the page up instead.
        // Fix rename-skips-lent: not a lent page.  Moved up, it would be
        // the page a socket is sending and the process's page at this
        // address at once (the seed maps it writable here; with
        // lent-page-read-only it is mapped read-only, and on an mlocked COW
        // entry, which refuses write faults, every later store failed).
        // The harness caught it (scenario mixed with mlock and send,
        // fibers).  Decided under the page queues, which a loan takes too.
        bool first_locked = false;
        bool renamed = false;
        if (fs.object->shadow_count == 1 && fs.object->ref_count == 1 && fs.object->handle == nullptr &&
            (fs.object->type == ObjectType::kDefault || fs.object->type == ObjectType::kSwap) &&
            (first_locked = fs.first_object->mtx.try_lock()) &&
            fs.object == fs.first_object->backing_object) {
          MutexLock pq(vm.page_queues);
          if (fs.m->cow == 0 || !vm.fix(Fix::kRenameSkipsLent)) {
            page_free(fs.first_m);
            page_rename(fs.m, *fs.first_object, fs.first_pindex);
            renamed = true;
          } else {
            cnt.bump(cnt.rename_lent_copied);
          }
        }
        if (renamed) {
          page_busy(fs.m);
          fs.first_m = fs.m;
          fs.m = nullptr;
          cnt.bump(cnt.v_cow_optim);
        } else {
          // A file page (a private mapping's backing page) may be mapped
          // writable by a shared mapping of the file meanwhile: stores land
          // during the copy, which takes each word as it was before or
          // after one (the harness's TSan run of private-file caught the
          // plain memcpy racing the truncator's store).  An anonymous
          // backing page is mapped read-only (COW) everywhere.
          if (fs.object->type == ObjectType::kVnode)
            page_copy_mapped(fs.m, fs.first_m);
          else
            page_copy(fs.m, fs.first_m);
          fs.first_m->valid = kPageBitsAll;
          cnt.bump(cnt.fault_cow_copies);
        }
        if (fs.m != nullptr) release_page(fs);
        back_to_first_object(fs, !first_locked);
        // Fix cow-copy-dirty: the copy is dirty from birth.  The seed leaves it
        // clean unless the fault is VM_FAULT_DIRTY and still writable at
        // the end (L840-867), but a clean page of an anonymous object
        // without swap is one pageout frees as if zero-filled (7.x
        // vm_page_cache's "hypothesis"), while collapse has already
        // discarded the backing page it copied (the top object "has" the
        // page).  Two races leave it clean: a wire fault (not
        // VM_FAULT_DIRTY), and a write fault whose re-lookup finds write
        // permission gone (mprotect during the pager I/O, L837) and maps
        // the copy read-only.  The harness's data oracle caught both
        // (scenarios mixed and wiring).  vm_page_rename dirties a page it
        // moves for the same reason; the rename branch gets it from there.
        if (vm.fix(Fix::kCowCopyDirty)) page_dirty(fs.m);
        cnt.bump(cnt.v_cow_faults);
      } else {
        // Reading: map the backing page read-only.
        if (mutant != Mutant::kReadMapsBackingWritable) prot &= static_cast<std::uint8_t>(~kProtWrite);
        cnt.bump(cnt.fault_backing_read);
      }
    }

    // seed L790-839: the map was unlocked for the pager; is our lookup still
    // what the map says?
    if (!fs.lookup_still_valid) {
      if (!map_trylock_read(map)) {
        release_page(fs);
        unlock_and_deallocate(fs);
        cnt.retry(Retry::kMapTryLockFailed);
        continue;
      }
      fs.lookup_still_valid = true;
      if (map.timestamp != map_generation && vm.config().mutant != Mutant::kSkipTimestampRecheck) {
        Lookup rl;
        result = map_lookup_locked(map, vaddr, fault_type, &rl);
        if (result != Kern::kSuccess) {
          release_page(fs);
          unlock_and_deallocate(fs);
          if (result == Kern::kFailure) {
            // The re-lookup would have had to block: start over.
            cnt.retry(Retry::kMapLookupFailed);
            continue;
          }
          cnt.bump(cnt.fault_relookup_errors);
          wired_type_refused(result);
          return fail(result);
        }
        fs.entry = rl.entry;
        // The entry may have been wired meanwhile (vm_map_wire counts it
        // wired before it unlocks the map to fault its pages): then the page
        // is entered wired and no neighbours are prefaulted (L891-894).
        if (rl.wired && !wired) cnt.bump(cnt.fault_wired_meanwhile);
        wired = rl.wired;
        if (rl.object != fs.first_object || rl.pindex != fs.first_pindex) {
          release_page(fs);
          unlock_and_deallocate(fs);
          cnt.retry(Retry::kMapChanged);
          continue;
        }
        // Write -> read while unlocked: we may no longer map it writable.
        if ((prot & kProtWrite) != 0 && (rl.prot & kProtWrite) == 0) cnt.bump(cnt.fault_prot_narrowed);
        if (mutant != Mutant::kRevalidateKeepsProt) prot &= rl.prot;
      }
    }

    // seed L840-868.
    if ((prot & kProtWrite) != 0) {
      object_set_writeable_dirty(*fs.object);
      if ((fs.entry->eflags & kEntryNosync) != 0) {
        if (!fs.m->is_dirty()) fs.m->oflags |= kVpoNosync;
      } else {
        fs.m->oflags &= static_cast<std::uint8_t>(~kVpoNosync);
      }
      if ((fault_flags & kFaultDirty) != 0) {
        page_dirty(fs.m);
        pager_page_unswapped(fs.m);
      }
    }

    // (A lent page is entered read-only by pmap_enter under fix
    // lent-page-read-only, where a loan cannot slip in: pmap.cpp.)

    // seed L873-883.
    FL_KASSERT((fs.m->oflags & kVpoBusy) != 0, "vm_fault: page not busy");
    // (7.0 also prints a warning here; the model counts instead.  The
    // vnode pager leaves the page a file ends in partly invalid.)
    if (!fs.m->fully_valid()) {
      page_zero_invalid(fs.m);
      cnt.bump(cnt.fault_zero_invalid);
    }
    fs.object->mtx.unlock();

    // seed L891-913: into the pmap; neighbours too; then where pageout can
    // see it, or wired.  The translation allows no more than the entry the
    // fault holds the map for (the invariant checker's rule, checked here
    // at the moment it matters: an mprotect while the fault slept must
    // narrow it, L837), unless a user wire's lookup took the maximum
    // protection (L249-271, the forced copy-on-write for a debugger).
    FL_KASSERT(fs.lookup_still_valid && (overridden || (prot & ~fs.entry->protection) == 0),
               "vm_fault: a translation allowing more than its map entry");
    pmap_enter(map.pmap, vaddr, fs.m, prot, wired);
    if ((fault_flags & kFaultWireMask) == 0 && !wired) prefault(map.pmap, vaddr, *fs.entry);
    fs.object->mtx.lock();
    {
      MutexLock pq(vm.page_queues);
      fs.m->flags |= kPgReferenced;
      if ((fault_flags & kFaultWireMask) != 0) {
        if (wired) {
          page_wire(fs.m);
          cnt.bump(cnt.fault_wirings);
        } else
          page_unwire(fs.m, true);
      } else if (wired && fs.m->wire_count == 0 && (fs.entry->eflags & kEntryInTransition) == 0 &&
                 vm.fix(Fix::kWiredFaultWires)) {
        // A wired entry's page the fault mapped wired but that is not: a
        // zero-fill in the shadow past the end of a cut file (fix
        // wired-fault-wires; 7.0 activates it, and the munlock unwires it).
        // Not while an mlock is still faulting the entry in (the map is
        // read-locked since the lookup, so the flag holds): its own
        // faults wire the pages, or unwind them if one fails.
        FL_KASSERT(fs.lookup_still_valid, "vm_fault: the map is unlocked at the end");
        page_wire(fs.m);
        cnt.bump(cnt.fault_wired_entry_wires);
      } else {
        page_activate(fs.m);
      }
    }
    page_wakeup(fs.m);

    // seed L917-923.
    unlock_and_deallocate(fs);
    cnt.bump(hardfault ? cnt.v_majflt : cnt.v_minflt);
    return Kern::kSuccess;
  }
}

Kern vm_fault_wire(Map& map, std::uint64_t start, std::uint64_t end, bool user_wire) {
  const std::uint32_t ps = map.vm.page_size();
  // For a user wire only read access is asked on read-only sections.
  for (std::uint64_t va = start; va < end; va += ps) {
    Kern rv = vm_fault(map, va, user_wire ? kProtRead : kProtRead | kProtWrite,
                       user_wire ? kFaultUserWire : kFaultChangeWiring);
    if (rv != Kern::kSuccess) {
      if (va != start) vm_fault_unwire(map, start, va);
      return rv;
    }
  }
  return Kern::kSuccess;
}

void vm_fault_unwire(Map& map, std::uint64_t start, std::uint64_t end) FL_NO_THREAD_SAFETY_ANALYSIS {
  const std::uint32_t ps = map.vm.page_size();
  // The pages are found through the pmap, as 7.x finds them (L1061-1067),
  // and unwired under the page queues taken after (L1070-1072).  Between
  // the two a write to a lent page may run vm_page_cowfault (under the page
  // queues), which moves the object's wirings to its copy and leaves the
  // lent page only the loans' (7.0 vm_page.c): the unwire then takes a
  // loan's wiring, and the loan's end panics ("unwiring an unwired page";
  // 7.0's vm_page_unwire: "invalid wire count").  Fix unwire-under-queues
  // takes the page queues before the lookup.
  const bool early = map.vm.fix(Fix::kUnwireUnderQueues);
  for (std::uint64_t va = start; va < end; va += ps) {
    if (early) map.vm.page_queues.lock();
    Page* m = pmap_extract(map.pmap, va);
    if (m == nullptr) {
      // Not mapped, and no fault mapped it again: a truncation unmapped it
      // (vm_object_page_remove leaves a wired page in its object, wired;
      // vnode_pager_setsize unmaps the partial last page), or a write to a
      // lent page moved the wiring to a copy not mapped yet
      // (vm_page_cowfault).  Not found, it stays wired for good.
      map.vm.counters().bump(map.vm.counters().unwire_unmapped);
      if (early) map.vm.page_queues.unlock();
      continue;
    }
    pmap_change_wiring(map.pmap, va, false);
    if (!early) map.vm.page_queues.lock();
    if (map.vm.config().mutant != Mutant::kUnwireKeepsWiring) page_unwire(m, true);
    map.vm.page_queues.unlock();
  }
}

}  // namespace faultline::vm

namespace faultline::vm {

void vm_fault_copy_entry(Map& dst_map, MapEntry& dst_entry, MapEntry& src_entry)
    FL_NO_THREAD_SAFETY_ANALYSIS {
  Vm& vm = dst_map.vm;
  Counters& cnt = vm.counters();
  const std::uint32_t ps = vm.page_size();
  Object* src_object = src_entry.object;
  const Pindex src_offset = src_entry.offset;
  // The destination's own object: it shadows nothing, the pages are copied.
  Object* dst_object = object_allocate(vm, ObjectType::kDefault, dst_entry.pages(ps));
  dst_object->mtx.lock();
  dst_entry.object = dst_object;
  dst_entry.offset = 0;
  // The seed maps with max_protection here; later FreeBSD uses the entry's
  // protection, which is what the invariant (no more than the entry allows)
  // requires.
  const std::uint8_t prot = dst_entry.protection;
  Pindex dst_pindex = 0;
  for (std::uint64_t vaddr = dst_entry.start; vaddr < dst_entry.end; vaddr += ps, ++dst_pindex) {
    Page* dst_m = nullptr;
    while ((dst_m = page_alloc(*dst_object, dst_pindex, kAllocNormal)) == nullptr) {
      dst_object->mtx.unlock();
      vm_wait(vm, "cpentry");
      dst_object->mtx.lock();
    }
    // The source is wired, so its page is resident; a read-only entry may
    // find it in a backing object.
    Object* object = src_object;
    object->mtx.lock();
    Pindex pindex = dst_pindex + src_offset;
    Page* src_m = nullptr;
    // Fix copy-entry-skips-placeholder: a page neither valid nor wired is
    // another fault's placeholder (the wired page is below it), passed over.
    const bool skip = vm.fix(Fix::kCopyEntrySkipsPlaceholder);
    const auto not_it = [&](const Page* m) {
      if (m == nullptr) return true;
      if (!skip || m->fully_valid() || m->wire_count != 0) return false;
      cnt.bump(cnt.copy_entry_placeholders);
      return true;
    };
    while (not_it(src_m = page_lookup(*object, pindex)) && (src_entry.protection & kProtWrite) == 0 &&
           object->backing_object != nullptr) {
      Object* backing = object->backing_object;
      backing->mtx.lock();
      pindex += object->backing_offset;
      object->mtx.unlock();
      object = backing;
    }
    // 7.0 panics on a missing page (seed L1172-1173) and copies an invalid
    // one as it is.  A busy invalid one is a page an mlock is still reading
    // in (fix fork-waits-for-wiring off), or the placeholder another fault
    // left in a backing object shared since a fork while it reads the page
    // below (fix copy-entry-skips-placeholder off): here that panics too
    // (the bytes of such a page are the pager's or nobody's).  An idle one
    // is a wired page a truncation left past the end (vnode_pager_setsize
    // makes it invalid): copied as 7.0 copies it, bytes and all, and the
    // copy marked valid below (seed L1174-1176).
    if (src_m == nullptr || (!src_m->fully_valid() && src_m->any_busy()))
      fatal(src_m == nullptr ? "vm_fault_copy_entry: page missing" : "vm_fault_copy_entry: page not valid", vaddr);
    // The parent's threads may store to the wired page meanwhile (seed
    // L1174: the source stays mapped writable): a word at a time.
    page_copy_mapped(src_m, dst_m);
    object->mtx.unlock();
    dst_m->valid = kPageBitsAll;
    // Fix copy-entry-dirties, as later FreeBSD does: the copy is dirty.  A
    // clean page of a default object is one the pageout daemon frees (7.0
    // vm_page_cache: nothing backs it), and once the child unwires it that
    // loses the copied bytes.  The harness's data oracle caught it
    // (scenario wiring).
    if (vm.fix(Fix::kCopyEntryDirties)) page_dirty(dst_m);
    dst_object->mtx.unlock();
    pmap_enter(dst_map.pmap, vaddr, dst_m, prot, false);
    dst_object->mtx.lock();
    {
      MutexLock pq(vm.page_queues);
      page_activate(dst_m);
    }
    page_wakeup(dst_m);
  }
  dst_object->mtx.unlock();
}

void vm_fault_copy_entry_upgrade(Map& map, MapEntry& entry) FL_NO_THREAD_SAFETY_ANALYSIS {
  Vm& vm = map.vm;
  Counters& cnt = vm.counters();
  const std::uint32_t ps = vm.page_size();
  Object* src_object = entry.object;
  const Pindex src_offset = entry.offset;
  // The entry's own first object if it has one; else a new one that
  // shadows nothing (the pages are copied into it).
  Object* dst_object = src_object;
  Pindex dst_base = src_offset;
  if ((entry.eflags & kEntryNeedsCopy) == 0) {
    object_reference(*dst_object);
  } else {
    dst_object = object_allocate(vm, ObjectType::kDefault, entry.pages(ps));
    dst_base = 0;
    entry.object = dst_object;
    entry.offset = 0;
  }
  dst_object->mtx.lock();
  Pindex i = 0;
  for (std::uint64_t vaddr = entry.start; vaddr < entry.end; vaddr += ps, ++i) {
    Page* src_m = nullptr;
    Page* dst_m = nullptr;
    for (;;) {
      // The entry is wired, so its chain has the page resident.  An idle
      // or busy page there that is neither valid nor wired is not it (the
      // fault passes over such a page: a placeholder of a fault of
      // another process whose first object this backing object is, since
      // a fork); later FreeBSD's walk stops at the first page it finds.
      Object* object = src_object;
      if (object != dst_object) object->mtx.lock();
      Pindex pindex = src_offset + i;
      const auto not_it = [](const Page* m) { return m == nullptr || (!m->fully_valid() && m->wire_count == 0); };
      while (not_it(src_m = page_lookup(*object, pindex)) && object->backing_object != nullptr) {
        Object* backing = object->backing_object;
        backing->mtx.lock();
        pindex += object->backing_offset;
        if (object != dst_object) object->mtx.unlock();
        object = backing;
      }
      if (not_it(src_m)) fatal("vm_fault_copy_entry: page missing", vaddr);
      if (object != dst_object) {
        dst_m = page_alloc(*dst_object, dst_base + i, kAllocNormal);
        if (dst_m == nullptr) {
          dst_object->mtx.unlock();
          object->mtx.unlock();
          vm_wait(vm, "cpentry");
          dst_object->mtx.lock();
          continue;
        }
        // Other threads may store through shared mappings of the file
        // meanwhile: a word at a time.
        page_copy_mapped(src_m, dst_m);
        dst_m->valid = src_m->valid;
        dst_m->dirty = src_m->valid;  // nothing backs the copy but its object
        // The wiring moves to the copy while the source's object is still
        // locked: once it is unlocked a collapse may move or free the
        // source page (nothing holds paging in progress on it here).
        {
          MutexLock pq(vm.page_queues);
          page_unwire(src_m, false);
          page_wire(dst_m);
        }
        object->mtx.unlock();
        break;
      }
      dst_m = src_m;
      if (page_sleep_if_busy(dst_m, false, "cpentry")) continue;
      page_busy(dst_m);
      break;
    }
    // (A page past the end of a file truncated meanwhile is left as it is.)
    if (dst_m == src_m && dst_m->pindex >= dst_object->size) {
      page_wakeup(dst_m);
      break;
    }
    cnt.bump(cnt.protect_wired_copies);
    dst_object->mtx.unlock();
    if (dst_m->fully_valid()) pmap_enter(map.pmap, vaddr, dst_m, entry.protection, true);
    dst_object->mtx.lock();
    page_wakeup(dst_m);
  }
  dst_object->mtx.unlock();
  entry.eflags &= static_cast<std::uint16_t>(~(kEntryCow | kEntryNeedsCopy));
  object_deallocate(src_object);
}

}  // namespace faultline::vm
