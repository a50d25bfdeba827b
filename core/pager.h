// Pagers (FreeBSD vm_pager.c, default_pager.c, swap_pager.c, vnode_pager.c).
//
//   default  nothing behind it: zero fill.  Becomes a swap object the first
//            time one of its pages is laundered.
//   swap     keeps laundered page contents; has_page reports how many
//            contiguous neighbours it also has (before / after).
//   vnode    a file with a size and contents; reads zeros past EOF within the
//            last page; writes back dirty pages.
//   device   a character device's memory (7.x dev_pager.c), one page per
//            call; its driver's d_mmap may say an offset's memory is being
//            moved, and then the pager disposes of the page it was given and
//            reports success with nothing at the offset (seed L575-583).
//
// All I/O happens with the object unlocked and the pages busy (VPO_BUSY for
// page-ins, the soft busy count for page-outs), passes a schedule point of
// kind kIo with the configured latency (where a deterministic scheduler
// advances virtual time and a thread run may delay), and fails with
// probability io_error_ppm, drawn from the run's seed.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/locks.h"
#include "core/object.h"
#include "locking/locking.h"

namespace faultline::vm {

class Vm;

enum class PagerResult : std::uint8_t { kOk, kFail, kError, kBad };
const char* pager_result_name(PagerResult r) noexcept;

// A file: size in bytes and contents, under its (sleepable) vnode lock.
class Vnode {
 public:
  Vnode(Vm& vm, std::uint64_t size);
  ~Vnode();
  Vnode(const Vnode&) = delete;
  Vnode& operator=(const Vnode&) = delete;

  Vm& vm;
  locking::SxLock lock{vnode_lock_class, "vnode"};
  std::uint64_t size FL_GUARDED_BY(lock);
  std::vector<std::byte> contents FL_GUARDED_BY(lock);  // size bytes
  Object* object = nullptr;  // its VM object (vnode_pager_alloc), one reference held by the vnode
};

// What a device driver's d_mmap says about one page offset of its memory.
enum class DevMmap : std::uint8_t {
  kMapped,   // memory is there
  kMoving,   // the driver is moving it: the pager disposes of the page, the fault looks again
  kInvalid,  // no memory at this offset: VM_PAGER_BAD
};

// A character device with `npages` pages of memory that processes can mmap.
class Device {
 public:
  Device(Vm& vm, Pindex npages);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  Vm& vm;
  const Pindex npages;
  locking::Mutex lock{device_lock_class, "device"};
  std::vector<std::byte> memory FL_GUARDED_BY(lock);  // npages pages
  // The driver's d_mmap, called by the pager with the device's object
  // locked.  Unset: kMapped inside the memory, kInvalid past it.
  std::function<DevMmap(Pindex)> d_mmap;
  Object* object FL_GUARDED_BY(lock) = nullptr;  // its VM object, one reference held by the device
};

// dev_pager_alloc: the device's object, made on first use; returns it with a
// new reference for the caller.  Requires: nothing held.
Object* dev_pager_alloc(Device& dev);
// Drops the device's own reference on its object (the device goes away).
void device_release_object(Device& dev);

// vnode_pager_alloc: the vnode's object, made on first use; returns it with a
// new reference for the caller.  Requires: nothing held.
Object* vnode_pager_alloc(Vnode& vp);
// Drops the vnode's own reference on its object (vrele of the last user).
void vnode_release_object(Vnode& vp);

// The file system's part of shortening a file to `nsize` inside a page,
// before vnode_pager_setsize: 7.0's ffs_truncate reads the new last block
// into a buffer (UFS_BALLOC), zeroes it past the new end and writes it
// (bwrite/bawrite), and a buffer's pages are the object's pages, so what a
// store through a mapping left there below the new end reaches the file.
// The model has no buffer cache: it writes the resident page's bytes below
// nsize to the file.  Without it, vnode_pager_setsize's clearing of the
// page's dirty bits (inclusive of the block the end falls in) loses them.
// 7.0's vfs_busy_pages, readying a buffer's pages for I/O, removes their
// mappings; the model leaves the page mapped, so setsize's window (a store
// between its zeroing and its pmap_remove_all) stays open.
// Requires: vp.lock held exclusively.
void vnode_write_last_page(Vnode& vp, std::uint64_t nsize) FL_REQUIRES(vp.lock);

// vnode_pager_setsize (truncate or extend the file): past a new, smaller
// end the object's pages are removed (waiting on busy ones), the tail of the
// last partial page is zeroed, the object shrinks; growing reads zeros.
// Requires: vp.lock held exclusively.
void vnode_pager_setsize(Vnode& vp, std::uint64_t new_size) FL_REQUIRES(vp.lock);

// vm_pager_has_page.  Requires: o locked.
bool pager_has_page(Object& o, Pindex pindex, int* before, int* after) FL_REQUIRES(o.mtx);
// vm_pager_get_pages: fills pages m[0..count) (all VPO_BUSY, consecutive
// pindexes, m[reqpage] the one asked for).  On kOk every page is valid, the
// others are activated or deactivated and unbusied; on failure the others are
// freed and m[reqpage] is left to the caller.  Requires: o locked (dropped
// during the I/O and held again on return).
PagerResult pager_get_pages(Object& o, Page** m, int count, int reqpage) FL_REQUIRES(o.mtx);
// vm_pager_put_pages: writes pages m[0..count) (soft busy, write-protected by
// the caller) back; per-page results in `rtvals`.  A default object becomes
// a swap object.  Requires: o locked (dropped during the I/O); for a vnode
// object, the vnode locked exclusively by the caller, taken before the pages
// were busied (vnode -> busy is the order: truncation holds the vnode and
// waits for busy pages).
void pager_put_pages(Object& o, Page** m, int count, PagerResult* rtvals) FL_REQUIRES(o.mtx);
// vm_pager_page_unswapped: the page was dirtied; its swap copy is stale.
void pager_page_unswapped(Page* m);

}  // namespace faultline::vm
