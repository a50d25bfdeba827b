// VM objects (FreeBSD vm_object.c): a set of resident pages indexed by pindex,
// a pager type, reference and shadow counts, a backing object at an offset,
// and paging-in-progress with sleep/wakeup.
//
// All fields are under the object's own mutex.  A chain is locked top object
// first, then down the backing chain (7.x's vm_fault and vm_object_collapse
// do so; going up, as vm_object_deallocate does from an object to its only
// shadow, takes a try-lock).  The lock-order checker
// enforces it: every object mutex carries object_order_key(id), and the
// object class is SameClass::kOrdered, so locking a shadow while holding an
// object it (transitively) shadows is reported.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/locks.h"
#include "core/page.h"
#include "locking/locking.h"

namespace faultline::vm {

class Vm;

enum class ObjectType : std::uint8_t { kDefault, kSwap, kVnode, kDevice, kDead };
const char* object_type_name(ObjectType t) noexcept;

inline constexpr std::uint16_t kObjDead = 1;           // OBJ_DEAD: being terminated
inline constexpr std::uint16_t kObjMightBeDirty = 2;   // OBJ_MIGHTBEDIRTY
inline constexpr std::uint16_t kObjPipWanted = 4;      // someone waits for pip == 0
// OBJ_ONEMAPPING: each page of the object is mapped by one entry at most, so
// unmapping a range may free its pages (vm_map_entry_delete).  Set at
// allocation for anonymous objects and when the references drop to one with
// no shadow; cleared when a second mapping may see the same pages (mmap of an
// object already referenced or shadowed, fork).
inline constexpr std::uint16_t kObjOneMapping = 8;

// The order key of object `id`'s mutex.  The key must grow down every chain,
// whatever the caller: depth in the chain will not do (an object sits at
// different depths in different chains, and a collapse changes the depth
// of everything above it), age does.  A backing object is always older than
// the objects it backs: vm_object_shadow puts a new object over an existing
// one, and a collapse points an object at its backing object's backing
// object (asserted there; 7.x's bypass and split do the same).  So the key
// falls as the id grows.
constexpr std::uint32_t object_order_key(std::uint64_t id) noexcept {
  return id >= 0xffffffffu ? 0u : static_cast<std::uint32_t>(0xffffffffu - id);
}

class Object {
 public:
  Object(Vm& vm, ObjectType type, Pindex size);
  ~Object();
  Object(const Object&) = delete;
  Object& operator=(const Object&) = delete;

  Vm& vm;
  const std::uint64_t id;
  locking::Mutex mtx;

  ObjectType type FL_GUARDED_BY(mtx);
  Pindex size FL_GUARDED_BY(mtx);                    // in pages
  std::map<Pindex, Page*> pages FL_GUARDED_BY(mtx);  // resident pages by pindex
  // Cached pages by pindex (7.0's object->cache): under vm.free_mtx; adding
  // one also needs mtx, taking one out does not (vm_page_alloc reclaims a
  // cached page of any object under the free-queue mutex alone).
  std::map<Pindex, Page*> cache;
  int ref_count FL_GUARDED_BY(mtx) = 1;
  int shadow_count FL_GUARDED_BY(mtx) = 0;
  Object* backing_object FL_GUARDED_BY(mtx) = nullptr;
  Pindex backing_offset FL_GUARDED_BY(mtx) = 0;  // in pages
  int pip FL_GUARDED_BY(mtx) = 0;                // paging in progress
  std::uint16_t flags FL_GUARDED_BY(mtx) = 0;
  void* handle FL_GUARDED_BY(mtx) = nullptr;     // the vnode or the device
  std::vector<Object*> shadows FL_GUARDED_BY(mtx);  // objects backed by this one
  // Swap pager: laundered contents by pindex ("on disk").
  std::map<Pindex, std::vector<std::byte>> swap FL_GUARDED_BY(mtx);

  std::string describe() const;  // "object 7" (id only: no lock needed)
};

// vm_object_allocate: a new object with one reference.
Object* object_allocate(Vm& vm, ObjectType type, Pindex size);

// Frees a dead object, unlocked, with no pages (uma_zfree): deferred while a
// pageout scan runs (see Vm::defer_free).
void object_free(Object* o);

// vm_object_reference: requires o unlocked / _locked: requires o locked.
void object_reference(Object& o);
void object_reference_locked(Object& o) FL_REQUIRES(o.mtx);

// vm_object_deallocate (7.0): drops a reference; the last one terminates the
// object (and then drops its reference on the backing object, and so on
// down).  When one reference is left and it is the object's only shadow's,
// collapses the object into that shadow: the shadow is only try-locked (on
// failure: undo, pause "vmo_de", start over), and paging in progress on
// either is waited for first ("objde1", "objde2").  Requires: o unlocked,
// no page queues.
void object_deallocate(Object* o);

// vm_object_collapse (7.0): while `object`'s backing object is anonymous
// and referenced only by `object`, merge it in (vm_object_backing_scan marks
// it OBJ_DEAD, moves up the pages `object` lacks, sleeping "vmocol" with
// both unlocked on a busy one; swap_pager_copy moves its swap, unlocking it,
// and may wait for memory with both unlocked).  Gives up when either has
// paging in progress (moving up only idle pages then).  When the backing
// object has other references, bypass it if `object` shadows all its pages
// in range (point past it, at its own backing object), else give up.
// Requires: object locked; returns with it locked.
void object_collapse(Object* object) FL_REQUIRES(object->mtx);

// vm_object_split (7.0), for a map entry mapping `size` pages of `orig` from
// `offidxstart`: when orig is anonymous and referenced elsewhere, moves the
// range's pages (sleeping "spltwt" on a busy one, then starting over) and
// swap into a new object with orig's backing object and offset, and drops
// the entry's reference on orig.  Returns the new object, locked (the caller
// points the entry at it, offset 0), or nullptr with orig still locked when
// there is nothing to split (or orig's backing object is dying).
// Requires: orig locked, no other object lock.
Object* object_split(Object* orig, Pindex offidxstart, Pindex size) FL_REQUIRES(orig->mtx);

// vm_object_pip_add / pip_wakeup / pip_wait ("vmopip").
void object_pip_add(Object& o, int n) FL_REQUIRES(o.mtx);
void object_pip_wakeup(Object& o) FL_REQUIRES(o.mtx);
void object_pip_wait(Object& o, const char* wmesg) FL_REQUIRES(o.mtx);

// vm_object_set_writeable_dirty.
void object_set_writeable_dirty(Object& o) FL_REQUIRES(o.mtx);

// vm_object_page_remove (7.0): removes the pages in [start, end) (end 0: to
// the end), unmapping them first and sleeping on busy ones ("vmopar", the
// object locked again on waking, then rescanning), with paging in progress
// held throughout.  Wired pages stay but lose their contents' validity.
// With clean_only, each page is write-protected first and kept if dirty.
// Requires: o locked.
void object_page_remove(Object& o, Pindex start, Pindex end, bool clean_only) FL_REQUIRES(o.mtx);

// vm_object_shadow: replaces *object (a reference the caller owns) by a new
// default object of `length` pages backed by it at *offset; the caller's
// reference moves to the shadow.  Requires: no locks held.
void object_shadow(Object** object, Pindex* offset, Pindex length);

}  // namespace faultline::vm
