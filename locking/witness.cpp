// The order checker: class order graph, held-lock bookkeeping, and the
// same-class and sleepable-after-non-sleepable rules.
#include "locking/witness.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <tuple>
#include <vector>

#include "locking/detail/check.h"
#include "locking/profile.h"

namespace faultline::locking {
namespace {

constexpr int kWords = kMaxLockClasses / 64;

struct EdgeSites {
  const char* first_file;
  std::uint32_t first_line;
  const char* second_file;
  std::uint32_t second_line;
  bool declared;
};

// later[a] bit b: a is ordered before b (transitive closure).  Read without
// the mutex on the fast path; written under it.
constinit std::atomic<std::uint64_t> g_later[kMaxLockClasses][kWords]{};

struct Graph {
  std::mutex mu;  // a raw std::mutex: the checker does not check itself
  std::map<std::pair<int, int>, EdgeSites> edges;  // direct edges, ordered: deterministic output
  std::set<std::pair<int, int>> reported;          // pairs already reported
  std::set<std::tuple<int, int, int, std::string>> seen;  // other findings already reported
};

Graph& graph() {
  static Graph* g = new Graph;  // never destroyed: locks may be released during exit
  return *g;
}

inline bool later_has(int a, int b) {
  return (g_later[a][b >> 6].load(std::memory_order_relaxed) >> (b & 63)) & 1;
}

// Adds a -> b and closes it transitively.  Caller holds the graph mutex and
// has checked that b does not reach a.
void add_edge(Graph& g, int a, int b, const EdgeSites& sites) {
  g.edges.emplace(std::make_pair(a, b), sites);
  std::uint64_t add[kWords];
  for (int w = 0; w < kWords; ++w) add[w] = g_later[b][w].load(std::memory_order_relaxed);
  add[b >> 6] |= std::uint64_t{1} << (b & 63);
  const int n = LockClass::count();
  for (int x = 0; x < n; ++x) {
    if (x != a && !later_has(x, a)) continue;
    for (int w = 0; w < kWords; ++w)
      if (add[w] != 0) g_later[x][w].fetch_or(add[w], std::memory_order_relaxed);
  }
}

std::string class_name(int id) {
  LockClass* c = LockClass::by_id(id);
  return std::string("\"") + (c != nullptr ? c->name() : "?") + "\"";
}

std::string edge_text(int a, int b, const EdgeSites& e) {
  std::string s = "    " + class_name(a) + " @ " + format_site(e.first_file, e.first_line) +
                  " before " + class_name(b) + " @ " + format_site(e.second_file, e.second_line);
  if (e.declared) s += " (declared)";
  return s;
}

// A path of direct edges from -> to (BFS, deterministic by class id).
std::vector<std::pair<int, int>> find_path(Graph& g, int from, int to) {
  std::map<int, int> parent{{from, -1}};
  std::deque<int> q{from};
  while (!q.empty()) {
    int x = q.front();
    q.pop_front();
    if (x == to) break;
    for (auto it = g.edges.lower_bound({x, -1}); it != g.edges.end() && it->first.first == x; ++it) {
      int y = it->first.second;
      if (parent.emplace(y, x).second) q.push_back(y);
    }
  }
  std::vector<std::pair<int, int>> path;
  if (!parent.count(to)) return path;
  for (int y = to; parent[y] != -1; y = parent[y]) path.emplace_back(parent[y], y);
  std::reverse(path.begin(), path.end());
  return path;
}

std::string describe_lock(const LockBase& l) {
  std::string s = std::string("\"") + l.lock_class().name() + "\"";
  if (std::string_view(l.name()) != l.lock_class().name()) s += std::string(" (") + l.name() + ")";
  return s;
}

// The held lock `h` (class a) is held while `lock` (class b) is acquired at
// `site`, and the graph has no a -> b yet: record it, or report a reversal.
void slow_order(const HeldLock& h, const LockBase& held, const LockBase& lock, const Site& site) {
  const int a = held.lock_class().id(), b = lock.lock_class().id();
  Graph& g = graph();
  std::unique_lock<std::mutex> lk(g.mu);
  if (later_has(a, b)) return;  // another actor added it meanwhile
  const char* hfile = h.file.load(std::memory_order_relaxed);
  const std::uint32_t hline = h.line.load(std::memory_order_relaxed);
  if (!later_has(b, a)) {
    add_edge(g, a, b, EdgeSites{hfile, hline, site.file_name(), site.line(), false});
    return;
  }
  if (!g.reported.insert({std::min(a, b), std::max(a, b)}).second) return;
  std::string msg = "lock order reversal:\n";
  msg += " 1st " + describe_lock(held) + " @ " + format_site(hfile, hline) + " (held)\n";
  msg += " 2nd " + describe_lock(lock) + " @ " + format_site(site) + " (being acquired)\n";
  msg += " established order " + class_name(b) + " before " + class_name(a) + ", first seen:\n";
  for (auto [x, y] : find_path(g, b, a)) msg += edge_text(x, y, g.edges.at({x, y})) + "\n";
  lk.unlock();
  if (!msg.empty() && msg.back() == '\n') msg.pop_back();
  detail::deliver(Report{ReportKind::kOrderReversal, std::move(msg), held.lock_class().name(),
                         lock.lock_class().name(), format_site(hfile, hline), format_site(site)},
                  true);
}

// Findings that are reported once per (kind, class pair, new site line).
bool first_time(ReportKind k, int a, int b, const Site& site) {
  Graph& g = graph();
  std::lock_guard<std::mutex> lk(g.mu);
  return g.seen.emplace(static_cast<int>(k), a, b, format_site(site)).second;
}

}  // namespace

namespace detail {

bool check_acquire(Actor& me, const LockBase& lock, LockMode mode, std::uint32_t key,
                   const Site& site) {
  const bool order = locking::mode() != Mode::kOff;
  const LockClass& cb = lock.lock_class();
  const int depth = me.depth();
  for (int i = 0; i < depth; ++i) {
    const HeldLock& h = me.held(i);
    const LockBase* held = h.lock.load(std::memory_order_relaxed);
    if (held == &lock) {
      report_recursion(lock, site);
      return false;
    }
    if (!order) continue;
    const LockClass& ca = held->lock_class();
    if (cb.sleepable() && !ca.sleepable() && first_time(ReportKind::kSleepWithLock, ca.id(), cb.id(), site)) {
      deliver(Report{ReportKind::kSleepWithLock,
                     "acquiring sleepable lock " + describe_lock(lock) + " @ " + format_site(site) +
                         " with non-sleepable lock held:\n  " + describe_held(h),
                     ca.name(), cb.name(),
                     format_site(h.file.load(std::memory_order_relaxed), h.line.load(std::memory_order_relaxed)),
                     format_site(site)},
              true);
    }
    if (&ca == &cb) {
      if (cb.same_class() == SameClass::kOrdered && key > h.key) continue;
      if (!first_time(ReportKind::kSameClass, ca.id(), cb.id(), site)) continue;
      std::string why = cb.same_class() == SameClass::kOrdered
                            ? " with key " + std::to_string(key) + " not above held key " +
                                  std::to_string(h.key) + " (use lock_nested with increasing keys)"
                            : " (class does not allow nesting; use try-lock or SameClass::kOrdered)";
      deliver(Report{ReportKind::kSameClass,
                     "acquiring duplicate lock of same class " + describe_lock(lock) + " @ " +
                         format_site(site) + why + "\n  held: " + describe_held(h),
                     ca.name(), cb.name(),
                     format_site(h.file.load(std::memory_order_relaxed), h.line.load(std::memory_order_relaxed)),
                     format_site(site)},
              true);
      continue;
    }
    if (!later_has(ca.id(), cb.id())) [[unlikely]]
      slow_order(h, *held, lock, site);
  }
  (void)mode;
  return true;
}

void note_acquired(Actor& me, const LockBase& lock, LockMode mode, std::uint32_t key, bool trylock,
                   bool contended, std::uint64_t wait_ns, const Site& site) {
  HeldLock* h = me.push(&lock, mode, site.file_name(), site.line());
  h->trylock = trylock;
  h->key = key;
  h->prof_site = -1;
  h->since_ns = 0;
  if (profiling_on()) {
    h->prof_site = profile_site(lock.lock_class(), site.file_name(), site.line());
    profile_acquired(h->prof_site, const_cast<LockClass&>(lock.lock_class()), contended, wait_ns);
    h->since_ns = now_ns();
  }
}

bool note_released(Actor& me, const LockBase& lock) {
  int i = me.find(&lock);
  if (i < 0) return false;
  HeldLock& h = me.held(i);
  if (h.since_ns != 0 && profiling_on())
    profile_released(h.prof_site, const_cast<LockClass&>(lock.lock_class()), now_ns() - h.since_ns);
  me.remove(i);
  return true;
}

void note_mode(Actor& me, const LockBase& lock, LockMode mode) {
  int i = me.find(&lock);
  if (i >= 0) me.held(i).mode.store(mode, std::memory_order_relaxed);
}

}  // namespace detail

namespace witness {

void declare_order(std::initializer_list<const LockClass*> order, const Site& site) {
  const LockClass* prev = nullptr;
  for (const LockClass* c : order) {
    if (prev != nullptr) {
      const int a = prev->id(), b = c->id();
      Graph& g = graph();
      std::unique_lock<std::mutex> lk(g.mu);
      if (later_has(b, a)) {
        std::string msg = "declared order " + class_name(a) + " before " + class_name(b) + " @ " +
                          format_site(site) + " contradicts the established order:\n";
        for (auto [x, y] : find_path(g, b, a)) msg += edge_text(x, y, g.edges.at({x, y})) + "\n";
        lk.unlock();
        msg.pop_back();
        detail::deliver(Report{ReportKind::kDeclaredOrder, std::move(msg), prev->name(), c->name(),
                               format_site(site), ""},
                        true);
      } else if (!later_has(a, b) || !g.edges.count({a, b})) {
        if (!g.edges.count({a, b}))
          add_edge(g, a, b, EdgeSites{site.file_name(), site.line(), site.file_name(), site.line(), true});
      }
    }
    prev = c;
  }
}

bool ordered_before(const LockClass& a, const LockClass& b) { return later_has(a.id(), b.id()); }

std::string format_graph() {
  Graph& g = graph();
  std::lock_guard<std::mutex> lk(g.mu);
  std::string out;
  for (const auto& [ab, e] : g.edges) out += edge_text(ab.first, ab.second, e) + "\n";
  return out;
}

void reset() {
  Graph& g = graph();
  std::lock_guard<std::mutex> lk(g.mu);
  g.edges.clear();
  g.reported.clear();
  g.seen.clear();
  for (auto& row : g_later)
    for (auto& w : row) w.store(0, std::memory_order_relaxed);
}

}  // namespace witness
}  // namespace faultline::locking
