// The fixture of the fault and operations tests: a Vm, one map, user loads
// and stores through the MMU, swap-backed objects, a hook at the first
// pager I/O, and the invariant checker at every teardown.
#pragma once

#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>

#include "core/fault.h"
#include "core/invariants.h"
#include "core/pager.h"
#include "core/test_util.h"

namespace faultline::vm::testing {

using locking::MutexLock;

constexpr std::uint64_t kBase = 0x100000;

class FaultTest : public CoreTest {
 public:
 protected:
  void SetUp() override {
    CoreTest::SetUp();
    map_ = std::make_unique<Map>(vm(), kBase, kBase + (1ull << 30));
  }
  void TearDown() override {
    locking::set_point_hook(nullptr, nullptr);
    // Every test ends quiescent: the invariants must hold.
    std::vector<Map*> maps{map_.get()};
    maps.insert(maps.end(), extra_maps_.begin(), extra_maps_.end());
    std::vector<Device*> devices;
    for (auto& dev : devices_) devices.push_back(dev.get());
    for (const std::string& f : check_invariants(vm(), maps, vnodes_, devices)) ADD_FAILURE() << "invariant: " << f;
    for (Map* m : extra_maps_) map_remove_all(*m);
    for (Vnode* vp : vnodes_) vnode_release_object(*vp);
    for (auto& dev : devices_) device_release_object(*dev);
    map_remove_all(*map_);
    for (const std::string& f : check_invariants(vm(), {map_.get()}))
      ADD_FAILURE() << "invariant after unmapping everything: " << f;
    owned_maps_.clear();
    owned_vnodes_.clear();
    map_.reset();
    devices_.clear();
    CoreTest::TearDown();
  }
  Map& map() { return *map_; }
  std::uint64_t ps() { return vm().page_size(); }

  std::uint64_t mmap_anon(std::uint64_t pages, std::uint8_t prot = kProtRead | kProtWrite) {
    std::uint64_t va = 0;
    EXPECT_EQ(map_mmap(map(), &va, pages * ps(), nullptr, 0, prot, kProtAll, 0, Inherit::kCopy),
              Kern::kSuccess);
    return va;
  }
  std::uint64_t mmap_object(Object* o, std::uint64_t pages, std::uint8_t prot, std::uint16_t eflags = 0) {
    std::uint64_t va = 0;
    EXPECT_EQ(map_mmap(map(), &va, pages * ps(), o, 0, prot, kProtAll, eflags, Inherit::kCopy),
              Kern::kSuccess);
    return va;
  }

  // A user load / store through the MMU, faulting as needed.
  static Kern load_in(Map& m, std::uint64_t va, std::uint64_t* v) {
    for (int i = 0; i < 100; ++i) {
      if (pmap_access(m.pmap, va, false, v)) return Kern::kSuccess;
      if (Kern r = vm_fault(m, va, kProtRead, kFaultNormal); r != Kern::kSuccess) return r;
    }
    return Kern::kFailure;
  }
  static Kern store_in(Map& m, std::uint64_t va, std::uint64_t v) {
    for (int i = 0; i < 100; ++i) {
      if (pmap_access(m.pmap, va, true, &v)) return Kern::kSuccess;
      if (Kern r = vm_fault(m, va, kProtRead | kProtWrite, kFaultNormal); r != Kern::kSuccess) return r;
    }
    return Kern::kFailure;
  }
  // What fork does to both sides of a private mapping `a` of o's `pages`
  // pages: a second, COW, mapping of o (returned; it takes a reference),
  // `a` made COW | NEEDS_COPY too, write taken from a's translations.
  std::uint64_t cow_mapping_of(Object* o, std::uint64_t a, std::uint64_t pages) {
    object_reference(*o);
    const std::uint64_t b = mmap_object(o, pages, kProtRead | kProtWrite, kEntryCow | kEntryNeedsCopy);
    map_lock(map());
    map().lookup_entry(a)->eflags |= kEntryCow | kEntryNeedsCopy;
    map_unlock(map());
    pmap_protect(map().pmap, a, a + pages * ps(), kProtRead);
    return b;
  }

  Kern load(std::uint64_t va, std::uint64_t* v) { return load_in(map(), va, v); }
  // The translation at va as it is now (no page: none).
  Translation pte_at(std::uint64_t va) {
    MutexLock l(map().pmap.mtx);
    const PmapEntry* e = map().pmap.find(va);
    return e != nullptr ? e->view() : Translation{};
  }
  Kern store(std::uint64_t va, std::uint64_t v) { return store_in(map(), va, v); }
  std::uint64_t retries(Retry r) { return vm().counters().retries_of(r); }
  Counters& cnt() { return vm().counters(); }

  // Runs `f` once, at the first pager I/O (object and map unlocked).
  void at_first_io(std::function<void()> f) {
    at_first_point([](const locking::PointInfo& info) { return info.point == locking::Point::kIo; }, std::move(f));
  }

  // A swap object of `pages` pages whose contents are word i = tag + pindex,
  // laundered to swap and no longer resident.
  Object* swap_object(Pindex pages, std::uint64_t tag) {
    Object* o = object_allocate(vm(), ObjectType::kDefault, pages);
    MutexLock l(o->mtx);
    std::vector<Page*> ms;
    for (Pindex i = 0; i < pages; ++i) {
      Page* m = page_alloc(*o, i, kAllocNormal);
      std::uint64_t v = tag + i;
      std::memcpy(m->data, &v, sizeof v);
      m->valid = kPageBitsAll;
      page_dirty(m);
      page_wakeup(m);
      page_io_start(m);
      ms.push_back(m);
    }
    std::vector<PagerResult> rt(ms.size());
    pager_put_pages(*o, ms.data(), static_cast<int>(ms.size()), rt.data());
    MutexLock pq(vm().page_queues);
    for (Page* m : ms) {
      page_io_finish(m);
      page_free(m);
    }
    EXPECT_EQ(o->type, ObjectType::kSwap);
    return o;
  }

  // Writes o's resident page at `pindex` to its pager and frees it (as the
  // pageout daemon's laundering does): o becomes a swap object if it was not.
  void launder_and_free(Object& o, Pindex pindex) { launder(o, pindex, false); }
  // The same, but the clean page is cached (a later pass of the daemon):
  // lookups miss it, an allocation of (o, pindex) gets it back.
  Page* launder_and_cache(Object& o, Pindex pindex) { return launder(o, pindex, true); }
  // A one-page anonymous mapping at *va holding `word`, its page laundered
  // and cached; returns the cached page (nullptr, with a test failure, if
  // that did not work).
  Page* cached_anon_page(std::uint64_t word, std::uint64_t* va) {
    *va = mmap_anon(1);
    EXPECT_EQ(store(*va, word), Kern::kSuccess);
    Page* m = pmap_extract(map().pmap, *va);
    if (m == nullptr) {
      ADD_FAILURE() << "the store mapped no page";
      return nullptr;
    }
    Page* cached = launder_and_cache(*m->object, 0);
    EXPECT_NE(cached, nullptr);
    return cached;
  }

 private:
  Page* launder(Object& o, Pindex pindex, bool cache) {
    MutexLock l(o.mtx);
    Page* m = page_lookup(o, pindex);
    EXPECT_NE(m, nullptr);
    if (m == nullptr) return nullptr;
    {
      MutexLock pq(vm().page_queues);
      pmap_remove_all(m);
    }
    page_dirty(m);
    page_io_start(m);
    PagerResult rt{};
    pager_put_pages(o, &m, 1, &rt);
    EXPECT_EQ(rt, PagerResult::kOk);
    MutexLock pq(vm().page_queues);
    page_io_finish(m);
    if (!cache) {
      page_free(m);
      return nullptr;
    }
    m->dirty.store(0);  // written back
    page_cache(m);
    EXPECT_EQ(m->queue, PageQueue::kCache);
    return m;
  }

 public:

  // Runs `f` on another thread (and waits for it) when this thread is about
  // to take `lock` for the nth time from now on: a window that the code
  // under test opens, and a racing operation forced into it.
  void on_lock_of(const locking::LockBase& lock, int nth, std::function<void()> f) {
    at_first_point(
        [&lock, nth, seen = 0](const locking::PointInfo& info) mutable {
          return info.point == locking::Point::kLock && info.object == &lock && ++seen == nth;
        },
        [f = std::move(f)] { std::thread(f).join(); });
  }

  // Runs `f`, which drops o's next-to-last reference so that o would
  // collapse into its only shadow, while the pageout daemon launders o's
  // page `busy_pindex` (soft busy, paging in progress on o).  The pageout
  // gets in where 7.x lets it: vm_object_deallocate has checked paging in
  // progress and unlocked o, vm_object_collapse has not locked it yet.  So
  // the collapse gives up (vm_object_qcollapse, which moves up only idle
  // pages) and o stays behind its shadow, with that page.
  void deallocate_during_pageout(Object* o, Object* shadow, Pindex busy_pindex, const std::function<void()>& f) {
    Page* busy = nullptr;
    // The collapse locks o holding its shadow (top first); nothing else
    // here does.
    at_first_point(
        [o, shadow](const locking::PointInfo& info) {
          return info.point == locking::Point::kLock && info.object == &o->mtx && shadow->mtx.owned();
        },
        [&] {
          std::thread([&] {
            MutexLock l(o->mtx);
            busy = page_lookup(*o, busy_pindex);
            if (busy == nullptr) return;
            page_io_start(busy);
            object_pip_add(*o, 1);
          }).join();
        });
    f();
    locking::set_point_hook(nullptr, nullptr);
    ASSERT_NE(busy, nullptr) << "the window between deallocate and collapse was not entered";
    MutexLock l(o->mtx);
    page_io_finish(busy);
    object_pip_wakeup(*o);
  }

  // Runs `f`, once, at the first schedule point for which `when` holds.
  void at_first_point(std::function<bool(const locking::PointInfo&)> when, std::function<void()> f) {
    point_when_ = std::move(when);
    point_action_ = std::move(f);
    locking::set_point_hook(
        [](const locking::PointInfo& info, void* ctx) {
          auto* self = static_cast<FaultTest*>(ctx);
          if (!self->point_action_ || !self->point_when_(info)) return;
          auto f = std::move(self->point_action_);
          self->point_action_ = nullptr;
          f();
        },
        this);
  }

  // Maps and vnodes the invariant check and teardown must also cover.
  Map& adopt(std::unique_ptr<Map> m) {
    extra_maps_.push_back(m.get());
    owned_maps_.push_back(std::move(m));
    return *extra_maps_.back();
  }
  Vnode& new_vnode(std::uint64_t size) {
    owned_vnodes_.push_back(std::make_unique<Vnode>(vm(), size));
    vnodes_.push_back(owned_vnodes_.back().get());
    return *vnodes_.back();
  }
  // A file of `size` bytes, each `fill`.
  Vnode& new_vnode_filled(std::uint64_t size, std::byte fill) {
    Vnode& vp = new_vnode(size);
    locking::SxExclusiveLock vl(vp.lock);
    for (std::uint64_t i = 0; i < vp.size; ++i) vp.contents[i] = fill;
    return vp;
  }
  Device& new_device(Pindex npages) {
    devices_.push_back(std::make_unique<Device>(vm(), npages));
    return *devices_.back();
  }
  std::vector<Map*> extra_maps_;
  std::vector<Vnode*> vnodes_;
  std::vector<std::unique_ptr<Map>> owned_maps_;
  std::vector<std::unique_ptr<Vnode>> owned_vnodes_;
  std::vector<std::unique_ptr<Device>> devices_;

  std::function<bool(const locking::PointInfo&)> point_when_;
  std::function<void()> point_action_;
  std::unique_ptr<Map> map_;
};

}  // namespace faultline::vm::testing
