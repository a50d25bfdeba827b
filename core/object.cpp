#include "core/object.h"

#include <algorithm>

#include "core/pager.h"
#include "core/pmap.h"
#include "core/vm.h"
#include "locking/kassert.h"

namespace faultline::vm {

using locking::MutexLock;

const char* object_type_name(ObjectType t) noexcept {
  switch (t) {
    case ObjectType::kDefault: return "default";
    case ObjectType::kSwap: return "swap";
    case ObjectType::kVnode: return "vnode";
    case ObjectType::kDevice: return "device";
    case ObjectType::kDead: return "dead";
  }
  return "?";
}

Object::Object(Vm& v, ObjectType t, Pindex sz)
    : vm(v), id(v.next_object_id()), mtx(object_lock_class, "vm object", object_order_key(id)), type(t), size(sz) {
  FL_KASSERT(id < 0xffffffffu, "object ids exhausted (their lock order keys are 32 bits)");
  // 7.0 _vm_object_allocate: anonymous objects start as one mapping's.
  if (t == ObjectType::kDefault || t == ObjectType::kSwap) flags = kObjOneMapping;
  vm.live_objects.fetch_add(1, std::memory_order_relaxed);
}

Object::~Object() = default;

void object_free(Object* o) FL_NO_THREAD_SAFETY_ANALYSIS {
  FL_KASSERT(o->cache.empty() && o->pages.empty(), "freeing an object with pages");
  Vm& vm = o->vm;
  vm.live_objects.fetch_sub(1, std::memory_order_relaxed);
  // A scan may hold o's address from before its pages went, and lock it
  // (vm_pageout_fallback_object_lock): o stays until no scan runs.  A scan
  // that starts after this load found o's pages gone already.
  if (vm.scan_running())
    vm.defer_free(o);
  else
    delete o;
}

std::string Object::describe() const { return "object " + std::to_string(id); }

Object* object_allocate(Vm& vm, ObjectType type, Pindex size) { return new Object(vm, type, size); }

void object_reference(Object& o) {
  // 7.0's vm_object_reference has no OBJ_DEAD assertion (a dead object may
  // be referenced during its final cleaning); the locked form has one.
  MutexLock l(o.mtx);
  FL_KASSERT(o.ref_count > 0, "referencing an object with no references");
  ++o.ref_count;
}

void object_reference_locked(Object& o) {
  o.mtx.assert_owned();
  FL_KASSERT(o.ref_count > 0, "referencing an object with no references");
  FL_KASSERT((o.flags & kObjDead) == 0, "vm_object_reference_locked: dead object referenced");  // as 7.0
  ++o.ref_count;
}

void object_pip_add(Object& o, int n) {
  o.mtx.assert_owned();
  o.pip += n;
}

void object_pip_wakeup(Object& o) {
  o.mtx.assert_owned();
  FL_KASSERT(o.pip > 0, "pip underflow");
  if (--o.pip == 0 && (o.flags & kObjPipWanted) != 0) {
    o.flags &= static_cast<std::uint16_t>(~kObjPipWanted);
    locking::wakeup(&o.pip);
  }
}

void object_pip_wait(Object& o, const char* wmesg) {
  o.mtx.assert_owned();
  while (o.pip != 0) {
    o.flags |= kObjPipWanted;
    locking::msleep(&o.pip, o.mtx, wmesg);
  }
}

void object_set_writeable_dirty(Object& o) {
  o.mtx.assert_owned();
  if (o.type != ObjectType::kVnode) return;
  o.flags |= kObjMightBeDirty;
}

void object_page_remove(Object& o, Pindex start, Pindex end, bool clean_only) {
  o.mtx.assert_owned();
  Vm& vm = o.vm;
  if (o.pages.empty()) {
    page_cache_free(o, start, end);  // 7.0's skipmemq
    return;
  }
  // 7.0 vm_object.c 1814-1851: paging in progress for the whole scan, so a
  // deallocate or a collapse that looks at this object while the scan
  // sleeps on a busy page ("vmopar", the object still locked) waits for it
  // or leaves the object's pages alone.
  object_pip_add(o, 1);
  for (;;) {  // again: after any sleep the set may have changed
    bool slept = false;
    auto it = o.pages.lower_bound(start);
    while (it != o.pages.end() && (end == 0 || it->first < end)) {
      Page* p = it->second;
      ++it;
      // 7.0 tests the wire count with the page queues held (it takes them
      // at "again:" and keeps them but while vm_page_sleep_if_busy sleeps);
      // a wired page is unmapped and, unless clean_only, made invalid, and
      // left in the object.  The model lets the page queues go for the busy
      // test, so it tests again under the hold that frees the page:
      // socow_setup wires a page holding the page queues only, and may have
      // lent this one in between.
      const auto leave_wired = [&]() FL_NO_THREAD_SAFETY_ANALYSIS {
        vm.counters().bump(vm.counters().page_remove_wired);
        pmap_remove_all(p);
        if (!clean_only) p->valid = 0;
      };
      bool wired = false;
      {
        MutexLock pq(vm.page_queues);
        wired = p->wire_count != 0;
        if (wired) leave_wired();
      }
      if (wired) continue;
      if (page_sleep_if_busy(p, true, "vmopar")) {
        vm.counters().bump(vm.counters().page_remove_sleeps);
        slept = true;
        break;
      }
      MutexLock pq(vm.page_queues);
      if (p->wire_count != 0) {
        leave_wired();
        continue;
      }
      if (clean_only && p->valid != 0) {
        // Write-protect first (1843): the modified bits of every mapping
        // go to the page's dirty bits, and a store from now on faults, so
        // a page found clean here stays clean until it is freed.
        pmap_remove_write(p);
        if ((p->valid & p->dirty.load(std::memory_order_relaxed)) != 0) continue;
      }
      pmap_remove_all(p);
      page_free(p);
    }
    if (!slept) break;
  }
  object_pip_wakeup(o);
  page_cache_free(o, start, end);
}

namespace {

// vm_object_terminate: the last reference is gone.  Marks the object dead,
// waits for paging in progress to drain, frees its pages (wired ones are
// left to their wirers, orphaned) and destroys it.  Entered and left with
// o.mtx held... except that it destroys o, so it returns with nothing held.
void object_terminate(Object* o) FL_NO_THREAD_SAFETY_ANALYSIS {
  o->mtx.assert_owned();
  FL_KASSERT(o->ref_count == 0 && o->shadow_count == 0, "terminating an object that is referenced or shadowed");
  o->flags |= kObjDead;
  object_pip_wait(*o, "objtrm");
  Vm& vm = o->vm;
  {
    MutexLock pq(vm.page_queues);
    while (!o->pages.empty()) {
      Page* p = o->pages.begin()->second;
      FL_KASSERT(!p->any_busy(), "terminating an object with a busy page");
      FL_KASSERT(p->pv.empty(), "terminating an object with a mapped page");
      if (p->wire_count == 0) {
        page_free(p);
      } else {
        page_remove(p);
      }
    }
  }
  page_cache_free(*o, 0, 0);
  o->swap.clear();
  o->type = ObjectType::kDead;
  o->mtx.unlock();
  object_free(o);
}

}  // namespace

namespace {

bool anonymous(const Object& o) FL_NO_THREAD_SAFETY_ANALYSIS {
  return o.handle == nullptr && (o.type == ObjectType::kDefault || o.type == ObjectType::kSwap);
}

// vm_object_backing_scan's operations (7.0 vm_object.c 1381-1383); the
// test for the bypass (OBSC_TEST_ALL_SHADOWED) is all_shadowed() below.
enum : unsigned { kCollapseNowait = 2, kCollapseWait = 4 };

// vm_object_backing_scan(OBSC_TEST_ALL_SHADOWED) (7.0 vm_object.c
// 1412-1413, 1428-1465): does `object` shadow every resident page its
// backing object has inside its range, with a valid page of its own or its
// pager's copy?  A backing object with a pager (swap) never qualifies: its
// swap is not looked at.  Both locked; never sleeps.
bool all_shadowed(Object* object) FL_NO_THREAD_SAFETY_ANALYSIS {
  Object* backing = object->backing_object;
  object->mtx.assert_owned();
  backing->mtx.assert_owned();
  if (backing->type != ObjectType::kDefault) return false;
  const Pindex off = object->backing_offset;
  for (const auto& [pindex, p] : backing->pages) {
    if (pindex < off || pindex - off >= object->size) continue;
    Page* pp = page_lookup(*object, pindex - off);
    if ((pp == nullptr || pp->valid == 0) && !pager_has_page(*object, pindex - off, nullptr, nullptr))
      return false;
  }
  return true;
}

// A backing page the shadow does not need: 7.x frees it (a wired one is
// only taken out of the object, its wirer frees it), asserting that it is
// not mapped.  Requires: backing object and page queues locked.
void scan_discard(Vm& vm, Page* p) FL_NO_THREAD_SAFETY_ANALYSIS {
  if (vm.fix(Fix::kCollapseUnmaps))
    pmap_remove_all(p);
  else
    FL_KASSERT(p->pv.empty(), "vm_object_backing_scan: freeing a mapped page");
  if (p->wire_count == 0)
    page_free(p);
  else
    page_remove(p);
}

// vm_object_backing_scan (7.0 vm_object.c 1385-1578).  Both objects are
// locked on entry and on return.  kCollapseWait marks the backing object OBJ_DEAD,
// then moves up every page the shadow lacks and frees the others; a busy
// page makes it sleep ("vmocol") with the shadow unlocked and the backing
// object's lock dropped, then relock both and start over.  kCollapseNowait
// does the same but skips busy and invalid pages.
void backing_scan(Object* object, unsigned op) FL_NO_THREAD_SAFETY_ANALYSIS {
  object->mtx.assert_owned();
  Object* backing = object->backing_object;
  backing->mtx.assert_owned();
  Vm& vm = object->vm;
  const Pindex off = object->backing_offset;
  if ((op & kCollapseWait) != 0) backing->flags |= kObjDead;
restart:
  for (auto it = backing->pages.begin(); it != backing->pages.end();) {
    Page* p = it->second;
    ++it;  // p may leave the object below
    const bool inside = p->pindex >= off && p->pindex - off < object->size;
    const Pindex new_pindex = inside ? p->pindex - off : 0;
    if ((op & kCollapseNowait) != 0 && (p->any_busy() || p->valid == 0)) continue;
    if ((op & kCollapseWait) != 0 && p->any_busy()) {
      {
        MutexLock pq(vm.page_queues);
        p->flags |= kPgReferenced;
      }
      object->mtx.unlock();
      p->oflags |= kVpoWanted;
      vm.counters().bump(vm.counters().collapse_sleeps);
      locking::msleep_drop(p, backing->mtx, "vmocol");
      object->mtx.lock();
      backing->mtx.lock();
      // The backing object is dead: its offset cannot have changed.
      goto restart;
    }
    // The shadow's page at this index (both objects stay locked from here
    // to the discard-or-move below).
    Page* const pp = inside ? page_lookup(*object, new_pindex) : nullptr;
    if ((op & kCollapseNowait) != 0 && pp != nullptr && pp->valid == 0 && vm.fix(Fix::kQcollapseSkipsInvalid)) {
      // Fix qcollapse-skips-invalid: an invalid page of the shadow is a
      // fault's placeholder, and that fault may have found this page and
      // let go of it already (mapped, seed L912, or not, L795-827), with
      // the placeholder still to be freed (L159-163).  Tested before the
      // swap slot goes, so the page keeps its copy.
      vm.counters().bump(vm.counters().qcollapse_kept);
      continue;
    }
    FL_KASSERT(p->object == backing, "vm_object_backing_scan: object mismatch");
    if (backing->type == ObjectType::kSwap) backing->swap.erase(p->pindex);  // swap_pager_freespace
    MutexLock pq(vm.page_queues);
    if (!inside || pp != nullptr || pager_has_page(*object, new_pindex, nullptr, nullptr)) {
      scan_discard(vm, p);
      continue;
    }
    page_rename(p, *object, new_pindex);  // dirties it; its mappings stay (same bytes)
  }
}

// swp_pager_meta_build for one block moved by swap_pager_copy.  Entered and
// left with `dst` locked.  7.x allocates the swap metadata from a UMA zone
// without waiting and, when that fails, unlocks the object, waits for memory
// (VM_WAIT) and tries again.  The model's metadata takes no memory; its
// allocation fails where an M_NOWAIT allocation would, when free memory is
// severely short.
void swap_meta_build(Object& dst, Pindex pindex, std::vector<std::byte> block) FL_NO_THREAD_SAFETY_ANALYSIS {
  dst.mtx.assert_owned();
  Vm& vm = dst.vm;
  if (dst.type != ObjectType::kSwap) dst.type = ObjectType::kSwap;
  while (vm.count_severe()) {
    vm.counters().bump(vm.counters().swap_copy_waits);
    dst.mtx.unlock();
    vm_wait(vm, "swmeta");
    dst.mtx.lock();
  }
  dst.swap[pindex] = std::move(block);
}

// swap_pager_copy (7.0 swap_pager.c): every block of src in [offset,
// offset + dst.size) that dst has no block for moves to dst; for each one
// moved, src is unlocked (with paging in progress on both) while the
// metadata is built, which may sleep.  With destroysource (collapse), the
// rest of src's swap is freed and src reverts to a default object; without
// (split), the blocks outside the range stay.  Both locked on entry and
// return.
void swap_pager_copy(Object& src, Object& dst, Pindex offset, bool destroysource) FL_NO_THREAD_SAFETY_ANALYSIS {
  src.mtx.assert_owned();
  dst.mtx.assert_owned();
  for (Pindex i = 0; i < dst.size; ++i) {
    // 7.0 tests only dst's swap metadata here, though its comment says a
    // resident page of dst wins too; fix swap-copy-keeps-resident does what
    // the comment says for a valid page.  (Not for an invalid one: that is
    // a fault's placeholder, busy while the fault looks below, which may get
    // in while dst is unlocked in swap_meta_build; the data is this block.)
    auto resident = dst.pages.find(i);
    if (dst.swap.count(i) != 0 || (dst.vm.fix(Fix::kSwapCopyKeepsResident) && resident != dst.pages.end() &&
                                   resident->second->valid != 0)) {
      src.swap.erase(i + offset);  // dst's own copy wins
      continue;
    }
    auto node = src.swap.extract(i + offset);  // SWM_POP
    if (node.empty()) continue;
    object_pip_add(src, 1);
    src.mtx.unlock();
    object_pip_add(dst, 1);
    swap_meta_build(dst, i, std::move(node.mapped()));
    object_pip_wakeup(dst);
    src.mtx.lock();
    object_pip_wakeup(src);
  }
  if (!destroysource) return;
  src.swap.clear();
  src.type = ObjectType::kDefault;
}

}  // namespace

void object_collapse(Object* object) FL_NO_THREAD_SAFETY_ANALYSIS {
  object->mtx.assert_owned();
  Vm& vm = object->vm;
  for (;;) {
    Object* backing = object->backing_object;
    if (backing == nullptr) return;
    backing->mtx.lock();  // top first: the backing object is below
    if (!anonymous(*backing) || (backing->flags & kObjDead) != 0 || !anonymous(*object) ||
        (object->flags & kObjDead) != 0) {
      backing->mtx.unlock();
      return;
    }
    if (object->pip != 0 || backing->pip != 0) {
      // vm_object_qcollapse: move up what can be moved without waiting.
      if (backing->ref_count == 1) backing_scan(object, kCollapseNowait);
      backing->mtx.unlock();
      return;
    }
    if (backing->ref_count == 1) {
      // Collapse: only `object` refers to the backing object.  The scan
      // marks it dead first; faults that reach it while the scan or the
      // swap copy sleeps meet seed L323.
      backing_scan(object, kCollapseWait);
      if (backing->type == ObjectType::kSwap) {
        swap_pager_copy(*backing, *object, object->backing_offset, true);
        page_cache_free(*backing, 0, 0);  // their data went up with the swap
      }
      auto& sh = backing->shadows;
      sh.erase(std::remove(sh.begin(), sh.end(), object), sh.end());
      --backing->shadow_count;
      Object* grand = backing->backing_object;
      if (grand != nullptr) {
        // backing's place in grand's shadow list, and its reference on
        // grand, become object's.
        FL_KASSERT(grand->id < object->id, "a backing object younger than its shadow");
        grand->mtx.lock();
        std::replace(grand->shadows.begin(), grand->shadows.end(), backing, object);
        grand->mtx.unlock();
      }
      object->backing_object = grand;
      object->backing_offset += backing->backing_offset;
      FL_KASSERT(backing->ref_count == 1, "backing object was re-referenced during collapse");
      FL_KASSERT(backing->pages.empty() && backing->shadow_count == 0, "collapsed backing object not empty");
      backing->backing_object = nullptr;
      backing->ref_count = 0;
      backing->type = ObjectType::kDead;
      backing->mtx.unlock();
      object_free(backing);
      vm.counters().bump(vm.counters().object_collapses);
      continue;
    }
    // Bypass (7.0 vm_object.c 1731-1777): the backing object has other
    // references, so it stays; if `object` shadows all of its resident
    // pages in range (or has every page of its own resident: 7.0 then
    // skips the test), `object` shadows the backing object's backing
    // object instead, taking a reference on it, and drops its own on the
    // backing object without deallocating it (it had at least two: 1774).
    if (object->pages.size() != object->size && !all_shadowed(object)) {
      backing->mtx.unlock();
      return;
    }
    if (vm.fix(Fix::kBypassUnmaps)) {
      // Fix bypass-unmaps: a translation of a covered page by a process
      // mapping `object` is a stale one (a COW write copied the page and
      // started over, L795-827) and is about to leave the process's chain.
      // Which pmaps those are is not known here: every unwired mapping goes
      // (other processes fault theirs back in); wired ones stay, since
      // vm_fault_unwire finds its pages through them.
      const Pindex off = object->backing_offset;
      MutexLock pq(vm.page_queues);
      for (const auto& [pindex, p] : backing->pages) {
        if (pindex < off || pindex - off >= object->size || p->pv.empty()) continue;
        vm.counters().bump(vm.counters().bypass_unmapped, pmap_remove_unwired(p));
      }
    }
    auto& sh = backing->shadows;
    sh.erase(std::remove(sh.begin(), sh.end(), object), sh.end());
    --backing->shadow_count;
    Object* grand = backing->backing_object;
    object->backing_object = grand;
    if (grand != nullptr) {
      FL_KASSERT(grand->id < object->id, "a backing object younger than its shadow");
      grand->mtx.lock();
      grand->shadows.push_back(object);
      ++grand->shadow_count;
      object_reference_locked(*grand);
      grand->mtx.unlock();
      object->backing_offset += backing->backing_offset;
    }
    FL_KASSERT(backing->ref_count >= 2, "bypassing a backing object with one reference");
    --backing->ref_count;
    backing->mtx.unlock();
    vm.counters().bump(vm.counters().object_bypasses);
  }
}

Object* object_split(Object* orig, Pindex offidxstart, Pindex size) FL_NO_THREAD_SAFETY_ANALYSIS {
  // 7.0 vm_object.c 1270-1379.
  orig->mtx.assert_owned();
  if ((orig->type != ObjectType::kDefault && orig->type != ObjectType::kSwap) || orig->ref_count <= 1)
    return nullptr;
  Vm& vm = orig->vm;
  orig->mtx.unlock();
  Object* nobj = object_allocate(vm, ObjectType::kDefault, size);
  // The new object is nobody else's yet, and younger: locked first.
  nobj->mtx.lock();
  orig->mtx.lock();
  if (Object* source = orig->backing_object; source != nullptr) {
    source->mtx.lock();
    if ((source->flags & kObjDead) != 0) {
      // 1303-1310: the backing object is being collapsed away: no split.
      source->mtx.unlock();
      orig->mtx.unlock();
      nobj->mtx.unlock();
      object_deallocate(nobj);
      orig->mtx.lock();
      return nullptr;
    }
    source->shadows.push_back(nobj);
    ++source->shadow_count;
    object_reference_locked(*source);
    source->flags &= static_cast<std::uint16_t>(~kObjOneMapping);
    source->mtx.unlock();
    nobj->backing_offset = orig->backing_offset + offidxstart;
    nobj->backing_object = source;
  }
  // 1323-1355: move the range's pages, sleeping "spltwt" on a busy one
  // (the new object unlocked, the original still locked on waking), then
  // starting over.  Departure in lock order only: 7.0 relocks the new
  // object holding the original; here both are dropped and retaken top
  // first (new, then original), which the order checker requires, and the
  // scan restarts either way.
  for (;;) {
    Page* busy = nullptr;
    for (auto it = orig->pages.lower_bound(offidxstart); it != orig->pages.end() && it->first < offidxstart + size;) {
      Page* m = it->second;
      ++it;
      if (m->any_busy()) {
        busy = m;
        break;
      }
      MutexLock pq(vm.page_queues);
      page_rename(m, *nobj, m->pindex - offidxstart);
      page_busy(m);
    }
    if (busy == nullptr) break;
    nobj->mtx.unlock();
    page_sleep_if_busy(busy, true, "spltwt");
    vm.counters().bump(vm.counters().split_sleeps);
    orig->mtx.unlock();
    nobj->mtx.lock();
    orig->mtx.lock();
  }
  // 1357-1370: the range's swap moves too (the original keeps the rest).
  if (orig->type == ObjectType::kSwap) {
    swap_pager_copy(*orig, *nobj, offidxstart, false);
    page_cache_transfer(*orig, offidxstart, *nobj);
  }
  orig->mtx.unlock();
  for (auto& [pindex, m] : nobj->pages) page_wakeup(m);
  nobj->mtx.unlock();
  vm.counters().bump(vm.counters().object_splits);
  // 1377: the entry's reference on the original goes (the others it had
  // may have gone meanwhile: then the original is terminated here).
  object_deallocate(orig);
  nobj->mtx.lock();
  return nobj;
}

void object_deallocate(Object* o) FL_NO_THREAD_SAFETY_ANALYSIS {
  // 7.0 vm_object.c 431-585.  Iterative: dropping the last reference on an
  // object drops the one it held on its backing object, and so on down.
  Vm* vm = o != nullptr ? &o->vm : nullptr;
  while (o != nullptr) {
    o->mtx.lock();
    FL_KASSERT(o->ref_count > 0, "deallocating an object with no references");
    if (--o->ref_count > 1) {
      o->mtx.unlock();
      return;
    }
    if (o->ref_count == 1) {
      // 484-485: the last reference, and no shadow sees the pages: one
      // mapping at most from now on.
      if (o->shadow_count == 0) o->flags |= kObjOneMapping;
      if (o->shadow_count != 1 || !anonymous(*o)) {
        o->mtx.unlock();
        return;
      }
      // One reference left, from its only shadow: collapse o into the
      // shadow.  The shadow is above o in the chain: only a try-lock is in
      // order; on failure undo, pause a tick and start over.
      Object* robj = o->shadows.front();
      if (!robj->mtx.try_lock()) {
        ++o->ref_count;
        o->mtx.unlock();
        vm->counters().bump(vm->counters().dealloc_pauses);
        locking::pause(o, "vmo_de", 1000);
        continue;
      }
      if ((robj->flags & kObjDead) != 0 || !anonymous(*robj)) {
        robj->mtx.unlock();
        o->mtx.unlock();
        return;
      }
      ++robj->ref_count;  // keeps robj while o's lock is dropped below
      bool o_locked = true;
      for (;;) {  // retry
        if (robj->pip != 0) {
          o->mtx.unlock();
          vm->counters().bump(vm->counters().dealloc_pip_sleeps);
          object_pip_wait(*robj, "objde1");
          o_locked = false;
          if (robj->backing_object == o) {
            o->mtx.lock();
            o_locked = true;
            continue;
          }
        } else if (o->pip != 0) {
          robj->mtx.unlock();
          o->flags |= kObjPipWanted;
          vm->counters().bump(vm->counters().dealloc_pip_sleeps);
          locking::msleep_drop(&o->pip, o->mtx, "objde2");
          o_locked = false;
          robj->mtx.lock();
          if (robj->backing_object == o) {
            o->mtx.lock();
            o_locked = true;
            continue;
          }
        } else {
          o->mtx.unlock();
          o_locked = false;
        }
        break;
      }
      FL_KASSERT(!o_locked, "vm_object_deallocate: object still locked");
      if (robj->ref_count == 1) {
        // Only our temporary reference is left: terminate the shadow.
        --robj->ref_count;
        o = robj;
      } else {
        // robj stays locked through the collapse; the next pass drops the
        // temporary reference (and may collapse again).
        object_collapse(robj);
        robj->mtx.unlock();
        o = robj;
        continue;
      }
    }
    // doterm: o locked, no references left.
    Object* backing = o->backing_object;
    if (backing != nullptr) {
      backing->mtx.lock();  // top first
      auto& sh = backing->shadows;
      sh.erase(std::remove(sh.begin(), sh.end(), o), sh.end());
      --backing->shadow_count;
      backing->mtx.unlock();
      o->backing_object = nullptr;
    }
    if ((o->flags & kObjDead) == 0)
      object_terminate(o);  // unlocks and destroys o
    else
      o->mtx.unlock();      // someone else is terminating it
    o = backing;
  }
}

void object_shadow(Object** object, Pindex* offset, Pindex length) FL_NO_THREAD_SAFETY_ANALYSIS {
  Object* source = *object;
  FL_KASSERT(source != nullptr, "shadowing no object");
  {
    // Not shared and not reachable by name: no shadow needed (7.x shortcut).
    MutexLock l(source->mtx);
    if (source->ref_count == 1 && source->handle == nullptr &&
        (source->type == ObjectType::kDefault || source->type == ObjectType::kSwap))
      return;
  }
  // The new object is nobody else's until the caller publishes it (under
  // the map lock): as 7.0 (vm_object.c 1240-1253), only the source is locked.
  Object* result = object_allocate(source->vm, ObjectType::kDefault, length);
  result->backing_object = source;
  result->backing_offset = *offset;
  {
    MutexLock l(source->mtx);
    source->shadows.push_back(result);
    ++source->shadow_count;
  }
  *offset = 0;
  *object = result;
}

}  // namespace faultline::vm
