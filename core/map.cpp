#include "core/map.h"

#include <algorithm>
#include <iterator>
#include <vector>

#include "core/fault.h"
#include "core/vm.h"
#include "locking/kassert.h"

namespace faultline::vm {

using locking::MutexLock;

const char* kern_name(Kern k) noexcept {
  switch (k) {
    case Kern::kSuccess: return "KERN_SUCCESS";
    case Kern::kInvalidAddress: return "KERN_INVALID_ADDRESS";
    case Kern::kProtectionFailure: return "KERN_PROTECTION_FAILURE";
    case Kern::kFailure: return "KERN_FAILURE";
    case Kern::kResourceShortage: return "KERN_RESOURCE_SHORTAGE";
    case Kern::kNoSpace: return "KERN_NO_SPACE";
  }
  return "?";
}

MapEntry::MapEntry(const MapEntry& o)
    : start(o.start),
      end(o.end),
      object(o.object),
      offset(o.offset),
      protection(o.protection),
      max_protection(o.max_protection.load(std::memory_order_relaxed)),
      eflags(o.eflags),
      behavior(o.behavior),
      inheritance(o.inheritance),
      wired_count(o.wired_count),
      lastr(o.lastr.load(std::memory_order_relaxed)) {}

Map::Map(Vm& v, std::uint64_t min, std::uint64_t max) : vm(v), pmap(v), min_va(min), max_va(max) {}

Map::~Map() {
  locking::SxSharedLock l(lock);
  FL_KASSERT(entries.empty(), "destroying a map with entries");
}

MapEntry* Map::lookup_entry(std::uint64_t va) {
  lock.assert_locked();
  auto it = entries.upper_bound(va);
  if (it == entries.begin()) return nullptr;
  --it;
  return va < it->second.end ? &it->second : nullptr;
}

void map_lock(Map& map) { map.lock.xlock(); }

void map_unlock(Map& map) {
  ++map.timestamp;
  map.lock.xunlock();
}

void map_lock_read(Map& map) { map.lock.slock(); }
void map_unlock_read(Map& map) { map.lock.sunlock(); }
bool map_trylock_read(Map& map) { return map.lock.try_slock(); }

bool map_lock_upgrade(Map& map) FL_NO_THREAD_SAFETY_ANALYSIS {
  if (!map.lock.try_upgrade()) {
    const std::uint32_t last = map.timestamp;
    map.lock.sunlock();
    map.lock.xlock();
    // Nobody changed the map while it was unlocked: the upgrade holds.
    if (last != map.timestamp) {
      map.lock.xunlock();
      return false;
    }
  }
  ++map.timestamp;
  return true;
}

void map_lock_downgrade(Map& map) FL_NO_THREAD_SAFETY_ANALYSIS { map.lock.downgrade(); }

namespace {

// The common part of vm_map_lookup and vm_map_lookup_locked.  `may_upgrade`:
// whether the lock may be upgraded (lookup) or not (lookup_locked).  Returns
// kFailure with the map still share-locked when it would need to upgrade and
// may not; returns kSuccess, or another error with the map unlocked when
// `may_upgrade` (kRetry is signalled through *retry).
Kern lookup_common(Map& map, std::uint64_t va, std::uint8_t fault_typea, Lookup* out,
                   bool may_upgrade, bool* retry) FL_NO_THREAD_SAFETY_ANALYSIS {
  *retry = false;
  MapEntry* entry = map.lookup_entry(va);
  if (entry == nullptr) return Kern::kInvalidAddress;
  // A forced COW (user wire of a read-only segment) checks against the
  // maximum protection (vm_map_lookup's OVERRIDE_WRITE case).
  std::uint8_t prot =
      (fault_typea & kProtOverrideWrite) != 0 ? entry->max_protection.load(std::memory_order_relaxed)
                                              : entry->protection;
  std::uint8_t fault_type = fault_typea & kProtAll;
  if ((fault_type & prot) != fault_type || prot == kProtNone) return Kern::kProtectionFailure;
  if ((entry->eflags & kEntryUserWired) != 0 && (entry->eflags & kEntryCow) != 0 &&
      (fault_type & kProtWrite) != 0 && (fault_typea & kProtOverrideWrite) == 0)
    return Kern::kProtectionFailure;
  out->wired = entry->wired_count != 0;
  if (out->wired) fault_type = prot = entry->protection;
  if ((entry->eflags & kEntryNeedsCopy) != 0) {
    if ((fault_type & kProtWrite) != 0) {
      if (!may_upgrade) return Kern::kFailure;
      // Writing through a COW entry: make it a private shadow now.
      if (!map_lock_upgrade(map)) {
        *retry = true;
        return Kern::kFailure;
      }
      object_shadow(&entry->object, &entry->offset, entry->pages(map.vm.page_size()));
      entry->eflags &= static_cast<std::uint16_t>(~kEntryNeedsCopy);
      map_lock_downgrade(map);
    } else {
      // Reading: map read-only so a later write faults and copies.
      prot &= static_cast<std::uint8_t>(~kProtWrite);
    }
  }
  if (entry->object == nullptr) {
    if (!may_upgrade) return Kern::kFailure;
    if (!map_lock_upgrade(map)) {
      *retry = true;
      return Kern::kFailure;
    }
    if (entry->object == nullptr) {
      entry->object = object_allocate(map.vm, ObjectType::kDefault, entry->pages(map.vm.page_size()));
      entry->offset = 0;
    }
    map_lock_downgrade(map);
  }
  out->entry = entry;
  out->object = entry->object;
  out->pindex = (va - entry->start) / map.vm.page_size() + entry->offset;
  out->prot = prot;
  return Kern::kSuccess;
}

}  // namespace

Kern map_lookup(Map& map, std::uint64_t va, std::uint8_t fault_type, Lookup* out)
    FL_NO_THREAD_SAFETY_ANALYSIS {
  for (;;) {
    map_lock_read(map);
    bool retry = false;
    Kern r = lookup_common(map, va, fault_type, out, true, &retry);
    if (retry) continue;  // the upgrade lost the map: RetryLookup
    if (r != Kern::kSuccess) map_unlock_read(map);
    return r;
  }
}

Kern map_lookup_locked(Map& map, std::uint64_t va, std::uint8_t fault_type, Lookup* out) {
  map.lock.assert_locked();
  bool retry = false;
  return lookup_common(map, va, fault_type, out, false, &retry);
}

void map_lookup_done(Map& map) { map_unlock_read(map); }

namespace {

// Entries a and b (a just below b) may be one: vm_map_simplify_entry's test
// (7.0 vm_map.c 1237-1289, for the entry below and the one above).  7.0
// keeps the madvise behaviour in eflags (vm_map_entry_set_behavior); the
// model keeps it apart, so it is compared here as well.
bool joinable(const MapEntry& a, const MapEntry& b, std::uint32_t ps) {
  return a.end == b.start && a.object == b.object && (a.object == nullptr || a.offset + a.pages(ps) == b.offset) &&
         a.eflags == b.eflags && a.protection == b.protection &&
         a.max_protection.load(std::memory_order_relaxed) == b.max_protection.load(std::memory_order_relaxed) &&
         a.behavior == b.behavior && a.inheritance == b.inheritance && a.wired_count == b.wired_count;
}

// The split itself (_vm_map_clip_end): [start, va) stays, [va, end) is new.
void clip_at(Map& map, MapEntry* e, std::uint64_t va) FL_REQUIRES(map.lock) {
  const std::uint32_t ps = map.vm.page_size();
  // Both halves must share one object: give a lazy entry its object now.
  if (e->object == nullptr) {
    e->object = object_allocate(map.vm, ObjectType::kDefault, e->pages(ps));
    e->offset = 0;
  }
  MapEntry tail(*e);
  tail.start = va;
  tail.offset = e->offset + (va - e->start) / ps;
  e->end = va;
  object_reference(*tail.object);
  map.entries.emplace(va, tail);
}

}  // namespace

MapEntry* map_simplify_entry(Map& map, MapEntry* e) {
  map.lock.assert_xlocked();
  // Not an entry being wired with the map unlocked (7.0 vm_map.c 1243): its wiring
  // walks it by address when it is done.  A neighbour in transition has
  // other eflags, so it is never joined either.
  if ((e->eflags & kEntryInTransition) != 0) return e;
  const std::uint32_t ps = map.vm.page_size();
  auto it = map.entries.find(e->start);
  FL_KASSERT(it != map.entries.end() && &it->second == e, "map_simplify_entry: entry not in its map");
  if (it != map.entries.begin()) {
    if (auto prev = std::prev(it); joinable(prev->second, *e, ps)) {
      // 7.0 keeps the entry and unlinks the one below; keyed by start, the
      // model keeps the one below and grows it.  One of the two references
      // to the object goes (vm_object_deallocate, the map still locked).
      Object* o = e->object;
      prev->second.end = e->end;
      prev->second.lastr.store(e->lastr.load(std::memory_order_relaxed), std::memory_order_relaxed);
      map.entries.erase(it);
      it = prev;
      e = &it->second;
      map.vm.counters().bump(map.vm.counters().entry_merges);
      if (o != nullptr) object_deallocate(o);
    }
  }
  if (auto next = std::next(it); next != map.entries.end() && joinable(*e, next->second, ps)) {
    Object* o = next->second.object;
    e->end = next->second.end;
    map.entries.erase(next);
    map.vm.counters().bump(map.vm.counters().entry_merges);
    if (o != nullptr) object_deallocate(o);
  }
  return e;
}

void map_clip_start(Map& map, std::uint64_t va) {
  map.lock.assert_xlocked();
  MapEntry* e = map.lookup_entry(va);
  if (e == nullptr || e->start == va) return;
  // 7.0's _vm_map_clip_start joins the entry with its neighbours before it
  // splits it: what an earlier call split and left alike is
  // one entry again, then cut where this call needs it.
  e = map_simplify_entry(map, e);
  clip_at(map, e, va);
}

void map_clip_end(Map& map, std::uint64_t va) {
  map.lock.assert_xlocked();
  MapEntry* e = map.lookup_entry(va);
  if (e == nullptr || e->start == va) return;
  clip_at(map, e, va);
}

void map_simplify_range(Map& map, std::uint64_t start, std::uint64_t end) {
  map.lock.assert_xlocked();
  auto it = map.entries.upper_bound(start);
  if (it != map.entries.begin() && std::prev(it)->second.end > start) --it;
  while (it != map.entries.end() && it->first < end) {
    const MapEntry* e = map_simplify_entry(map, &it->second);
    it = map.entries.upper_bound(e->start);
  }
}

Kern map_mmap(Map& map, std::uint64_t* addr, std::uint64_t len, Object* object, Pindex offset,
              std::uint8_t prot, std::uint8_t max_prot, std::uint16_t eflags, Inherit inherit) {
  const std::uint32_t ps = map.vm.page_size();
  if (len == 0 || len % ps != 0 || *addr % ps != 0) return Kern::kInvalidAddress;
  if ((prot & max_prot) != prot) return Kern::kProtectionFailure;
  map_lock(map);
  std::uint64_t start = *addr;
  if (start == 0) {
    // First fit from the bottom of the map.
    start = map.min_va;
    for (const auto& [s, e] : map.entries) {
      if (s >= start + len) break;
      if (e.end > start) start = e.end;
    }
  }
  const std::uint64_t end = start + len;
  bool clash = start < map.min_va || end > map.max_va || end < start;
  for (auto it = map.entries.lower_bound(start); !clash && it != map.entries.end() && it->first < end; ++it)
    clash = true;
  if (!clash && map.lookup_entry(start) != nullptr) clash = true;
  if (clash) {
    map_unlock(map);
    return Kern::kNoSpace;
  }
  if (object != nullptr) {
    // 7.0 vm_map_insert: another reference or a shadow may map the same
    // pages elsewhere: not one mapping's any more.
    MutexLock l(object->mtx);
    if (object->ref_count > 1 || object->shadow_count != 0)
      object->flags &= static_cast<std::uint16_t>(~kObjOneMapping);
  }
  MapEntry e;
  e.start = start;
  e.end = end;
  e.object = object;
  e.offset = offset;
  e.protection = prot;
  e.max_protection.store(max_prot, std::memory_order_relaxed);
  e.eflags = eflags;
  e.inheritance = inherit;
  map.entries.emplace(start, e);
  *addr = start;
  map_unlock(map);
  return Kern::kSuccess;
}

namespace {

// vm_map_unlock_and_wait: sleeps until an entry in transition settles.  The
// sleep mutex is taken before the map is unlocked, and the waker takes it
// before waking, so the wakeup cannot be missed.
void map_unlock_and_wait(Map& map) FL_RELEASE(map.lock) FL_NO_THREAD_SAFETY_ANALYSIS {
  map.sleep_mtx.lock();
  map_unlock(map);
  locking::msleep_drop(&map.sleep_mtx, map.sleep_mtx, "vmmaps");
}

void map_wakeup(Map& map) {
  { locking::MutexLock l(map.sleep_mtx); }
  locking::wakeup(&map.sleep_mtx);
}

bool in_transition(Map& map, std::uint64_t start, std::uint64_t end) FL_REQUIRES(map.lock) {
  map.lock.assert_xlocked();
  if (MapEntry* e = map.lookup_entry(start); e != nullptr && (e->eflags & kEntryInTransition) != 0)
    return true;
  for (auto it = map.entries.lower_bound(start); it != map.entries.end() && it->first < end; ++it)
    if ((it->second.eflags & kEntryInTransition) != 0) return true;
  return false;
}

// Whether an entry of [start, end) is copy-on-write, in transition, and
// without the write permission that `prot` gives it.
bool adds_write_to_cow_in_transition(Map& map, std::uint64_t start, std::uint64_t end, std::uint8_t prot)
    FL_REQUIRES(map.lock) {
  if ((prot & kProtWrite) == 0) return false;
  const auto hit = [](const MapEntry& e) {
    return (e.eflags & (kEntryInTransition | kEntryCow)) == (kEntryInTransition | kEntryCow) &&
           (e.protection & kProtWrite) == 0;
  };
  if (const MapEntry* e = map.lookup_entry(start); e != nullptr && hit(*e)) return true;
  for (auto it = map.entries.lower_bound(start); it != map.entries.end() && it->first < end; ++it)
    if (hit(it->second)) return true;
  return false;
}

// Locks the map exclusively with no entry of [start, end) in transition.
void map_lock_settled(Map& map, std::uint64_t start, std::uint64_t end) FL_ACQUIRE(map.lock)
    FL_NO_THREAD_SAFETY_ANALYSIS {
  map_lock(map);
  while (in_transition(map, start, end)) {
    map_unlock_and_wait(map);
    map_lock(map);
  }
}

// vm_map_entry_delete (7.0 vm_map.c 2288-2319), the entry already unlinked
// and its translations removed: if its object is one mapping's and still
// referenced elsewhere (another piece of a clipped entry), the pages of the
// range are nobody's now.  Collapse the object, remove them (sleeping
// "vmopar" on a page a fault is paging in with the map unlocked; the fault
// then finds the map locked, backs out and retries), free their swap, and
// shrink the object if the range was its end.  Then drop the entry's
// reference, with the map still locked (map -> object is the declared order).
void entry_delete_object(Map& map, Object* o, Pindex offidxstart, Pindex count) FL_REQUIRES(map.lock) {
  map.lock.assert_xlocked();
  if (o == nullptr) return;
  {
    MutexLock l(o->mtx);
    if (o->ref_count != 1 && (o->flags & kObjOneMapping) != 0) {
      const Pindex offidxend = offidxstart + count;
      object_collapse(o);
      object_page_remove(*o, offidxstart, offidxend, false);
      if (o->type == ObjectType::kSwap)  // swap_pager_freespace
        o->swap.erase(o->swap.lower_bound(offidxstart), o->swap.lower_bound(offidxend));
      if (offidxend >= o->size && offidxstart < o->size) o->size = offidxstart;
      map.vm.counters().bump(map.vm.counters().entry_delete_removes);
    }
  }
  object_deallocate(o);
}

// Removes [start, end) with the map exclusively locked (vm_map_delete).
void delete_range(Map& map, std::uint64_t start, std::uint64_t end) FL_REQUIRES(map.lock) {
  map.lock.assert_xlocked();
  const std::uint32_t ps = map.vm.page_size();
  map_clip_start(map, start);
  map_clip_end(map, end);
  for (auto it = map.entries.lower_bound(start); it != map.entries.end() && it->first < end;) {
    MapEntry& e = it->second;
    if (e.wired_count != 0) vm_fault_unwire(map, e.start, e.end);  // munmap of mlocked memory
    // (--mutant munmap-keeps-translations skips it where the entry's
    // object keeps its pages, one shared since a fork: the range still
    // reads them after it is mapped again.)
    bool keeps_pages = false;
    if (map.vm.config().mutant == Mutant::kMunmapKeepsTranslations && e.object != nullptr) {
      MutexLock l(e.object->mtx);
      keeps_pages = e.object->ref_count > 1 && (e.object->flags & kObjOneMapping) == 0;
    }
    if (!keeps_pages) pmap_remove(map.pmap, e.start, e.end);
    Object* o = e.object;
    const Pindex offset = e.offset, count = e.pages(ps);
    it = map.entries.erase(it);
    entry_delete_object(map, o, offset, count);
  }
}

}  // namespace

Kern map_munmap(Map& map, std::uint64_t start, std::uint64_t end) {
  const std::uint32_t ps = map.vm.page_size();
  if (start % ps != 0 || end % ps != 0 || end <= start) return Kern::kInvalidAddress;
  map_lock_settled(map, start, end);
  delete_range(map, start, end);
  map_unlock(map);
  return Kern::kSuccess;
}

void map_remove_all(Map& map) {
  map_lock_settled(map, map.min_va, map.max_va);
  delete_range(map, map.min_va, map.max_va);
  map_unlock(map);
}

Kern map_protect(Map& map, std::uint64_t start, std::uint64_t end, std::uint8_t prot) {
  // 7.0 vm_map_protect (vm_map.c 1562-1630) does not wait for entries in
  // transition: it may clip one an mlock is faulting in (map_wire copes).
  map_lock(map);
  // 7.0 vm_map_wire sets MAP_ENTRY_USER_WIRED only when its faults are
  // done: until then a store may fault on a copy-on-write entry made
  // writable here, and the wired entry's fault copies the page and enters
  // the copy unwired (L309-310, L903-910), which the munlock then unwires.
  // Fix protect-copies-wired waits for such an entry; later FreeBSD waits
  // for every entry in transition, but then 7.0's clip of an entry being
  // wired (below) could not be reached.
  while (map.vm.fix(Fix::kProtectCopiesWired) && adds_write_to_cow_in_transition(map, start, end, prot)) {
    map.vm.counters().bump(map.vm.counters().protect_wiring_waits);
    map_unlock_and_wait(map);
    map_lock(map);
  }
  if (in_transition(map, start, end)) map.vm.counters().bump(map.vm.counters().protect_in_transition);
  // 7.0 clips the start before it checks, and keeps the clip on failure.
  map_clip_start(map, start);
  // First pass: every entry must allow the new protection.
  for (auto it = map.entries.lower_bound(start); it != map.entries.end() && it->first < end; ++it) {
    if ((prot & it->second.max_protection.load(std::memory_order_relaxed)) != prot) {
      map_unlock(map);
      return Kern::kProtectionFailure;
    }
  }
  // (--mutant mprotect-past-end skips the clip: the last entry's pages
  // past `end` change too.)
  if (map.vm.config().mutant != Mutant::kMprotectPastEnd) map_clip_end(map, end);
  for (auto it = map.entries.lower_bound(start); it != map.entries.end() && it->first < end; ++it) {
    MapEntry& e = it->second;
    const std::uint8_t old = e.protection;
    e.protection = prot;
    // Fix protect-copies-wired, as later FreeBSD: a user-wired
    // copy-on-write entry gaining write has its pages copied into its first
    // object now, wired and mapped writable (its faults could not copy
    // them: vm_map_lookup refuses a write fault there).  7.0 copies nothing.
    if (map.vm.fix(Fix::kProtectCopiesWired) && (e.eflags & (kEntryUserWired | kEntryCow)) ==
                                                     (kEntryUserWired | kEntryCow) &&
        (prot & kProtWrite) != 0 && (old & kProtWrite) == 0)
      vm_fault_copy_entry_upgrade(map, e);
    // Lowered: take the permission away from existing translations now
    // (a COW entry never has writable translations to begin with).
    if ((old & ~prot) != 0 && map.vm.config().mutant != Mutant::kMprotectKeepsWrite) {
      std::uint8_t p = prot;
      if ((e.eflags & kEntryCow) != 0) p &= static_cast<std::uint8_t>(~kProtWrite);
      pmap_protect(map.pmap, e.start, e.end, p);
    }
  }
  // 7.0 joins each entry with its neighbours as it goes; the map is locked
  // throughout, so joining them all afterwards leaves the same map.
  map_simplify_range(map, start, end);
  if (map.vm.config().mutant == Mutant::kMprotectKeepsTimestamp)
    map.lock.xunlock();  // no ++timestamp
  else
    map_unlock(map);
  return Kern::kSuccess;
}

Kern map_madvise(Map& map, std::uint64_t start, std::uint64_t end, Behavior b) {
  map_lock(map);
  map_clip_start(map, start);
  map_clip_end(map, end);
  for (auto it = map.entries.lower_bound(start); it != map.entries.end() && it->first < end; ++it)
    it->second.behavior = b;
  map_simplify_range(map, start, end);
  map_unlock(map);
  return Kern::kSuccess;
}

Kern map_wire(Map& map, std::uint64_t start, std::uint64_t end, bool user) FL_NO_THREAD_SAFETY_ANALYSIS {
  map_lock_settled(map, start, end);
  // The range must be mapped without holes.
  std::uint64_t at = start;
  for (MapEntry* e = map.lookup_entry(start); at < end; e = map.lookup_entry(at)) {
    if (e == nullptr) {
      map_unlock(map);
      return Kern::kInvalidAddress;
    }
    at = e->end;
  }
  map_clip_start(map, start);
  map_clip_end(map, end);
  // Every entry of the range is marked in transition until the wiring is
  // done, as 7.0's vm_map_wire marks them: none may be deleted, joined or
  // wired again meanwhile.  `fresh` ones (wired_count was 0) are faulted in
  // with the map unlocked.  As 7.x's vm_map_wire, MAP_ENTRY_USER_WIRED is
  // set only once the faults are done: a user-wired COW entry refuses write
  // faults (vm_map_lookup), and the faults of this very wire, or a thread
  // writing meanwhile, must not meet that refusal.
  // Each entry is remembered as [start, end) when marked: by the time the
  // faults are done, an mprotect or madvise may have clipped it (7.0
  // vm_map_wire 2071-2093 walks the pieces likewise).
  struct Marked {
    std::uint64_t start, end;
    bool counted;            // this call counts a wiring of it
    std::ptrdiff_t fresh;    // its index in `fresh`, or -1
  };
  std::vector<Marked> marked;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> fresh;
  for (auto it = map.entries.lower_bound(start); it != map.entries.end() && it->first < end; ++it) {
    MapEntry& e = it->second;
    e.eflags |= kEntryInTransition;
    Marked m{e.start, e.end, !(user && (e.eflags & kEntryUserWired) != 0), -1};  // mlock twice is once
    if (m.counted && e.wired_count++ == 0) {
      m.fresh = static_cast<std::ptrdiff_t>(fresh.size());
      fresh.emplace_back(e.start, e.end);
    }
    marked.push_back(m);
  }
  map_unlock(map);
  Kern rv = Kern::kSuccess;
  std::size_t done = 0;
  for (; done < fresh.size() && rv == Kern::kSuccess; ++done)
    rv = vm_fault_wire(map, fresh[done].first, fresh[done].second, user);
  map_lock(map);
  for (const Marked& m : marked) {
    // The entry, or the pieces it was clipped into meanwhile (entries in
    // transition are never deleted nor joined).
    FL_KASSERT(map.entries.count(m.start) != 0, "map_wire: lookup failed");
    for (auto it = map.entries.find(m.start); it != map.entries.end() && it->first < m.end; ++it) {
      MapEntry* e = &it->second;
      FL_KASSERT((e->eflags & kEntryInTransition) != 0, "map_wire: entry left transition");
      e->eflags &= static_cast<std::uint16_t>(~kEntryInTransition);
      if (rv == Kern::kSuccess) {
        if (user) e->eflags |= kEntryUserWired;
        continue;
      }
      if (!m.counted) continue;
      // Roll back.  Fresh entries wired before the failing one are unwired
      // again (the failing one was unwired by vm_fault_wire itself, and
      // those after it were never faulted).
      if (m.fresh >= 0 && static_cast<std::size_t>(m.fresh) + 1 < done) vm_fault_unwire(map, e->start, e->end);
      --e->wired_count;
    }
  }
  // 7.0 vm_map_wire joins each piece with its neighbours as it clears its
  // transition (its `done:` loop); the map is locked throughout.
  map_simplify_range(map, start, end);
  map_unlock(map);
  map_wakeup(map);
  return rv;
}

Kern map_unwire(Map& map, std::uint64_t start, std::uint64_t end, bool user) FL_NO_THREAD_SAFETY_ANALYSIS {
  map_lock_settled(map, start, end);
  map_clip_start(map, start);
  map_clip_end(map, end);
  for (auto it = map.entries.lower_bound(start); it != map.entries.end() && it->first < end; ++it) {
    MapEntry& e = it->second;
    if (user) {
      if ((e.eflags & kEntryUserWired) == 0) continue;
      e.eflags &= static_cast<std::uint16_t>(~kEntryUserWired);
    }
    if (e.wired_count == 0) continue;
    if (--e.wired_count == 0) vm_fault_unwire(map, e.start, e.end);
  }
  map_simplify_range(map, start, end);
  map_unlock(map);
  return Kern::kSuccess;
}

std::unique_ptr<Map> vmspace_fork(Map& parent) FL_NO_THREAD_SAFETY_ANALYSIS {
  auto child = std::make_unique<Map>(parent.vm, parent.min_va, parent.max_va);
  const std::uint32_t ps = parent.vm.page_size();
  // 7.0 vmspace_fork does not wait for entries in transition (an mlock
  // faulting them in with the map unlocked): fix fork-waits-for-wiring.
  map_lock(parent);
  while (parent.vm.fix(Fix::kForkWaitsForWiring) && in_transition(parent, parent.min_va, parent.max_va)) {
    parent.vm.counters().bump(parent.vm.counters().fork_wiring_waits);
    map_unlock_and_wait(parent);
    map_lock(parent);
  }
  // The child is not visible to anyone yet: its entries need no lock.
  for (auto& [start, e] : parent.entries) {
    if (e.inheritance == Inherit::kNone) continue;
    if (e.inheritance == Inherit::kShare) {
      // Both see one object: give it one now, and resolve a pending copy
      // first so that the sharing is of the right object.
      if (e.object == nullptr) {
        e.object = object_allocate(parent.vm, ObjectType::kDefault, e.pages(ps));
        e.offset = 0;
      }
      if ((e.eflags & kEntryNeedsCopy) != 0) {
        object_shadow(&e.object, &e.offset, e.pages(ps));
        e.eflags &= static_cast<std::uint16_t>(~kEntryNeedsCopy);
      }
      object_reference(*e.object);
      {
        MutexLock l(e.object->mtx);  // 7.0 vm_map.c 2642-2644
        e.object->flags &= static_cast<std::uint16_t>(~kObjOneMapping);
      }
      MapEntry ne(e);
      ne.wired_count = 0;
      ne.eflags &= static_cast<std::uint16_t>(~kEntryUserWired);
      child->entries.emplace(start, ne);
      continue;
    }
    MapEntry ne(e);
    ne.wired_count = 0;
    ne.eflags &= static_cast<std::uint16_t>(~kEntryUserWired);
    if (e.wired_count != 0) {
      // vm_fault_copy_entry: the child gets its own copy now.
      ne.object = nullptr;
      MapEntry& placed = child->entries.emplace(start, ne).first->second;
      vm_fault_copy_entry(*child, placed, e);
      continue;
    }
    // vm_map_copy_entry: both sides copy on write from now on.  Unless a copy
    // is still pending (its translations are read-only already), take write
    // away from the parent's translations: an entry that is COW but already
    // copied has writable ones.
    if ((e.eflags & kEntryNeedsCopy) == 0 && parent.vm.config().mutant != Mutant::kNoWriteProtectAtFork)
      pmap_protect(parent.pmap, e.start, e.end, static_cast<std::uint8_t>(e.protection & ~kProtWrite));
    if (e.object != nullptr) {
      Object* src = e.object;
      src->mtx.lock();
      // 7.0 vm_map.c 2507-2519: an anonymous source is collapsed first, and
      // one still a single mapping's but referenced elsewhere (another piece
      // of a clipped entry, a fault in progress) is split, so that the child
      // shares only this entry's pages; both may sleep, the map locked.
      if (src->handle == nullptr && (src->type == ObjectType::kDefault || src->type == ObjectType::kSwap)) {
        object_collapse(src);
        if ((src->flags & kObjOneMapping) != 0) {
          if (Object* n = object_split(src, e.offset, e.pages(ps)); n != nullptr) {
            e.object = src = n;
            e.offset = 0;
          }
        }
      }
      object_reference_locked(*src);
      src->flags &= static_cast<std::uint16_t>(~kObjOneMapping);
      src->mtx.unlock();
      ne.object = e.object;
      ne.offset = e.offset;
      e.eflags |= kEntryCow | kEntryNeedsCopy;
      ne.eflags |= kEntryCow | kEntryNeedsCopy;
    }
    child->entries.emplace(start, ne);
  }
  map_unlock(parent);
  return child;
}

}  // namespace faultline::vm
