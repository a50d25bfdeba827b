#include "core/pageout.h"

#include <chrono>

#include "core/object.h"
#include "core/pager.h"
#include "core/pmap.h"
#include "core/vm.h"

namespace faultline::vm {

using locking::MutexLock;

namespace {

// vm_pageout_clean / vm_pageout_flush for one page.  Entered with the
// page's object and the page queues held; returns with both held.
bool launder(Vm& vm, Page* m) FL_NO_THREAD_SAFETY_ANALYSIS {
  Object& o = *m->object;
  o.mtx.assert_owned();
  vm.page_queues.assert_owned();
  page_io_start(m);
  pmap_remove_write(m);  // no writes while the pager copies the bytes
  vm.page_queues.unlock();
  PagerResult rt = PagerResult::kError;
  pager_put_pages(o, &m, 1, &rt);
  vm.page_queues.lock();
  const bool ok = rt == PagerResult::kOk;
  if (ok) {
    // Written back and write-protected since: clean.
    m->dirty.store(0, std::memory_order_relaxed);
  } else {
    page_activate(m);  // keep it, and its data, for later
  }
  page_io_finish(m);
  return ok;
}

}  // namespace

PageoutStats pageout_scan(Vm& vm) FL_NO_THREAD_SAFETY_ANALYSIS {
  PageoutStats st;
  Counters& cnt = vm.counters();
  const auto shortage = [&] {
    return vm.free_count.load() + vm.cache_count.load() < vm.config().free_target;
  };
  vm.page_queues.lock();
  // Inactive queue: at most one pass over what is there now.
  std::size_t maxscan = vm.inactive.count;
  for (Page* m = vm.inactive.head; m != nullptr && maxscan-- > 0;) {
    Page* next = m->q_next;
    ++st.scanned;
    cnt.bump(cnt.v_pdpages);
    if ((m->flags & kPgMarker) != 0 || m->hold_count != 0 || m->wire_count != 0) {
      ++st.skipped;
      m = next;
      continue;
    }
    Object* o = m->object;
    if (!o->mtx.try_lock()) {
      ++st.skipped;
      m = next;
      continue;
    }
    if (m->any_busy()) {
      o->mtx.unlock();
      ++st.skipped;
      m = next;
      continue;
    }
    // Referenced since we last looked: back to the active queue.
    bool referenced = (m->flags & kPgReferenced) != 0;
    m->flags &= static_cast<std::uint8_t>(~kPgReferenced);
    if (pmap_ts_referenced(m) != 0) referenced = true;
    if (referenced && o->ref_count != 0) {
      page_activate(m);
      ++st.reactivated;
      cnt.bump(cnt.v_reactivated);
      o->mtx.unlock();
      m = next;
      continue;
    }
    if (m->valid == 0) {
      pmap_remove_all(m);
      page_free(m);
      ++st.freed;
    } else {
      if (pmap_is_modified(m)) m->dirty.store(kPageBitsAll, std::memory_order_relaxed);
      if (!m->is_dirty()) {
        pmap_remove_all(m);
        if (!m->is_dirty()) {
          page_cache(m);
          ++st.cached;
        }
      } else if (Vnode* vp = o->type == ObjectType::kVnode ? static_cast<Vnode*>(o->handle) : nullptr;
                 vp != nullptr && !vp->lock.try_xlock()) {
        // A file page: the vnode must be locked before the page is busied
        // (truncation holds the vnode and waits for busy pages).  In use
        // elsewhere: skip it this time, as 7.x's vget with LK_NOWAIT does.
        ++st.skipped;
      } else if (!shortage()) {
        if (vp != nullptr) vp->lock.xunlock();
      } else {
        // The page queues are dropped during the I/O and `next` may leave
        // the queue meanwhile: a marker after m keeps our place (7.x does
        // the same).
        Page marker;
        marker.vm = &vm;
        marker.flags = kPgMarker;
        marker.queue = PageQueue::kInactive;
        marker.q_prev = m;
        marker.q_next = m->q_next;
        (m->q_next != nullptr ? m->q_next->q_prev : vm.inactive.tail) = &marker;
        m->q_next = &marker;
        ++vm.inactive.count;
        if (launder(vm, m))
          ++st.laundered;
        else
          ++st.launder_failed;
        o->mtx.unlock();
        if (vp != nullptr) vp->lock.xunlock();
        next = marker.q_next;
        vm.inactive.unlink(&marker);
        m = next;
        continue;
      }
    }
    o->mtx.unlock();
    m = next;
  }
  // Active queue: move pages not referenced since the last look to the
  // inactive queue while memory is short.
  std::size_t active_scan = vm.active.count;
  for (Page* m = vm.active.head; m != nullptr && active_scan-- > 0 && shortage();) {
    Page* next = m->q_next;
    if (m->hold_count == 0 && m->wire_count == 0 && m->busy == 0) {
      const bool referenced = (m->flags & kPgReferenced) != 0 || pmap_ts_referenced(m) != 0;
      m->flags &= static_cast<std::uint8_t>(~kPgReferenced);
      if (!referenced) {
        page_deactivate(m);
        ++st.deactivated;
      } else {
        // Requeue at the tail: it gets another round.
        vm.active.unlink(m);
        vm.active.push_tail(m);
      }
    }
    m = next;
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
  if (vm.count_min() || waiters) pageout_scan(vm);
  return true;
}

}  // namespace faultline::vm
