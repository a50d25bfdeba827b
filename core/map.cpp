#include "core/map.h"

#include <cassert>
#include <iterator>
#include <vector>

#include "core/vm.h"

namespace faultline::vm {

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
  assert(entries.empty() && "destroying a map with entries");
}

MapEntry* Map::lookup_entry(std::uint64_t va) {
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
  bool retry = false;
  return lookup_common(map, va, fault_type, out, false, &retry);
}

void map_lookup_done(Map& map) { map_unlock_read(map); }

void map_clip(Map& map, std::uint64_t va) {
  map.lock.assert_xlocked();
  MapEntry* e = map.lookup_entry(va);
  if (e == nullptr || e->start == va) return;
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

// Removes [start, end) with the map exclusively locked (vm_map_delete).
void delete_range(Map& map, std::uint64_t start, std::uint64_t end) FL_REQUIRES(map.lock) {
  map_clip(map, start);
  map_clip(map, end);
  std::vector<Object*> dead;
  for (auto it = map.entries.lower_bound(start); it != map.entries.end() && it->first < end;) {
    MapEntry& e = it->second;
    assert(e.wired_count == 0 && "unmapping a wired entry (unwire first)");
    pmap_remove(map.pmap, e.start, e.end);
    if (e.object != nullptr) dead.push_back(e.object);
    it = map.entries.erase(it);
  }
  // Object references go with the map still locked, as vm_map_entry_delete
  // does in 7.x (map -> object is the declared order).
  for (Object* o : dead) object_deallocate(o);
}

}  // namespace

Kern map_munmap(Map& map, std::uint64_t start, std::uint64_t end) {
  const std::uint32_t ps = map.vm.page_size();
  if (start % ps != 0 || end % ps != 0 || end <= start) return Kern::kInvalidAddress;
  map_lock(map);
  delete_range(map, start, end);
  map_unlock(map);
  return Kern::kSuccess;
}

void map_remove_all(Map& map) {
  map_lock(map);
  delete_range(map, map.min_va, map.max_va);
  map_unlock(map);
}

Kern map_protect(Map& map, std::uint64_t start, std::uint64_t end, std::uint8_t prot) {
  map_lock(map);
  // First pass: every entry must allow the new protection.
  for (auto it = map.entries.lower_bound(start); it != map.entries.end() && it->first < end; ++it) {
    if ((prot & it->second.max_protection.load(std::memory_order_relaxed)) != prot) {
      map_unlock(map);
      return Kern::kProtectionFailure;
    }
  }
  if (MapEntry* e = map.lookup_entry(start);
      e != nullptr && (prot & e->max_protection.load(std::memory_order_relaxed)) != prot) {
    map_unlock(map);
    return Kern::kProtectionFailure;
  }
  map_clip(map, start);
  map_clip(map, end);
  for (auto it = map.entries.lower_bound(start); it != map.entries.end() && it->first < end; ++it) {
    MapEntry& e = it->second;
    const std::uint8_t old = e.protection;
    e.protection = prot;
    // Lowered: take the permission away from existing translations now
    // (a COW entry never has writable translations to begin with).
    if ((old & ~prot) != 0) {
      std::uint8_t p = prot;
      if ((e.eflags & kEntryCow) != 0) p &= static_cast<std::uint8_t>(~kProtWrite);
      pmap_protect(map.pmap, e.start, e.end, p);
    }
  }
  map_unlock(map);
  return Kern::kSuccess;
}

Kern map_madvise(Map& map, std::uint64_t start, std::uint64_t end, Behavior b) {
  map_lock(map);
  map_clip(map, start);
  map_clip(map, end);
  for (auto it = map.entries.lower_bound(start); it != map.entries.end() && it->first < end; ++it)
    it->second.behavior = b;
  map_unlock(map);
  return Kern::kSuccess;
}

}  // namespace faultline::vm
