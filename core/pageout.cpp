#include "core/pageout.h"

#include <algorithm>
#include <chrono>

#include "core/object.h"
#include "core/pager.h"
#include "core/pmap.h"
#include "core/vm.h"
#include "locking/kassert.h"

namespace faultline::vm {

using locking::MutexLock;

// Line numbers below are 7.0-RELEASE's vm_pageout.c (r172317).
namespace {

constexpr int kActDecline = 1;   // ACT_DECLINE (vm_page.h)
constexpr int kActAdvance = 3;   // ACT_ADVANCE
constexpr int kActMax = 64;      // ACT_MAX
constexpr int kMaxLaunder = 32;  // vm_max_launder (153)
// VLKTIMEOUT (vnode.h: hz / 20 + 1 ticks, 51 ms at hz = 1000): how long the
// daemon's vget(LK_EXCLUSIVE | LK_TIMELOCK) waits for a vnode lock.
constexpr std::uint32_t kVnodeLockTimeoutUs = 51000;
constexpr std::uint32_t kVnodeLockPollUs = 3000;

PageList& queue_of(Vm& vm, PageQueue q) FL_NO_THREAD_SAFETY_ANALYSIS {
  return q == PageQueue::kActive ? vm.active : vm.inactive;
}

// The scan's place holder: never a page anyone can take (busy, wired).
void init_marker(Vm& vm, Page& marker, PageQueue q) {
  marker.vm = &vm;
  marker.flags = kPgMarker;
  marker.oflags = kVpoBusy;
  marker.wire_count = 1;
  marker.queue = q;
}

void insert_after(Vm& vm, Page* m, Page* marker) FL_NO_THREAD_SAFETY_ANALYSIS {
  vm.page_queues.assert_owned();
  PageList& l = queue_of(vm, m->queue);
  marker->queue = m->queue;
  marker->q_prev = m;
  marker->q_next = m->q_next;
  (m->q_next != nullptr ? m->q_next->q_prev : l.tail) = marker;
  m->q_next = marker;
  ++l.count;
}

void remove_marker(Vm& vm, Page* marker) FL_NO_THREAD_SAFETY_ANALYSIS {
  vm.page_queues.assert_owned();
  queue_of(vm, marker->queue).unlink(marker);
}

// vm_pageq_requeue: to the tail of its queue.
void requeue(Vm& vm, Page* m) FL_NO_THREAD_SAFETY_ANALYSIS {
  vm.page_queues.assert_owned();
  PageList& l = queue_of(vm, m->queue);
  l.unlink(m);
  l.push_tail(m);
}

// vm_pageout_fallback_object_lock (232-265): the object's try-lock failed.
// A marker after m keeps the place; the page queues are dropped, the object
// lock is waited for (object before page queues: the declared order), the
// page queues taken again.  *next becomes what follows the marker.  Returns
// whether m is still on the same queue, of the same object, just before the
// marker; either way the object is locked on return.  7.0 relies on objects
// being type-stable here (m's object may have been freed meanwhile): the
// model defers freeing objects while a scan runs (object.cpp).
bool fallback_object_lock(Vm& vm, Page* m, Page** next) FL_NO_THREAD_SAFETY_ANALYSIS {
  Page marker;
  init_marker(vm, marker, m->queue);
  const PageQueue queue = m->queue;
  Object* object = m->object;
  insert_after(vm, m, &marker);
  vm.page_queues.unlock();
  object->mtx.lock();
  vm.page_queues.lock();
  *next = marker.q_next;
  // 7.0 asks whether m is on the same queue and followed by the marker,
  // then whether it has the same object.  The model asks the marker first:
  // only the page queues move it, so that read is race-free, and m is still
  // right before it exactly when m is still on that queue just before it
  // (a page that left a queue is put back at an end of one, never before a
  // marker in the middle).  Only then are m's fields read: a page that left
  // may be on the free list, where the free-queue mutex guards them.
  const bool unchanged = (marker.q_prev == m && m->queue == queue && m->object == object) ||
                         vm.config().mutant == Mutant::kPageoutNoRevalidate;
  remove_marker(vm, &marker);
  Counters& cnt = vm.counters();
  cnt.bump(cnt.pageout_fallbacks);
  if (!unchanged) cnt.bump(cnt.pageout_fallback_lost);
  return unchanged;
}

// The object's lock, by try-lock or by the fallback.  Returns false (the
// object still locked) when the fallback found the page changed.
bool lock_object_of(Vm& vm, Object* object, Page* m, Page** next) FL_NO_THREAD_SAFETY_ANALYSIS {
  if (object->mtx.try_lock()) return true;
  return fallback_object_lock(vm, m, next);
}

// vm_page_try_to_cache: cache m if nothing uses it and it is still clean
// once unmapped.
void try_to_cache(Page* m) FL_NO_THREAD_SAFETY_ANALYSIS {
  if (m->is_dirty() || m->hold_count != 0 || m->any_busy() || m->wire_count != 0) return;
  pmap_remove_all(m);
  if (m->is_dirty()) return;
  page_cache(m);
}

// vm_pageout_clean + vm_pageout_flush (276-401, 413-492) for one page (7.0
// clusters up to 16 dirty inactive neighbours; the model writes one).
// Entered with the page's object and the page queues held; returns with
// both held.  Returns whether the page was written.
bool launder(Vm& vm, Page* m) FL_NO_THREAD_SAFETY_ANALYSIS {
  Object& o = *m->object;
  o.mtx.assert_owned();
  vm.page_queues.assert_owned();
  if (m->hold_count != 0 || m->any_busy()) return false;  // 301-304
  page_io_start(m);
  pmap_remove_write(m);  // no writes while the pager copies the bytes
  vm.page_queues.unlock();
  PagerResult rt = PagerResult::kError;
  pager_put_pages(o, &m, 1, &rt);  // pip held inside, the object unlocked for the I/O
  vm.page_queues.lock();
  const bool ok = rt == PagerResult::kOk;
  if (ok) {
    // Written back and write-protected since: clean (swp_pager_async_iodone).
    m->dirty.store(0, std::memory_order_relaxed);
  } else {
    page_activate(m);  // 465-472: keep it, and its data, for later
  }
  page_io_finish(m);
  if (vm.count_severe()) try_to_cache(m);  // 487-488
  return ok;
}

// vget(vp, LK_EXCLUSIVE | LK_TIMELOCK): the exclusive vnode lock, waiting
// at most VLKTIMEOUT.  The model polls (try-lock, then pause) where 7.0's
// lockmgr queues with a timeout; both give up after the same time.
bool vget_timelock(Vnode& vp) FL_NO_THREAD_SAFETY_ANALYSIS {
  for (std::uint32_t waited = 0;; waited += kVnodeLockPollUs) {
    if (vp.lock.try_xlock()) return true;
    if (waited >= kVnodeLockTimeoutUs) return false;
    locking::pause(&vp, "vget", kVnodeLockPollUs);
  }
}

}  // namespace

PageoutStats pageout_scan(Vm& vm, int pass) FL_NO_THREAD_SAFETY_ANALYSIS {
  PageoutStats st;
  Counters& cnt = vm.counters();
  const auto free_and_cache = [&] {
    return static_cast<long>(vm.free_count.load()) + static_cast<long>(vm.cache_count.load());
  };
  // vm_paging_target(): how far free + cache is below the target.
  const auto paging_target = [&] { return static_cast<long>(vm.config().free_target) - free_and_cache(); };
  ScanGuard scanning(vm);  // objects are freed only once no scan runs
  long page_shortage = paging_target();  // 698, 704 (no deficit here)
  int maxlaunder = pass != 0 ? 10000 : kMaxLaunder;  // 731-734
  long addl_page_shortage = 0;
  vm.page_queues.lock();
  // ---- the inactive queue (736-1038) ----
rescan0:
  addl_page_shortage = 0;
  std::size_t maxscan = vm.inactive.count;
  Page* next = nullptr;
  for (Page* m = vm.inactive.head; m != nullptr && maxscan-- > 0 && page_shortage > 0; m = next) {
    ++st.scanned;
    cnt.bump(cnt.v_pdpages);
    if (m->queue != PageQueue::kInactive) goto rescan0;  // 746-748
    next = m->q_next;
    Object* object = m->object;
    if ((m->flags & kPgMarker) != 0) continue;
    if (m->hold_count != 0) {  // 762-766
      requeue(vm, m);
      ++addl_page_shortage;
      ++st.skipped;
      continue;
    }
    // 771-777: try-lock, else the fallback; a page changed meanwhile, or
    // held now, is left.
    if (!lock_object_of(vm, object, m, &next) || m->hold_count != 0) {
      object->mtx.unlock();
      ++addl_page_shortage;
      ++st.skipped;
      continue;
    }
    if (m->any_busy()) {  // 778-782
      object->mtx.unlock();
      ++addl_page_shortage;
      ++st.skipped;
      continue;
    }
    // 788-821: references.
    if (object->ref_count == 0) {
      m->flags &= static_cast<std::uint8_t>(~kPgReferenced);
      pmap_ts_referenced(m);  // pmap_clear_reference
    } else if ((m->flags & kPgReferenced) == 0) {
      if (const int actcount = pmap_ts_referenced(m); actcount > 0) {
        page_activate(m);
        object->mtx.unlock();
        m->act_count = static_cast<std::uint8_t>(m->act_count + actcount + kActAdvance);
        ++st.reactivated;
        cnt.bump(cnt.v_reactivated);
        continue;
      }
    }
    if ((m->flags & kPgReferenced) != 0) {
      m->flags &= static_cast<std::uint8_t>(~kPgReferenced);
      const int actcount = pmap_ts_referenced(m);
      page_activate(m);
      object->mtx.unlock();
      m->act_count = static_cast<std::uint8_t>(m->act_count + actcount + kActAdvance + 1);
      ++st.reactivated;
      cnt.bump(cnt.v_reactivated);
      continue;
    }
    // 830-847: the pmap's modified bits; a clean page loses its mappings
    // first, so no store can dirty it between here and vm_page_cache.
    if (!m->is_dirty() && !pmap_is_modified(m)) {
      pmap_remove_all(m);
    } else {
      page_dirty(m);
    }
    if (m->valid == 0) {  // 850-856
      page_free(m);
      ++st.freed;
      --page_shortage;
    } else if (!m->is_dirty()) {  // 857-863
      page_cache(m);
      ++st.cached;
      --page_shortage;
    } else if ((m->flags & kPgWinatcfls) == 0 && pass == 0) {  // 864-878
      // A dirty page goes round once more before it is laundered.
      m->flags |= kPgWinatcfls;
      requeue(vm, m);
      cnt.bump(cnt.pageout_second_chance);
      ++st.second_chance;
    } else if (maxlaunder > 0) {  // 879-1034
      if ((object->flags & kObjDead) != 0) {  // 904-907
        object->mtx.unlock();
        requeue(vm, m);
        continue;
      }
      Page marker;
      init_marker(vm, marker, PageQueue::kInactive);
      insert_after(vm, m, &marker);
      Vnode* vp = nullptr;
      bool vnode_path = false;
      bool vnode_locked = false;
      bool clean = true;
      if (object->type == ObjectType::kVnode && object->handle != nullptr) {
        // 943-1011: take a reference, drop the page queues and the object,
        // lock the vnode (sleeping, with a time limit), then relock and
        // revalidate: still inactive, of this object, just before the
        // marker, and not busy or held.
        vp = static_cast<Vnode*>(object->handle);
        vnode_path = true;
        vm.page_queues.unlock();
        object_reference_locked(*object);
        object->mtx.unlock();
        vnode_locked = vget_timelock(*vp);
        object->mtx.lock();
        vm.page_queues.lock();
        // The page's fields are read only once it is known to be still
        // right before the marker (a page that left may be free).
        const bool moved =
            vnode_locked && (marker.q_prev != m || m->queue != PageQueue::kInactive || m->object != object);
        const bool held = vnode_locked && !moved && !m->any_busy() && m->hold_count != 0;
        clean = vnode_locked && !moved && !m->any_busy() && !held;
        if (held) requeue(vm, m);  // 998-1002: a held page goes to the queue's tail
        if (!clean) ++st.skipped;  // without the vnode: pageout_lock_miss
        if (vnode_locked && !clean) cnt.bump(cnt.pageout_vnode_lost);
      }
      if (clean) {
        if (launder(vm, m)) {
          ++st.laundered;
          if (vnode_path) cnt.bump(cnt.pageout_vnode_launders);
          --page_shortage;
          --maxlaunder;
        } else {
          ++st.launder_failed;
        }
      }
      // unlock_and_continue (1020-1034).
      object->mtx.unlock();
      if (vnode_path) {
        vm.page_queues.unlock();
        if (vnode_locked) vp->lock.xunlock();
        object_deallocate(object);
        vm.page_queues.lock();
      }
      next = marker.q_next;
      remove_marker(vm, &marker);
      continue;
    }
    object->mtx.unlock();
  }
  // ---- the active queue (1043-1139) ----
  {
    const long inactive_target =
        std::min<long>(3L * vm.config().free_target / 2, static_cast<long>(vm.npages()) / 3);  // 1410-1417
    page_shortage = paging_target() + inactive_target - static_cast<long>(vm.inactive.count) + addl_page_shortage;
    std::size_t pcount = vm.active.count;
    Page* m = vm.active.head;
    while (m != nullptr && pcount-- > 0 && page_shortage > 0) {
      FL_KASSERT(m->queue == PageQueue::kActive, "vm_pageout_scan: page isn't active");
      next = m->q_next;
      Object* object = m->object;
      if ((m->flags & kPgMarker) != 0) {
        m = next;
        continue;
      }
      if (!lock_object_of(vm, object, m, &next)) {
        object->mtx.unlock();
        m = next;
        continue;
      }
      if (m->any_busy() || m->hold_count != 0) {  // 1076-1083
        object->mtx.unlock();
        requeue(vm, m);
        m = next;
        continue;
      }
      cnt.bump(cnt.v_pdpages);
      int actcount = 0;
      if (object->ref_count != 0) {
        if ((m->flags & kPgReferenced) != 0) actcount += 1;
        actcount += pmap_ts_referenced(m);
        if (actcount != 0) m->act_count = static_cast<std::uint8_t>(std::min(m->act_count + kActAdvance + actcount, kActMax));
      }
      m->flags &= static_cast<std::uint8_t>(~kPgReferenced);
      if (actcount != 0 && object->ref_count != 0) {
        requeue(vm, m);
      } else {
        m->act_count = static_cast<std::uint8_t>(m->act_count - std::min<int>(m->act_count, kActDecline));
        if (object->ref_count == 0 || m->act_count == 0) {
          --page_shortage;
          if (object->ref_count == 0) {
            pmap_remove_all(m);
            if (!m->is_dirty())
              page_cache(m);
            else
              page_deactivate(m);
          } else {
            page_deactivate(m);
          }
          ++st.deactivated;
        } else {
          requeue(vm, m);
        }
      }
      object->mtx.unlock();
      m = next;
    }
  }
  vm.page_queues.unlock();
  return st;
}

bool pageout_daemon_step(Vm& vm, const std::atomic<bool>& stop, unsigned timeout_ms)
    FL_NO_THREAD_SAFETY_ANALYSIS {
  bool waiters = false;
  {
    MutexLock f(vm.free_mtx);
    // pages_needed is set before the waker takes free_mtx to wake us, so
    // checking it under free_mtx cannot miss a wakeup.
    if (!stop.load() && !vm.pages_needed.load() && !vm.count_min())
      locking::msleep(&vm.pages_needed, vm.free_mtx, "psleep", std::chrono::milliseconds(timeout_ms));
    waiters = vm.free_waiters != 0;
  }
  if (stop.load()) return false;
  vm.pages_needed.store(false);
  if (vm.count_min() || waiters) {
    // 7.0's vm_pageout loop (1439-1487): a pass that leaves memory short is
    // followed by one with unlimited laundering and no second chance.
    const int pass = vm.pageout_pass;
    pageout_scan(vm, pass);
    vm.pageout_pass = vm.count_min() ? pass + 1 : 0;
  } else {
    vm.pageout_pass = 0;
  }
  return true;
}

}  // namespace faultline::vm
