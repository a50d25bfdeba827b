#include "core/object.h"

#include <algorithm>

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
  vm.live_objects.fetch_add(1, std::memory_order_relaxed);
}

Object::~Object() { vm.live_objects.fetch_sub(1, std::memory_order_relaxed); }

std::string Object::describe() const { return "object " + std::to_string(id); }

Object* object_allocate(Vm& vm, ObjectType type, Pindex size) { return new Object(vm, type, size); }

void object_reference(Object& o) {
  MutexLock l(o.mtx);
  object_reference_locked(o);
}

void object_reference_locked(Object& o) {
  o.mtx.assert_owned();
  FL_KASSERT(o.ref_count > 0, "referencing an object with no references");
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
  for (;;) {  // again: after any sleep the set may have changed
    bool slept = false;
    auto it = o.pages.lower_bound(start);
    while (it != o.pages.end() && (end == 0 || it->first < end)) {
      Page* p = it->second;
      ++it;
      if (p->wire_count != 0) {
        MutexLock pq(vm.page_queues);
        pmap_remove_all(p);
        if (!clean_only) p->valid = 0;
        continue;
      }
      if (page_sleep_if_busy(p, true, "vmopar")) {
        slept = true;
        break;
      }
      MutexLock pq(vm.page_queues);
      if (clean_only && p->valid != 0) {
        if (pmap_is_modified(p)) p->dirty.store(kPageBitsAll, std::memory_order_relaxed);
        if (p->is_dirty()) continue;
      }
      pmap_remove_all(p);
      page_free(p);
    }
    if (!slept) return;
  }
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
  o->swap.clear();
  o->type = ObjectType::kDead;
  o->mtx.unlock();
  delete o;
}

}  // namespace

namespace {

bool anonymous(const Object& o) FL_NO_THREAD_SAFETY_ANALYSIS {
  return o.handle == nullptr && (o.type == ObjectType::kDefault || o.type == ObjectType::kSwap);
}

// vm_object_collapse, the collapse case: `backing` has one reference, from
// its only shadow `robj`; its pages and swap blocks move up into robj (those
// robj already has, or that fall outside it, are freed), robj takes over
// backing's own backing object, and backing is destroyed.  Requires: both
// locked, no paging in progress on either, no busy or wired page in
// backing.  Returns with robj locked and backing gone.
void collapse(Object* robj, Object* backing) FL_NO_THREAD_SAFETY_ANALYSIS {
  robj->mtx.assert_owned();
  backing->mtx.assert_owned();
  Vm& vm = robj->vm;
  const Pindex off = robj->backing_offset;
  {
    MutexLock pq(vm.page_queues);
    while (!backing->pages.empty()) {
      Page* p = backing->pages.begin()->second;
      const bool inside = p->pindex >= off && p->pindex - off < robj->size;
      const Pindex np = inside ? p->pindex - off : 0;
      if (inside && robj->pages.count(np) == 0 && robj->swap.count(np) == 0) {
        page_rename(p, *robj, np);
      } else {
        pmap_remove_all(p);
        page_free(p);
      }
    }
  }
  for (auto& [s, data] : backing->swap) {
    if (s < off || s - off >= robj->size) continue;
    const Pindex ns = s - off;
    if (robj->pages.count(ns) != 0 || robj->swap.count(ns) != 0) continue;
    robj->swap.emplace(ns, std::move(data));
    if (robj->type == ObjectType::kDefault) robj->type = ObjectType::kSwap;
  }
  Object* grand = backing->backing_object;
  if (grand != nullptr) {
    FL_KASSERT(grand->id < robj->id, "a backing object younger than its shadow");
    grand->mtx.lock();
    std::replace(grand->shadows.begin(), grand->shadows.end(), backing, robj);
    grand->mtx.unlock();
  }
  robj->backing_object = grand;
  robj->backing_offset = off + backing->backing_offset;
  backing->backing_object = nullptr;
  backing->ref_count = 0;
  backing->shadow_count = 0;
  backing->shadows.clear();
  backing->swap.clear();
  backing->flags |= kObjDead;
  backing->type = ObjectType::kDead;
  backing->mtx.unlock();
  delete backing;
  vm.counters().bump(vm.counters().object_collapses);
}

// After o dropped to one reference: if that reference is its only shadow's,
// try to collapse o into the shadow.  Requires: o locked; returns with o
// unlocked (or destroyed).
void maybe_collapse(Object* o) FL_NO_THREAD_SAFETY_ANALYSIS {
  o->mtx.assert_owned();
  if (o->ref_count != 1 || o->shadow_count != 1 || !anonymous(*o) || o->pip != 0) {
    o->mtx.unlock();
    return;
  }
  Object* robj = o->shadows.front();
  // The shadow is above o in the chain: only a try-lock is in order here.
  if (!robj->mtx.try_lock()) {
    o->mtx.unlock();
    return;
  }
  bool ok = anonymous(*robj) && robj->pip == 0 && robj->backing_object == o;
  for (auto it = o->pages.begin(); ok && it != o->pages.end(); ++it)
    ok = !it->second->any_busy() && it->second->wire_count == 0 && it->second->hold_count == 0;
  if (ok) {
    collapse(robj, o);  // unlocks and destroys o
  } else {
    o->mtx.unlock();
  }
  robj->mtx.unlock();
}

}  // namespace

void object_deallocate(Object* o) FL_NO_THREAD_SAFETY_ANALYSIS {
  // Iterative: dropping the last reference on an object drops the reference
  // it held on its backing object, and so on down the chain.
  while (o != nullptr) {
    o->mtx.lock();
    FL_KASSERT(o->ref_count > 0, "deallocating an object with no references");
    if (--o->ref_count > 0) {
      maybe_collapse(o);
      return;
    }
    Object* backing = o->backing_object;
    if (backing != nullptr) {
      // Top object first, then its backing object (chain order).
      backing->mtx.lock();
      auto& sh = backing->shadows;
      sh.erase(std::remove(sh.begin(), sh.end(), o), sh.end());
      --backing->shadow_count;
      backing->mtx.unlock();
      o->backing_object = nullptr;
    }
    object_terminate(o);
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
  Object* result = object_allocate(source->vm, ObjectType::kDefault, length);
  {
    MutexLock r(result->mtx);
    result->backing_object = source;
    result->backing_offset = *offset;
    source->mtx.lock();
    source->shadows.push_back(result);
    ++source->shadow_count;
    source->mtx.unlock();
  }
  *offset = 0;
  *object = result;
}

}  // namespace faultline::vm
