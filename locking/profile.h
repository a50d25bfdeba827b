// Lock profiling per class and per acquisition site (FreeBSD's LOCK_PROFILING
// and its debug.lock.prof.stats table).
//
// Off by default.  When on, every blocking acquisition first tries the lock to
// learn whether it was contended, and reads the clock to time the wait; every
// release reads it again to time the hold.  Shared holds are timed too.
// Turn profiling on or off only while no lock is held.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "locking/lock_class.h"

namespace faultline::locking {

void set_profiling(bool on) noexcept;
bool profiling() noexcept;
// Zeroes every counter, per class and per site.
void reset_profile();

struct ProfileRow {
  std::string lock_class;
  std::string site;  // "file:line", or "" for a per-class row
  std::uint64_t acquisitions = 0;
  std::uint64_t contended = 0;
  std::uint64_t wait_ns_total = 0;
  std::uint64_t wait_ns_max = 0;
  std::uint64_t hold_ns_total = 0;
  std::uint64_t hold_ns_max = 0;
};

// Rows with at least one acquisition, sorted by total wait, then
// acquisitions, then name (deterministic for equal figures).
std::vector<ProfileRow> profile_by_class();
std::vector<ProfileRow> profile_by_site();

// A fixed-width table, at most `max_rows` rows:
//   max_hold_us  wait_max_us  total_hold_us  total_wait_us  count  contested  name
std::string format_profile(const std::vector<ProfileRow>& rows, std::size_t max_rows = 20);

namespace detail {
// Slot of (class, site) in the site table; -1 if the table is full.
int profile_site(const LockClass& cls, const char* file, std::uint32_t line);
void profile_acquired(int slot, LockClass& cls, bool contended, std::uint64_t wait_ns);
void profile_released(int slot, LockClass& cls, std::uint64_t hold_ns);
}  // namespace detail

}  // namespace faultline::locking
