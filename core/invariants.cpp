#include "core/invariants.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <string>

#include "core/map.h"
#include "core/pager.h"
#include "core/vm.h"

#include <fmt/format.h>

namespace faultline::vm {

namespace {

std::string page_name(const Page* m) { return "page " + std::to_string(m->index); }

}  // namespace

// Quiescent by contract: every structure is read under its lock anyway, one
// lock at a time, so the checker is clean under TSan and the lock checker.
std::vector<std::string> check_invariants(Vm& vm, const std::vector<Map*>& maps,
                                          const std::vector<Vnode*>& vnodes,
                                          const std::vector<Device*>& devices,
                                          const std::vector<const void*>& parking)
    FL_NO_THREAD_SAFETY_ANALYSIS {
  std::vector<std::string> out;
  auto bad = [&](std::string s) { out.push_back(std::move(s)); };
  const std::uint32_t ps = vm.page_size();

  // ---- objects reachable from the maps, vnodes and devices, and their references ----
  std::map<Object*, int> refs;  // references found
  std::set<Object*> objects;
  std::vector<Object*> work;
  auto reach = [&](Object* o) {
    if (o != nullptr && objects.insert(o).second) work.push_back(o);
  };
  for (Map* map : maps) {
    locking::SxSharedLock l(map->lock);
    for (auto& [start, e] : map->entries) {
      if (e.object == nullptr) continue;
      ++refs[e.object];
      reach(e.object);
    }
  }
  for (Vnode* vp : vnodes) {
    if (vp->object == nullptr) continue;
    ++refs[vp->object];
    reach(vp->object);
  }
  for (Device* dev : devices) {
    locking::MutexLock l(dev->lock);
    if (dev->object == nullptr) continue;
    ++refs[dev->object];
    reach(dev->object);
  }
  std::map<Object*, int> shadows_found;
  while (!work.empty()) {
    Object* o = work.back();
    work.pop_back();
    locking::MutexLock l(o->mtx);
    if (o->pip != 0) bad(o->describe() + ": paging in progress " + std::to_string(o->pip) + " at quiescence");
    if ((o->flags & kObjDead) != 0) bad(o->describe() + ": dead but still referenced");
    if (o->backing_object != nullptr) {
      ++refs[o->backing_object];
      ++shadows_found[o->backing_object];
      reach(o->backing_object);
    }
    {
      locking::MutexLock fq(vm.free_mtx);
      for (auto& [pindex, m] : o->cache)
        if (o->pages.count(pindex) != 0)
          bad(o->describe() + ": pindex " + std::to_string(pindex) + " both resident and cached");
    }
    for (auto& [pindex, m] : o->pages) {
      if (m->object != o || m->pindex != pindex)
        bad(page_name(m) + ": indexed by " + o->describe() + " at " + std::to_string(pindex) +
            " but says object " + (m->object != nullptr ? m->object->describe() : "none") + " pindex " +
            std::to_string(m->pindex));
      if ((m->oflags & kVpoBusy) != 0 || m->busy != 0) bad(page_name(m) + ": busy at quiescence");
      if ((m->oflags & kVpoWanted) != 0) bad(page_name(m) + ": wanted at quiescence");
    }
  }
  for (Object* o : objects) {
    locking::MutexLock l(o->mtx);
    if (o->ref_count != refs[o])
      bad(o->describe() + ": ref_count " + std::to_string(o->ref_count) + " but " +
          std::to_string(refs[o]) + " references exist");
    if (o->shadow_count != shadows_found[o] || static_cast<int>(o->shadows.size()) != o->shadow_count)
      bad(o->describe() + ": shadow_count " + std::to_string(o->shadow_count) + ", " +
          std::to_string(o->shadows.size()) + " listed, " + std::to_string(shadows_found[o]) + " found");
  }
  if (vm.live_objects.load() != static_cast<std::int64_t>(objects.size()))
    bad("live objects " + std::to_string(vm.live_objects.load()) + " but " +
        std::to_string(objects.size()) + " reachable (leak or dangling object)");

  // ---- pmaps: translations against the entries and the object chains ----
  std::map<std::pair<const Pmap*, std::uint64_t>, const Page*> translations;
  for (Map* map : maps) {
    locking::SxSharedLock l(map->lock);
    // Copy the translations out: objects come before the pmap in the order.
    const std::vector<std::pair<std::uint64_t, Translation>> snapshot = map->pmap.snapshot();
    for (auto& [va, pe] : snapshot) {
      translations[{&map->pmap, va}] = pe.page;
      const MapEntry* e = map->lookup_entry(va);
      const std::string where = "va 0x" + [&] {
        char b[32];
        std::snprintf(b, sizeof b, "%llx", static_cast<unsigned long long>(va));
        return std::string(b);
      }();
      if (e == nullptr) {
        bad(where + ": translation outside any entry");
        continue;
      }
      if ((pe.prot & ~e->protection) != 0) bad(where + ": translation allows more than the entry");
      if (!pe.page->fully_valid()) bad(where + ": maps " + page_name(pe.page) + ", not fully valid");
      // Walk the chain for the page that should be there.
      Object* o = e->object;
      Pindex pindex = (va - e->start) / ps + e->offset;
      const Page* expect = nullptr;
      bool top = true, top_hit = false, deeper = false;
      while (o != nullptr) {
        locking::MutexLock ol(o->mtx);
        auto it = o->pages.find(pindex);
        if (it != o->pages.end() && expect == nullptr) {
          expect = it->second;
          top_hit = top;
          if (expect == pe.page) break;
        } else if (it != o->pages.end() && it->second == pe.page) {
          deeper = true;  // the translated page, under `expect`
          break;
        }
        pindex += o->backing_offset;
        o = o->backing_object;
        top = false;
      }
      const bool writable = (pe.prot & kProtWrite) != 0;
      // A write fault that copied the backing page into a shallower object
      // and then failed its re-lookup (seed L810-820: mprotect, munmap or a
      // wiring change while the map was unlocked) releases the copy and
      // leaves the translation of the backing page it had read-only.  That
      // is sound while the two hold the same bytes: the copy can change only
      // through a write fault on this entry, which replaces the translation.
      if (expect != pe.page && !deeper)
        bad(where + ": maps " + page_name(pe.page) + " but the chain has " +
            (expect != nullptr ? page_name(expect) : std::string("nothing")));
      else if (deeper && writable)
        bad(where + ": maps " + page_name(pe.page) + " of a backing object writable under " + page_name(expect));
      else if (deeper && !expect->fully_valid())
        bad(where + ": maps " + page_name(pe.page) + " of a backing object under " + page_name(expect) +
            ", which is not valid");
      else if (deeper && std::memcmp(expect->data, pe.page->data, ps) != 0)
        bad(where + ": maps " + page_name(pe.page) + " of a backing object under " + page_name(expect) +
            ", whose bytes differ");
      else if (writable && (!top_hit || (e->eflags & kEntryNeedsCopy) != 0))
        bad(where + ": writable translation of a page not in the entry's own object");
    }
  }

  // ---- pages: queues, counts, pv lists ----
  locking::MutexLock pq(vm.page_queues);
  locking::MutexLock fq(vm.free_mtx);
  std::map<PageQueue, std::size_t> in_queue;
  auto walk = [&](const PageList& list, PageQueue q) {
    std::size_t n = 0;
    for (const Page* p = list.head; p != nullptr; p = p->q_next, ++n) {
      if (p->queue != q)
        bad(page_name(p) + ": on the " + page_queue_name(q) + " queue but says " + page_queue_name(p->queue));
      if (n > vm.npages()) {
        bad(std::string(page_queue_name(q)) + " queue is cyclic");
        break;
      }
    }
    if (n != list.count)
      bad(std::string(page_queue_name(q)) + " queue holds " + std::to_string(n) + " pages but counts " +
          std::to_string(list.count));
    in_queue[q] = n;
  };
  walk(vm.active, PageQueue::kActive);
  walk(vm.inactive, PageQueue::kInactive);
  walk(vm.cache, PageQueue::kCache);
  walk(vm.free_list, PageQueue::kFree);
  if (vm.free_count.load() != in_queue[PageQueue::kFree]) bad("free_count disagrees with the free queue");
  if (vm.cache_count.load() != in_queue[PageQueue::kCache]) bad("cache_count disagrees with the cache queue");
  std::size_t by_field[5] = {};
  std::uint32_t wired = 0;
  for (std::uint32_t i = 0; i < vm.npages(); ++i) {
    const Page* p = &vm.page(i);
    ++by_field[static_cast<int>(p->queue)];
    if (p->wire_count != 0) {
      ++wired;
      if (p->queue != PageQueue::kNone) bad(page_name(p) + ": wired but on the " + page_queue_name(p->queue) + " queue");
    }
    if (p->queue == PageQueue::kFree && (p->object != nullptr || !p->pv.empty()))
      bad(page_name(p) + ": free but owned or mapped");
    if (p->queue == PageQueue::kCache) {
      // Cached: in its object's cache only (lookups must not find it),
      // clean, idle and unmapped.  The object's cache is under free_mtx.
      if (p->object == nullptr) {
        bad(page_name(p) + ": cached with no object");
      } else {
        auto c = p->object->cache.find(p->pindex);
        if (c == p->object->cache.end() || c->second != p)
          bad(page_name(p) + ": cached but not in " + p->object->describe() + "'s cache");
      }
      if (!p->pv.empty() || p->any_busy() || p->hold_count != 0 || p->wire_count != 0 || p->is_dirty() ||
          p->valid == 0)
        bad(page_name(p) + ": cached but mapped, busy, held, wired, dirty or invalid");
    }
    if (p->object == nullptr && p->queue != PageQueue::kFree && p->wire_count == 0 && p->hold_count == 0)
      bad(page_name(p) + ": neither free nor owned (lost)");
    if (p->object != nullptr && objects.count(p->object) == 0)
      bad(page_name(p) + ": owned by unreachable " + p->object->describe());
    for (const PvEntry& pv : p->pv)
      if (translations.count({pv.pmap, pv.va}) == 0 || translations[{pv.pmap, pv.va}] != p)
        bad(page_name(p) + ": pv entry without its translation");
  }
  for (auto q : {PageQueue::kActive, PageQueue::kInactive, PageQueue::kCache, PageQueue::kFree})
    if (by_field[static_cast<int>(q)] != in_queue[q])
      bad(std::to_string(by_field[static_cast<int>(q)]) + " pages say " + page_queue_name(q) + " but the queue holds " +
          std::to_string(in_queue[q]));
  if (wired != vm.wired_count.load()) bad("wired_count " + std::to_string(vm.wired_count.load()) + " but " + std::to_string(wired) + " pages are wired");
  for (auto& [key, page] : translations) {
    bool found = false;
    for (const PvEntry& pv : page->pv) found |= pv.pmap == key.first && pv.va == key.second;
    if (!found) bad(page_name(page) + ": translation without a pv entry");
  }

  // ---- sleepers ----
  locking::for_each_actor([&](const locking::Actor& a) {
    const void* chan = a.sleep_channel();
    if (chan != nullptr && std::find(parking.begin(), parking.end(), chan) == parking.end())
      bad("actor \"" + a.name() + "\" asleep at quiescence on \"" +
          (a.wait_message() != nullptr ? a.wait_message() : "?") + "\"");
  });
  return out;
}

}  // namespace faultline::vm

namespace faultline::vm {

namespace {

std::string word_at(const std::byte* base, std::uint64_t off) {
  std::uint64_t w = 0;
  std::memcpy(&w, base + off, sizeof w);
  return fmt::format("{:#x}", w);
}

std::string describe_page(const Page* m, std::uint64_t off) FL_NO_THREAD_SAFETY_ANALYSIS {
  return fmt::format("page #{} valid {:#x} dirty {:#x} busy {}/{} wired {} held {} queue {} mapped {} word {}",
                     m->index, m->valid, m->dirty.load(std::memory_order_relaxed), (m->oflags & kVpoBusy) != 0,
                     m->busy, m->wire_count, m->hold_count, page_queue_name(m->queue), m->pv.size(),
                     word_at(m->data, off));
}

}  // namespace

std::string describe_address(Map& map, std::uint64_t va, bool take_locks) FL_NO_THREAD_SAFETY_ANALYSIS {
  const std::uint32_t ps = map.vm.page_size();
  const std::uint64_t off = va % ps & ~std::uint64_t{7};
  std::string out = fmt::format("address {:#x}:", va);
  if (take_locks) map_lock_read(map);
  {
    if (take_locks) map.pmap.mtx.lock();
    if (PmapEntry* pe = map.pmap.find(va); pe != nullptr) {
      const Page* m = pe->page;
      out += fmt::format(" pmap -> page #{} prot {} wired {} modified {} word {};", m->index, pe->prot(),
                         pe->wired(), pe->modified(), word_at(m->data, off));
    } else {
      out += " pmap: no translation;";
    }
    if (take_locks) map.pmap.mtx.unlock();
  }
  MapEntry* e = nullptr;
  if (auto it = map.entries.upper_bound(va); it != map.entries.begin() && va < std::prev(it)->second.end)
    e = &std::prev(it)->second;
  if (e == nullptr) {
    if (take_locks) map_unlock_read(map);
    return out + " no map entry";
  }
  out += fmt::format(" entry {:#x}-{:#x} prot {} eflags {:#x} wired {}", e->start, e->end, e->protection, e->eflags,
                     e->wired_count);
  Object* o = e->object;
  Pindex pindex = (va - e->start) / ps + e->offset;
  if (o != nullptr && take_locks) o->mtx.lock();
  while (o != nullptr) {
    out += fmt::format("; object {} {} ref {} shadows {} pip {} size {} pindex {}:", o->id,
                       object_type_name(o->type), o->ref_count, o->shadow_count, o->pip, o->size, pindex);
    if (auto it = o->pages.find(pindex); it != o->pages.end()) out += fmt::format(" {}", describe_page(it->second, off));
    if (auto it = o->swap.find(pindex); it != o->swap.end()) out += " swap word " + word_at(it->second.data(), off);
    Object* next = o->backing_object;
    const Pindex next_pindex = pindex + o->backing_offset;
    if (next != nullptr && take_locks) next->mtx.lock();
    if (take_locks) o->mtx.unlock();
    o = next;
    pindex = next_pindex;
  }
  if (take_locks) map_unlock_read(map);
  return out;
}

}  // namespace faultline::vm
