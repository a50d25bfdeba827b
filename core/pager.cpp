#include "core/pager.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/pmap.h"
#include "core/vm.h"
#include "locking/kassert.h"

namespace faultline::vm {

using locking::MutexLock;

const char* pager_result_name(PagerResult r) noexcept {
  switch (r) {
    case PagerResult::kOk: return "VM_PAGER_OK";
    case PagerResult::kFail: return "VM_PAGER_FAIL";
    case PagerResult::kError: return "VM_PAGER_ERROR";
    case PagerResult::kBad: return "VM_PAGER_BAD";
  }
  return "?";
}

Vnode::Vnode(Vm& v, std::uint64_t sz) : vm(v), size(sz), contents(sz) {}

Vnode::~Vnode() { FL_KASSERT(object == nullptr, "destroying a vnode whose object is alive"); }

namespace {

// The object a vnode or a device keeps for its pages (vnode_pager_alloc,
// dev_pager_alloc): made on first use under the owner's lock, with `owner`
// as its handle and size() pages (read under that lock); returned with a new
// reference for the caller.
template <class Guard, class Lock, class Size>
Object* handle_object_alloc(Lock& lock, Object*& slot, void* owner, Vm& vm, ObjectType type, Size size) {
  Guard g(lock);
  if (slot == nullptr) {
    Object* o = object_allocate(vm, type, size());
    MutexLock l(o->mtx);
    o->handle = owner;
    slot = o;
  }
  object_reference(*slot);
  return slot;
}

// The owner goes away: its object loses its handle and the owner's reference.
template <class Guard, class Lock>
void handle_object_release(Lock& lock, Object*& slot) {
  Object* o = nullptr;
  {
    Guard g(lock);
    o = slot;
    slot = nullptr;
  }
  if (o == nullptr) return;
  {
    MutexLock l(o->mtx);
    o->handle = nullptr;
  }
  object_deallocate(o);
}

}  // namespace

Object* vnode_pager_alloc(Vnode& vp) {
  const std::uint32_t ps = vp.vm.page_size();
  return handle_object_alloc<locking::SxExclusiveLock>(vp.lock, vp.object, &vp, vp.vm, ObjectType::kVnode,
                                                       [&] {
                                                         vp.lock.assert_xlocked();  // (for the analysis)
                                                         return (vp.size + ps - 1) / ps;
                                                       });
}

void vnode_release_object(Vnode& vp) {
  handle_object_release<locking::SxExclusiveLock>(vp.lock, vp.object);
}

void vnode_write_last_page(Vnode& vp, std::uint64_t nsize) FL_NO_THREAD_SAFETY_ANALYSIS {
  vp.lock.assert_xlocked();
  const std::uint32_t ps = vp.vm.page_size();
  Object* o = vp.object;
  if (o == nullptr || nsize >= vp.size || nsize % ps == 0) return;
  MutexLock l(o->mtx);
  Page* m = nullptr;
  // allocbuf sleeps on a busy page ("pgtblk"; PG_BUSY only, not the I/O
  // count) and looks again: the object unlocked, the page may be gone.
  for (;;) {
    m = page_lookup(*o, nsize / ps);
    if (m == nullptr || !page_sleep_if_busy(m, false, "pgtblk")) break;
    vp.vm.counters().bump(vp.vm.counters().last_page_busy_waits);
  }
  if (m == nullptr || m->valid == 0) return;
  // Word by word, as the MMU's stores land (pmap_access): the page stays
  // mapped, and a store landing after its word was copied is the window
  // vnode_pager_setsize's zeroing then meets.
  const std::uint64_t off = (nsize / ps) * ps;
  for (std::uint64_t b = 0; b < nsize - off; b += 8) {
    const std::uint64_t w = page_word_mapped(m, static_cast<std::uint32_t>(b));
    std::memcpy(vp.contents.data() + off + b, &w, std::min<std::uint64_t>(8, nsize - off - b));
  }
}

void vnode_pager_setsize(Vnode& vp, std::uint64_t nsize) FL_NO_THREAD_SAFETY_ANALYSIS {
  vp.lock.assert_xlocked();
  const std::uint32_t ps = vp.vm.page_size();
  const std::uint64_t old = vp.size;
  if (Object* o = vp.object; o != nullptr && nsize < old) {
    MutexLock l(o->mtx);
    const Pindex nobjsize = (nsize + ps - 1) / ps;
    if (nobjsize < o->size) object_page_remove(*o, nobjsize, o->size, false);
    // The rest of the last page past the new end must read as zeros.  As
    // 7.0 (vnode_pager.c 385-428): the page is neither waited for nor
    // busied, and it is zeroed first, in place, still mapped (395); only
    // then are its mappings removed (409-410).  A store through a mapping
    // between the two survives past the end of the file (the source's
    // "SMP data integrity" comment); the next access faults, which waits
    // for the vnode lock we hold.  Then the tail is valid and clean, and a
    // page still partly dirty becomes wholly dirty (425-427).
    if (nsize % ps != 0) {
      Page* m = page_lookup(*o, nsize / ps);
      if (m != nullptr && m->valid != 0) {
        const auto base = static_cast<std::uint32_t>(nsize % ps);
        bool mapped = false;
        {
          MutexLock pq(vp.vm.page_queues);
          mapped = !m->pv.empty();
        }
        page_zero_area_mapped(m, base, ps - base);
        if (mapped) vp.vm.counters().bump(vp.vm.counters().setsize_zeroed_mapped);
        MutexLock pq(vp.vm.page_queues);
        pmap_remove_all(m);
        page_set_validclean(m, base, ps - base);
        if (m->is_dirty()) m->dirty.store(kPageBitsAll, std::memory_order_relaxed);
      } else {
        // 429-432: a cached last page is not zeroed but thrown away.
        page_cache_free(*o, nsize / ps, nobjsize);
      }
    }
    o->size = nobjsize;
  } else if (Object* o2 = vp.object; o2 != nullptr) {
    MutexLock l(o2->mtx);
    o2->size = (nsize + ps - 1) / ps;
  }
  vp.contents.resize(nsize);  // growing back fills with zeros
  if (nsize < old) vp.contents.shrink_to_fit();
  vp.size = nsize;
}

Device::Device(Vm& v, Pindex n) : vm(v), npages(n), memory(n * v.page_size()) {}

Device::~Device() {
  MutexLock l(lock);
  FL_KASSERT(object == nullptr, "destroying a device whose object is alive");
}

// (The helpers take dev.object by reference and lock dev.lock themselves,
// which the analysis cannot follow through the template.)
Object* dev_pager_alloc(Device& dev) FL_NO_THREAD_SAFETY_ANALYSIS {
  return handle_object_alloc<MutexLock>(dev.lock, dev.object, &dev, dev.vm, ObjectType::kDevice,
                                        [&] { return dev.npages; });
}

void device_release_object(Device& dev) FL_NO_THREAD_SAFETY_ANALYSIS {
  handle_object_release<MutexLock>(dev.lock, dev.object);
}

namespace {

// The simulated device: the caller sleeps while the transfer takes its time
// (no mutex may be held), and the operation may fail.
bool do_io(Vm& vm, const void* what, const char* wmesg) {
  locking::io_sleep(what, wmesg, vm.config().io_latency_us);
  const std::uint32_t rate = vm.io_error_ppm();
  return rate == 0 || vm.draw_ppm() >= rate;
}

Vnode* vnode_of(Object& o) FL_REQUIRES(o.mtx) {
  o.mtx.assert_owned();
  return static_cast<Vnode*>(o.handle);
}

Device* device_of(Object& o) FL_REQUIRES(o.mtx) {
  o.mtx.assert_owned();
  return o.type == ObjectType::kDevice ? static_cast<Device*>(o.handle) : nullptr;
}

// Settles the non-requested pages of a get_pages call.
void finish_others(Object& o, Page** m, int count, int reqpage, bool ok) FL_REQUIRES(o.mtx) {
  o.mtx.assert_owned();
  MutexLock pq(o.vm.page_queues);
  for (int i = 0; i < count; ++i) {
    if (i == reqpage) continue;
    if (!ok) {
      page_free(m[i]);
      continue;
    }
    // Read-ahead pages: inactive, unless someone already wants them.
    if ((m[i]->oflags & kVpoWanted) != 0)
      page_activate(m[i]);
    else
      page_deactivate(m[i]);
    page_wakeup(m[i]);
  }
}

// The transfer of a get_pages call: with pip held and the object unlocked,
// the device works (or fails), `fill(i)` copies page i in; then page i is
// valid up to `valid_bytes(i)` (the whole page but for a file's last one)
// and the others settled.  Requires: o locked; returns so.
template <class Fill, class ValidBytes>
PagerResult transfer_in(Object& o, Page** m, int count, int reqpage, const char* wmesg, Fill fill,
                        ValidBytes valid_bytes) FL_NO_THREAD_SAFETY_ANALYSIS {
  Vm& vm = o.vm;
  object_pip_add(o, 1);
  o.mtx.unlock();
  const bool ok = do_io(vm, &o, wmesg);
  if (ok)
    for (int i = 0; i < count; ++i) fill(i);
  o.mtx.lock();
  object_pip_wakeup(o);
  if (!ok) {
    finish_others(o, m, count, reqpage, false);
    return PagerResult::kError;
  }
  const std::uint32_t ps = vm.page_size();
  for (int i = 0; i < count; ++i) {
    const std::uint32_t n = valid_bytes(i);
    if (n >= ps) {
      m[i]->valid = kPageBitsAll;
    } else {
      // 7.0 vnode_pager_generic_getpages (the loop after the read): a page
      // the file ends in is made valid and clean only up to the end of the
      // file, in DEV_BSIZE blocks; the rest of it reads as zeros but stays
      // invalid.  A read-ahead page left so is met by a later fault as
      // resident but not fully valid (seed L408-414); the fault's own page
      // is zeroed and validated at L879-881.
      m[i]->valid = 0;
      MutexLock pq(vm.page_queues);
      page_set_validclean(m[i], 0, n);
    }
  }
  vm.counters().bump(vm.counters().v_pgpgin, static_cast<std::uint64_t>(count));
  finish_others(o, m, count, reqpage, true);
  return PagerResult::kOk;
}

}  // namespace

bool pager_has_page(Object& o, Pindex pindex, int* before, int* after) {
  o.mtx.assert_owned();
  if (before != nullptr) *before = 0;
  if (after != nullptr) *after = 0;
  switch (o.type) {
    case ObjectType::kDefault:
    case ObjectType::kDead: return false;
    case ObjectType::kSwap: {
      if (o.swap.count(pindex) == 0) return false;
      if (before != nullptr)
        for (Pindex p = pindex; p > 0 && o.swap.count(p - 1) != 0 && *before < 16; --p) ++*before;
      if (after != nullptr)
        for (Pindex p = pindex + 1; o.swap.count(p) != 0 && *after < 16; ++p) ++*after;
      return true;
    }
    case ObjectType::kVnode: {
      // Every page inside the file exists on "disk".
      if (pindex >= o.size) return false;
      if (before != nullptr) *before = static_cast<int>(pindex < 16 ? pindex : 16);
      if (after != nullptr) {
        Pindex left = o.size - pindex - 1;
        *after = static_cast<int>(left < 16 ? left : 16);
      }
      return true;
    }
    case ObjectType::kDevice:
      // As dev_pager_haspage: every offset, no neighbours (one page per call).
      return o.handle != nullptr;
  }
  return false;
}

PagerResult pager_get_pages(Object& o, Page** m, int count, int reqpage) FL_NO_THREAD_SAFETY_ANALYSIS {
  o.mtx.assert_owned();
  Vm& vm = o.vm;
  const std::uint32_t ps = vm.page_size();
  for (int i = 0; i < count; ++i) FL_KASSERT((m[i]->oflags & kVpoBusy) != 0 && m[i]->object == &o, "getpages of a page not busy or not of this object");
  vm.counters().bump(vm.counters().v_pageins);
  if (o.type == ObjectType::kSwap) {
    // Swap metadata is read under the object lock; the "device" then
    // transfers with the object unlocked.
    std::vector<std::vector<std::byte>> blocks(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
      auto it = o.swap.find(m[i]->pindex);
      if (it == o.swap.end()) {
        finish_others(o, m, count, reqpage, false);
        return PagerResult::kFail;
      }
      blocks[static_cast<std::size_t>(i)] = it->second;
    }
    return transfer_in(
        o, m, count, reqpage, "swread",
        [&](int i) { std::memcpy(m[i]->data, blocks[static_cast<std::size_t>(i)].data(), ps); },
        [ps](int) { return ps; });
  }
  if (o.type == ObjectType::kVnode) {
    Vnode* vp = vnode_of(o);
    if (vp == nullptr || (m[reqpage]->pindex >= o.size && vm.config().mutant != Mutant::kNoEofCheck)) {
      finish_others(o, m, count, reqpage, false);
      return PagerResult::kBad;
    }
    // The caller holds the vnode lock (the fault takes it shared through
    // vnode_pager_lock), so the file cannot be truncated under the read.
    vp->lock.assert_locked();
    return transfer_in(o, m, count, reqpage, "vnread", [&](int i) {
      vp->lock.assert_locked();  // (for the analysis: the lambda is checked on its own)
      const std::uint64_t off = m[i]->pindex * ps;
      const std::uint64_t file_size = vp->size;
      const std::uint64_t n = off >= file_size ? 0 : std::min<std::uint64_t>(ps, file_size - off);
      if (n != 0) std::memcpy(m[i]->data, vp->contents.data() + off, n);
      if (n < ps) std::memset(m[i]->data + n, 0, ps - n);  // zeros past EOF
    }, [&](int i) {
      vp->lock.assert_locked();
      const std::uint64_t off = m[i]->pindex * ps;
      return static_cast<std::uint32_t>(off >= vp->size ? 0 : std::min<std::uint64_t>(ps, vp->size - off));
    });
  }
  if (o.type == ObjectType::kDevice) {
    Device* dev = device_of(o);
    const Pindex pindex = m[reqpage]->pindex;
    DevMmap where = DevMmap::kInvalid;
    if (dev != nullptr)
      where = dev->d_mmap ? dev->d_mmap(pindex) : pindex < dev->npages ? DevMmap::kMapped : DevMmap::kInvalid;
    if (where == DevMmap::kInvalid) {
      finish_others(o, m, count, reqpage, false);
      return PagerResult::kBad;
    }
    if (where == DevMmap::kMoving) {
      // The pager owns the disposition of a page it does not fill (seed
      // L575-577): it frees it and reports success; the fault finds nothing
      // at the offset and starts over.  (7.x's pager substitutes a
      // fictitious page for the one it was given; here the memory is
      // copied into the given page instead, so this is where the
      // substitution shows.)
      finish_others(o, m, count, reqpage, false);
      MutexLock pq(vm.page_queues);
      page_free(m[reqpage]);
      return PagerResult::kOk;
    }
    // (7.0's device pager does no I/O: it hands back a fictitious page.  The
    // model copies the device's memory, and waits as a read would.)
    return transfer_in(o, m, count, reqpage, "devread", [&](int i) {
      MutexLock dl(dev->lock);
      const std::uint64_t off = m[i]->pindex * ps;
      if (m[i]->pindex < dev->npages)
        std::memcpy(m[i]->data, dev->memory.data() + off, ps);
      else
        std::memset(m[i]->data, 0, ps);  // a driver that maps past its memory reads zeros
    }, [ps](int) { return ps; });
  }
  finish_others(o, m, count, reqpage, false);
  return PagerResult::kFail;
}

void pager_put_pages(Object& o, Page** m, int count, PagerResult* rtvals) FL_NO_THREAD_SAFETY_ANALYSIS {
  o.mtx.assert_owned();
  Vm& vm = o.vm;
  const std::uint32_t ps = vm.page_size();
  vm.counters().bump(vm.counters().v_pageouts);
  if (o.type == ObjectType::kDefault) o.type = ObjectType::kSwap;  // default_pager -> swap
  std::vector<std::vector<std::byte>> blocks(static_cast<std::size_t>(count));
  Vnode* vp = o.type == ObjectType::kVnode ? vnode_of(o) : nullptr;
  Device* dev = device_of(o);
  const bool to_swap = o.type == ObjectType::kSwap;
  if (to_swap) {
    // swap_pager_putpages assigns the blocks (swp_pager_meta_build) before
    // the write starts, with the object locked; what the blocks hold is
    // written by the I/O.  A failed write leaves the block assigned and
    // its contents unwritten (7.0's swp_pager_async_iodone cannot free it
    // from interrupt context); the page stays dirty.  Unwritten: poison.
    for (int i = 0; i < count; ++i) o.swap[m[i]->pindex].assign(ps, std::byte{0xdb});
  }
  object_pip_add(o, 1);
  o.mtx.unlock();
  // The pages are soft busy and write-protected: their bytes are stable.
  for (int i = 0; i < count; ++i) {
    auto& b = blocks[static_cast<std::size_t>(i)];
    b.assign(m[i]->data, m[i]->data + ps);
  }
  std::vector<bool> ok(static_cast<std::size_t>(count));
  // The waits of 7.0's synchronous writes: swap's bwait "swwrt", the vnode
  // pager's VOP_WRITE ending in the buffer's "biowr" (the model's device
  // write-back has no 7.0 counterpart).
  const char* wmesg = vp != nullptr ? "biowr" : dev != nullptr ? "devwrt" : "swwrt";
  for (int i = 0; i < count; ++i) ok[static_cast<std::size_t>(i)] = do_io(vm, m[i], wmesg);
  if (vp != nullptr) {
    vp->lock.assert_xlocked();
    for (int i = 0; i < count; ++i) {
      if (!ok[static_cast<std::size_t>(i)] || vm.config().mutant == Mutant::kVnodeWriteLost) continue;
      const std::uint64_t off = m[i]->pindex * ps;
      if (off >= vp->size) continue;  // truncated meanwhile: nothing to write
      const std::uint64_t n = std::min<std::uint64_t>(ps, vp->size - off);
      std::memcpy(vp->contents.data() + off, blocks[static_cast<std::size_t>(i)].data(), n);
    }
  }
  if (dev != nullptr) {
    MutexLock dl(dev->lock);
    for (int i = 0; i < count; ++i) {
      const std::uint64_t off = m[i]->pindex * ps;
      if (ok[static_cast<std::size_t>(i)] && m[i]->pindex < dev->npages)
        std::memcpy(dev->memory.data() + off, blocks[static_cast<std::size_t>(i)].data(), ps);
    }
  }
  o.mtx.lock();
  object_pip_wakeup(o);
  for (int i = 0; i < count; ++i) {
    const bool good = ok[static_cast<std::size_t>(i)];
    rtvals[i] = good ? PagerResult::kOk : PagerResult::kError;
    if (good && to_swap) {
      auto slot = o.swap.find(m[i]->pindex);
      FL_KASSERT(slot != o.swap.end(), "a swap block assigned for a write went away during it");
      slot->second = std::move(blocks[static_cast<std::size_t>(i)]);
    }
  }
  vm.counters().bump(vm.counters().v_pgpgout, static_cast<std::uint64_t>(count));
}

void pager_page_unswapped(Page* m) {
  Object* o = m->object;
  o->mtx.assert_owned();
  if (o->type == ObjectType::kSwap) o->swap.erase(m->pindex);
}

}  // namespace faultline::vm
