// What the single-thread model benchmarks share (fault_bench, ops_bench)
// and the scaling one (scale_bench): a VM with one address space, mmap, and
// a user access that faults until it goes through.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>

#include "core/fault.h"
#include "core/map.h"
#include "core/pmap.h"
#include "core/vm.h"

namespace faultline::bench {

namespace fv = faultline::vm;

inline constexpr std::uint64_t kBase = 0x100000;

// A load or store through the model's MMU (pmap_access), faulting (vm_fault)
// until it goes through, as a CPU would; returns the faults taken.
inline std::uint64_t touch(fv::Map& m, std::uint64_t va, bool write) {
  std::uint64_t v = va;
  std::uint64_t faults = 0;
  while (!fv::pmap_access(m.pmap, va, write, &v)) {
    if (fv::vm_fault(m, va, write ? fv::kProtWrite : fv::kProtRead, fv::kFaultNormal) != fv::Kern::kSuccess)
      std::abort();
    ++faults;
  }
  return faults;
}

// A VM and one address space; the map is emptied (exit) on destruction.
struct VmSetup {
  std::unique_ptr<fv::Vm> vm;
  std::unique_ptr<fv::Map> map;
  explicit VmSetup(const fv::VmConfig& c)
      : vm(std::make_unique<fv::Vm>(c)), map(std::make_unique<fv::Map>(*vm, kBase, kBase + (1ull << 34))) {}
  ~VmSetup() {
    fv::map_remove_all(*map);
    map.reset();
  }
  VmSetup(const VmSetup&) = delete;
  VmSetup& operator=(const VmSetup&) = delete;
  std::uint64_t ps() const { return vm->page_size(); }
  // mmap read/write of `pages` pages of `o` (nullptr: anonymous), copy on fork.
  std::uint64_t mmap(fv::Object* o, std::uint64_t pages) {
    std::uint64_t va = 0;
    if (fv::map_mmap(*map, &va, pages * ps(), o, 0, fv::kProtRead | fv::kProtWrite, fv::kProtAll, 0,
                     fv::Inherit::kCopy) != fv::Kern::kSuccess)
      std::abort();
    return va;
  }
  void touch_all(std::uint64_t va, std::uint64_t pages, bool write) {
    for (std::uint64_t k = 0; k < pages; ++k) touch(*map, va + k * ps(), write);
  }
};

}  // namespace faultline::bench
