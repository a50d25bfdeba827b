// What world.cpp, workload/ops.cpp and oracle/oracles.cpp share: the
// helpers of the World's members (they were world.cpp's anonymous
// namespace).  Internal to the harness: include it from those files only.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "stress/rng.h"
#include "stress/world.h"

namespace faultline::stress::world_detail {

// A record's generation when an operation began, or kBusy if one of the
// record's kind (an mprotect, an mlock, an munmap) was in progress then;
// moved() tells whether one has overlapped since: in progress then or now,
// or the generation moved.
constexpr std::uint64_t kBusy = ~std::uint64_t{0};
template <class R>
inline std::uint64_t gen_at(const R& r) {
  return r.active.load() != 0 ? kBusy : r.gen.load();
}
template <class R>
inline bool moved(const R& r, std::uint64_t then) {
  return then == kBusy || r.active.load() != 0 || r.gen.load() != then;
}

// An operation over pages [lo, hi) bracketed in a per-page record (an
// mprotect to read-only, an munmap, an mlock): the generation moves first
// both ways, so a check that sees `active` at 0 after the end sees the
// generation moved.  At the end, `own`: the pages are the process's own
// again, whatever a fork left it (`inherited` cleared).
inline void begin_run(Process::ScratchRo* r, std::uint64_t lo, std::uint64_t hi) {
  for (std::uint64_t i = lo; i < hi; ++i) {
    r[i].gen.fetch_add(1);
    r[i].active.fetch_add(1);
  }
}
inline void end_run(Process::ScratchRo* r, std::uint64_t lo, std::uint64_t hi, bool own) {
  for (std::uint64_t i = lo; i < hi; ++i) {
    if (own) r[i].inherited.store(false);
    r[i].gen.fetch_add(1);
    r[i].active.fetch_sub(1);
  }
}

// Stores to pages [lo, hi) of the private file mapping, or an mlock of them,
// in flight (Process::fpriv_storing): munmap-private waits for those that
// began before it before it clears the pages' records.  At the end each
// page is marked maybe copied again (that munmap may have cleared the mark
// meanwhile) before the count drops, so a read that finds no store in
// flight after its access finds the mark.
class PrivateInFlight {
 public:
  PrivateInFlight(Process& p, std::uint64_t lo, std::uint64_t hi) : p_(p), lo_(lo), hi_(hi) {
    for (std::uint64_t i = lo_; i < hi_; ++i) {
      p_.fpriv_storing[i].fetch_add(1);
      p_.fpriv_maybe[i].store(true);
    }
  }
  ~PrivateInFlight() {
    for (std::uint64_t i = lo_; i < hi_; ++i) {
      p_.fpriv_maybe[i].store(true);
      p_.fpriv_storing[i].fetch_sub(1);
    }
  }
  PrivateInFlight(const PrivateInFlight&) = delete;
  PrivateInFlight& operator=(const PrivateInFlight&) = delete;

 private:
  Process& p_;
  const std::uint64_t lo_, hi_;
};

// Pages [lo, hi) of a region of n pages for an operation over a run of it:
// the whole region one time in two, else a random run.
inline std::pair<std::uint64_t, std::uint64_t> some_run(Rng& rng, std::uint64_t n) {
  if (n <= 1 || rng.below(2) != 0) return {0, n};
  const std::uint64_t lo = rng.below(n);
  return {lo, lo + 1 + rng.below(n - lo)};
}

// A run of one to four of n pages: {first page, pages}.
inline std::pair<std::uint64_t, std::uint64_t> short_run(Rng& rng, std::uint64_t n) {
  const std::uint64_t count = 1 + rng.below(std::min<std::uint64_t>(4, n));
  return {rng.below(n - count + 1), count};
}

constexpr std::uint64_t kBase = 0x10000000;
constexpr std::uint64_t kMapSpan = std::uint64_t{1} << 36;

inline vm::VmConfig vm_config(const Config& c) {
  vm::VmConfig v;
  v.npages = c.pages;
  v.seed = c.seed;
  v.io_latency_us = c.io_latency_us;
  v.io_error_ppm = c.io_error_ppm;
  v.mutant = c.mutant;
  v.fixes = c.fixes;
  return v;
}

inline std::string describe_value(std::uint64_t v) {
  if (v == 0) return "0";
  return fmt::format("{:#x} (pid {} seq {})", v, tag_of(v), seq_of(v));
}

// Stream numbers of the run's generators: threads by (pid, thread), actors apart.
inline std::uint64_t thread_stream(std::uint32_t pid, int j) {
  return (static_cast<std::uint64_t>(pid) << 20) | static_cast<std::uint64_t>(j);
}
constexpr std::uint64_t kTruncatorStream = ~std::uint64_t{0} - 1;
constexpr std::uint64_t kDeviceStream = std::uint64_t{1} << 62;

}  // namespace faultline::stress::world_detail
