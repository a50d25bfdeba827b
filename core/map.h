// Address maps (FreeBSD vm_map.c): entries over [start, end) with an object
// and offset, protection and max protection, COW / NEEDS_COPY / NOSYNC /
// NOFAULT flags, behaviour, wiring and the read-ahead hint lastr; a
// shared/exclusive lock and a timestamp bumped by every exclusive unlock.
//
// Locks: the entries and the timestamp are under map.lock (an SxLock).  An
// entry's object pointer and offset change only under the exclusive lock
// (lookup upgrades to shadow a NEEDS_COPY entry).  lastr is written under the
// shared lock (seed L555 "XXX"): it is a relaxed atomic here.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>

#include "core/locks.h"
#include "core/object.h"
#include "core/pmap.h"
#include "locking/locking.h"

namespace faultline::vm {

class Vm;

// KERN_* results.
enum class Kern : std::uint8_t {
  kSuccess,
  kInvalidAddress,
  kProtectionFailure,
  kFailure,           // "would have blocked" from lookup_locked; pager I/O error
  kResourceShortage,
  kNoSpace,
};
const char* kern_name(Kern k) noexcept;

// Entry flags (MAP_ENTRY_*).
inline constexpr std::uint16_t kEntryCow = 1;
inline constexpr std::uint16_t kEntryNeedsCopy = 2;
inline constexpr std::uint16_t kEntryNofault = 4;
inline constexpr std::uint16_t kEntryNosync = 8;
inline constexpr std::uint16_t kEntryUserWired = 16;
inline constexpr std::uint16_t kEntryInTransition = 32;  // being wired with the map unlocked

enum class Behavior : std::uint8_t { kNormal, kSequential, kRandom };
enum class Inherit : std::uint8_t { kCopy, kShare, kNone };

struct MapEntry {
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  Object* object = nullptr;  // owns one reference
  Pindex offset = 0;         // in pages
  std::uint8_t protection = kProtNone;
  // Cleared under the shared lock by a user wire of a read-only segment
  // (seed L270 "XXX"): a relaxed atomic, like lastr.
  std::atomic<std::uint8_t> max_protection{kProtNone};
  std::uint16_t eflags = 0;
  Behavior behavior = Behavior::kNormal;
  Inherit inheritance = Inherit::kCopy;
  int wired_count = 0;
  std::atomic<Pindex> lastr{0};

  MapEntry() = default;
  MapEntry(const MapEntry& o);  // lastr copied with a relaxed load
  MapEntry& operator=(const MapEntry&) = delete;
  std::uint64_t pages(std::uint32_t page_size) const noexcept { return (end - start) / page_size; }
};

class Map {
 public:
  Map(Vm& vm, std::uint64_t min_va, std::uint64_t max_va);
  ~Map();  // the map must be empty (map_delete everything first)
  Map(const Map&) = delete;
  Map& operator=(const Map&) = delete;

  Vm& vm;
  locking::SxLock lock{map_lock_class, "vm map"};
  std::uint32_t timestamp FL_GUARDED_BY(lock) = 0;
  std::map<std::uint64_t, MapEntry> entries FL_GUARDED_BY(lock);  // by start
  Pmap pmap;
  locking::Mutex sleep_mtx{map_sleep_lock_class, "vm map sleep"};
  const std::uint64_t min_va;
  const std::uint64_t max_va;

  // The entry containing va, or nullptr.
  MapEntry* lookup_entry(std::uint64_t va) FL_REQUIRES_SHARED(lock);
};

// vm_map_lock / vm_map_unlock (bumps the timestamp) / _read / trylock_read.
void map_lock(Map& map) FL_ACQUIRE(map.lock);
void map_unlock(Map& map) FL_RELEASE(map.lock);
void map_lock_read(Map& map) FL_ACQUIRE_SHARED(map.lock);
void map_unlock_read(Map& map) FL_RELEASE_SHARED(map.lock);
bool map_trylock_read(Map& map) FL_TRY_ACQUIRE_SHARED(true, map.lock);
// vm_map_lock_upgrade as in 7.x: true with the map exclusively locked; false
// with the map UNLOCKED if another writer got in between (the caller starts
// over).  vm_map_lock_downgrade: exclusive -> shared.
bool map_lock_upgrade(Map& map);
void map_lock_downgrade(Map& map);

struct Lookup {
  MapEntry* entry = nullptr;
  Object* object = nullptr;
  Pindex pindex = 0;
  std::uint8_t prot = kProtNone;
  bool wired = false;
};

// vm_map_lookup: on kSuccess the map is share-locked (release with
// map_lookup_done); on failure it is unlocked.  A write through a
// NEEDS_COPY entry upgrades the lock and shadows the object; an entry with no
// object gets one.
Kern map_lookup(Map& map, std::uint64_t va, std::uint8_t fault_type, Lookup* out);
// vm_map_lookup_locked: the map is already share-locked and stays so; where
// map_lookup would need the exclusive lock it returns kFailure instead.
Kern map_lookup_locked(Map& map, std::uint64_t va, std::uint8_t fault_type, Lookup* out)
    FL_REQUIRES_SHARED(map.lock);
void map_lookup_done(Map& map) FL_RELEASE_SHARED(map.lock);

// mmap: maps [*addr, *addr + len) (len a multiple of the page size).  With
// object == nullptr the mapping is anonymous and gets its object at the first
// fault.  The map takes over the caller's reference on `object`.  Chooses an
// address when *addr == 0.  `eflags` may carry kEntryCow | kEntryNeedsCopy
// (a private file mapping) or kEntryNosync.
Kern map_mmap(Map& map, std::uint64_t* addr, std::uint64_t len, Object* object, Pindex offset,
              std::uint8_t prot, std::uint8_t max_prot, std::uint16_t eflags, Inherit inherit);
// munmap (vm_map_delete): removes mappings and drops object references; the
// pages of a one-mapping object in the range go too (vm_map_entry_delete).
Kern map_munmap(Map& map, std::uint64_t start, std::uint64_t end);
// Removes everything (exit).
void map_remove_all(Map& map);
// mprotect (vm_map_protect).
Kern map_protect(Map& map, std::uint64_t start, std::uint64_t end, std::uint8_t prot);
// madvise behaviours (vm_map_madvise for NORMAL / SEQUENTIAL / RANDOM).
Kern map_madvise(Map& map, std::uint64_t start, std::uint64_t end, Behavior b);

// mlock / munlock (vm_map_wire / vm_map_unwire): entries newly wired are
// counted wired and marked in transition, the map is unlocked, their pages
// are faulted in and wired (vm_fault_wire), and the mark is cleared on every
// piece the entries were clipped into meanwhile.  munmap and mlock/munlock
// wait for an entry in transition ("vmmaps"); mprotect and madvise do not,
// as in 7.0; fork waits only with fix fork-waits-for-wiring.
Kern map_wire(Map& map, std::uint64_t start, std::uint64_t end, bool user);
Kern map_unwire(Map& map, std::uint64_t start, std::uint64_t end, bool user);

// fork (vmspace_fork): a new map whose entries follow each entry's
// inheritance: shared entries share the object; copied entries become
// COW | NEEDS_COPY on both sides (the parent's translations lose write); a
// wired copied entry is copied page by page now (vm_fault_copy_entry).
std::unique_ptr<Map> vmspace_fork(Map& parent);

// Split the entry containing `va` so that `va` is an entry boundary.  The
// start of a range (vm_map_clip_start) first joins that entry with its
// neighbours; its end (vm_map_clip_end) does not.
void map_clip_start(Map& map, std::uint64_t va) FL_REQUIRES(map.lock);
void map_clip_end(Map& map, std::uint64_t va) FL_REQUIRES(map.lock);

// vm_map_simplify_entry: joins `e` with the entry below and the one above
// where they are alike (same object at contiguous offsets, same flags,
// protections, behaviour, inheritance and wire count; none in transition),
// dropping the joined entries' object references.  Returns the entry that
// now holds e's range (the model keys entries by start, so joining the one
// below keeps that one).
MapEntry* map_simplify_entry(Map& map, MapEntry* e) FL_REQUIRES(map.lock);
// map_simplify_entry on each entry overlapping [start, end), in order.
void map_simplify_range(Map& map, std::uint64_t start, std::uint64_t end) FL_REQUIRES(map.lock);

}  // namespace faultline::vm
