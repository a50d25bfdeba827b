#include "locking/profile.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>

#include "locking/checking.h"
#include "locking/detail/check.h"

namespace faultline::locking {
namespace {

constexpr int kSiteSlots = 4096;

struct SiteSlot {
  std::atomic<bool> ready{false};
  std::atomic<const char*> file{nullptr};
  std::atomic<std::uint32_t> line{0};
  std::atomic<int> cls{-1};
  LockStats stats;
};

constinit SiteSlot g_sites[kSiteSlots];
std::mutex g_sites_mu;  // serialises slot claims; lookups are lock-free

void max_into(std::atomic<std::uint64_t>& m, std::uint64_t v) {
  std::uint64_t cur = m.load(std::memory_order_relaxed);
  while (v > cur && !m.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

void add_acquired(LockStats& s, bool contended, std::uint64_t wait_ns) {
  s.acquisitions.fetch_add(1, std::memory_order_relaxed);
  if (contended) {
    s.contended.fetch_add(1, std::memory_order_relaxed);
    s.wait_ns_total.fetch_add(wait_ns, std::memory_order_relaxed);
    max_into(s.wait_ns_max, wait_ns);
  }
}

void add_released(LockStats& s, std::uint64_t hold_ns) {
  s.hold_ns_total.fetch_add(hold_ns, std::memory_order_relaxed);
  max_into(s.hold_ns_max, hold_ns);
}

ProfileRow row_of(const std::string& cls, const std::string& site, const LockStats& s) {
  ProfileRow r;
  r.lock_class = cls;
  r.site = site;
  r.acquisitions = s.acquisitions.load(std::memory_order_relaxed);
  r.contended = s.contended.load(std::memory_order_relaxed);
  r.wait_ns_total = s.wait_ns_total.load(std::memory_order_relaxed);
  r.wait_ns_max = s.wait_ns_max.load(std::memory_order_relaxed);
  r.hold_ns_total = s.hold_ns_total.load(std::memory_order_relaxed);
  r.hold_ns_max = s.hold_ns_max.load(std::memory_order_relaxed);
  return r;
}

void sort_rows(std::vector<ProfileRow>& rows) {
  std::sort(rows.begin(), rows.end(), [](const ProfileRow& a, const ProfileRow& b) {
    if (a.wait_ns_total != b.wait_ns_total) return a.wait_ns_total > b.wait_ns_total;
    if (a.acquisitions != b.acquisitions) return a.acquisitions > b.acquisitions;
    if (a.lock_class != b.lock_class) return a.lock_class < b.lock_class;
    return a.site < b.site;
  });
}

}  // namespace

void LockStats::reset() noexcept {
  for (auto* c : {&acquisitions, &contended, &wait_ns_total, &wait_ns_max, &hold_ns_total, &hold_ns_max})
    c->store(0, std::memory_order_relaxed);
}

void set_profiling(bool on) noexcept {
  if (on)
    detail::g_track.fetch_or(2, std::memory_order_relaxed);
  else
    detail::g_track.fetch_and(static_cast<std::uint8_t>(~2u), std::memory_order_relaxed);
}

bool profiling() noexcept { return detail::profiling_on(); }

void reset_profile() {
  for (int i = 0; i < LockClass::count(); ++i)
    if (LockClass* c = LockClass::by_id(i)) c->stats().reset();
  for (SiteSlot& s : g_sites) s.stats.reset();
}

std::vector<ProfileRow> profile_by_class() {
  std::vector<ProfileRow> rows;
  for (int i = 0; i < LockClass::count(); ++i) {
    LockClass* c = LockClass::by_id(i);
    if (c == nullptr || c->stats().acquisitions.load(std::memory_order_relaxed) == 0) continue;
    rows.push_back(row_of(c->name(), "", c->stats()));
  }
  sort_rows(rows);
  return rows;
}

std::vector<ProfileRow> profile_by_site() {
  std::vector<ProfileRow> rows;
  for (SiteSlot& s : g_sites) {
    if (!s.ready.load(std::memory_order_acquire)) continue;
    if (s.stats.acquisitions.load(std::memory_order_relaxed) == 0) continue;
    LockClass* c = LockClass::by_id(s.cls.load(std::memory_order_relaxed));
    rows.push_back(row_of(c != nullptr ? c->name() : "?",
                          format_site(s.file.load(std::memory_order_relaxed),
                                      s.line.load(std::memory_order_relaxed)),
                          s.stats));
  }
  sort_rows(rows);
  return rows;
}

std::string format_profile(const std::vector<ProfileRow>& rows, std::size_t max_rows) {
  std::string out;
  char buf[512];
  std::snprintf(buf, sizeof buf, "%12s %12s %14s %14s %10s %10s  %s\n", "max_hold_us", "wait_max_us",
                "total_hold_us", "total_wait_us", "count", "contested", "name");
  out += buf;
  std::size_t n = 0;
  for (const ProfileRow& r : rows) {
    if (n++ == max_rows) break;
    std::string name = "\"" + r.lock_class + "\"";
    if (!r.site.empty()) name = r.site + " (" + name + ")";
    std::snprintf(buf, sizeof buf, "%12.3f %12.3f %14.3f %14.3f %10llu %10llu  %s\n",
                  r.hold_ns_max / 1e3, r.wait_ns_max / 1e3, r.hold_ns_total / 1e3,
                  r.wait_ns_total / 1e3, static_cast<unsigned long long>(r.acquisitions),
                  static_cast<unsigned long long>(r.contended), name.c_str());
    out += buf;
  }
  return out;
}

namespace detail {

std::uint64_t now_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

int profile_site(const LockClass& cls, const char* file, std::uint32_t line) {
  std::uint64_t h = reinterpret_cast<std::uintptr_t>(file) * 0x9E3779B97F4A7C15ull ^
                    (std::uint64_t{line} << 16) ^ static_cast<std::uint64_t>(cls.id());
  h ^= h >> 29;
  const int start = static_cast<int>(h % kSiteSlots);
  auto matches = [&](SiteSlot& s) {
    return s.file.load(std::memory_order_relaxed) == file &&
           s.line.load(std::memory_order_relaxed) == line &&
           s.cls.load(std::memory_order_relaxed) == cls.id();
  };
  for (int probe = 0; probe < kSiteSlots; ++probe) {
    SiteSlot& s = g_sites[(start + probe) % kSiteSlots];
    if (s.ready.load(std::memory_order_acquire)) {
      if (matches(s)) return (start + probe) % kSiteSlots;
      continue;
    }
    // Empty: claim it under the mutex (or find that someone else did).
    std::lock_guard<std::mutex> g(g_sites_mu);
    for (; probe < kSiteSlots; ++probe) {
      SiteSlot& t = g_sites[(start + probe) % kSiteSlots];
      if (!t.ready.load(std::memory_order_acquire)) {
        t.file.store(file, std::memory_order_relaxed);
        t.line.store(line, std::memory_order_relaxed);
        t.cls.store(cls.id(), std::memory_order_relaxed);
        t.ready.store(true, std::memory_order_release);
        return (start + probe) % kSiteSlots;
      }
      if (matches(t)) return (start + probe) % kSiteSlots;
    }
    break;
  }
  return -1;
}

void profile_acquired(int slot, LockClass& cls, bool contended, std::uint64_t wait_ns) {
  add_acquired(cls.stats(), contended, wait_ns);
  if (slot >= 0) add_acquired(g_sites[slot].stats, contended, wait_ns);
}

void profile_released(int slot, LockClass& cls, std::uint64_t hold_ns) {
  add_released(cls.stats(), hold_ns);
  if (slot >= 0) add_released(g_sites[slot].stats, hold_ns);
}

}  // namespace detail
}  // namespace faultline::locking
