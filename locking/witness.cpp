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
  std::string actor = {};  // who first took them in this order
  std::string stack = {};  // its call stack then, when stacks() is on
};

// before[b] bit a: a is ordered before b (transitive closure).  Read without
// the mutex on the fast path; written under it.  Indexed by the later class,
// so the checks of one acquisition against every held lock all read the row
// of the lock being acquired: one or two cache lines, however many are held.
// Plain words (zero before any constructor runs: classes made during static
// initialisation may add orders), accessed through std::atomic_ref.
std::uint64_t g_before_words[kMaxLockClasses][kWords];
inline std::atomic_ref<std::uint64_t> before_word(int b, int w) { return std::atomic_ref(g_before_words[b][w]); }

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

// a is ordered before b.
inline bool later_has(int a, int b) {
  return (before_word(b, a >> 6).load(std::memory_order_relaxed) >> (a & 63)) & 1;
}

// Adds a -> b and closes it transitively: a and everything before a come
// before b and everything after b.  Caller holds the graph mutex and has
// checked that b does not reach a.
void close_edge(int a, int b) {
  const int n = LockClass::count();
  const int words = (n + 63) / 64;
  std::uint64_t add[kWords];
  for (int w = 0; w < words; ++w) add[w] = before_word(a, w).load(std::memory_order_relaxed);
  add[a >> 6] |= std::uint64_t{1} << (a & 63);
  for (int y = 0; y < n; ++y) {
    if (y != b && !later_has(b, y)) continue;
    for (int w = 0; w < words; ++w)
      if (add[w] != 0) before_word(y, w).fetch_or(add[w], std::memory_order_relaxed);
  }
}

void add_edge(Graph& g, int a, int b, EdgeSites sites) {
  g.edges.emplace(std::make_pair(a, b), std::move(sites));
  close_edge(a, b);
}

std::string class_name(int id) {
  LockClass* c = LockClass::by_id(id);
  return std::string("\"") + (c != nullptr ? c->name() : "?") + "\"";
}

std::string edge_text(int a, int b, const EdgeSites& e, bool with_stack = false) {
  std::string s = "    " + class_name(a) + " @ " + format_site(e.first_file, e.first_line) +
                  " before " + class_name(b) + " @ " + format_site(e.second_file, e.second_line);
  if (e.declared) s += " (declared)";
  if (!e.actor.empty()) s += " by " + e.actor;
  if (with_stack && !e.stack.empty()) {
    s += ", call stack:\n";
    s += e.stack;
    if (s.back() == '\n') s.pop_back();
  }
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

// A held entry as a lock: "\"class\" (name)".
std::string describe_entry(const HeldLock& h) {
  const char* cls = h.cls.load(std::memory_order_relaxed)->name();
  const char* name = h.lock_name.load(std::memory_order_relaxed);
  std::string s = std::string("\"") + cls + "\"";
  if (name != nullptr && std::string_view(name) != cls) s += std::string(" (") + name + ")";
  return s;
}

// The held lock `h` (class a) is held while `lock` (class b) is acquired at
// `site`, and the graph has no a -> b yet: record it, or report a reversal.
void slow_order(Actor& me, const HeldLock& h, const LockBase& lock, const Site& site) {
  const int a = h.cls.load(std::memory_order_relaxed)->id(), b = lock.lock_class().id();
  // Symbolising a stack can take long (the first time, libbacktrace reads
  // the binary): do it before taking the graph's mutex.
  const bool with_stacks = stacks();
  const std::string stack = with_stacks ? detail::call_stack(3) : std::string();
  Graph& g = graph();
  std::unique_lock<std::mutex> lk(g.mu);
  if (later_has(a, b)) return;  // another actor added it meanwhile
  const char* hfile = h.file.load(std::memory_order_relaxed);
  const std::uint32_t hline = h.line.load(std::memory_order_relaxed);
  if (!later_has(b, a)) {
    EdgeSites e{hfile, hline, site.file_name(), site.line(), false, detail::describe_actor(&me)};
    e.stack = stack;
    add_edge(g, a, b, std::move(e));
    return;
  }
  if (!g.reported.insert({std::min(a, b), std::max(a, b)}).second) return;
  std::string msg = "lock order reversal by " + detail::describe_actor(&me) + ":\n";
  msg += " 1st " + describe_entry(h) + " @ " + format_site(hfile, hline) + " (held)\n";
  msg += " 2nd " + detail::describe_lock(lock) + " @ " + format_site(site) + " (being acquired)\n";
  if (with_stacks) msg += " call stack:\n" + stack;
  msg += " established order " + class_name(b) + " before " + class_name(a) + ", first seen:\n";
  for (auto [x, y] : find_path(g, b, a)) msg += edge_text(x, y, g.edges.at({x, y}), with_stacks) + "\n";
  lk.unlock();
  if (!msg.empty() && msg.back() == '\n') msg.pop_back();
  detail::deliver(Report{ReportKind::kOrderReversal, std::move(msg), h.cls.load(std::memory_order_relaxed)->name(),
                         lock.lock_class().name(), format_site(hfile, hline), format_site(site)},
                  detail::Severity::kOrder);
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
                   const Site& site, const LockBase* nest) {
  const LockClass& cb = lock.lock_class();
  const int b = cb.id();
  const bool order = order_on() && b >= 0;
  // lock_nest_lock: the nest lock must be held, whatever else is.
  if (order && nest != nullptr && me.find(nest) < 0 && first_time(ReportKind::kSameClass, b, b, site))
    deliver(Report{ReportKind::kSameClass,
                   "acquiring " + describe_lock(lock) + " @ " + format_site(site) + " under nest lock " +
                       describe_lock(*nest) + ", which " + describe_actor(&me) + " does not hold",
                   cb.name(), nest->lock_class().name(), "", format_site(site)},
            Severity::kOrder);
  const bool b_sleepable = cb.sleepable();
  const int depth = me.depth();
  for (int i = 0; i < depth; ++i) {
    const HeldLock& h = me.held(i);
    const LockBase* held = h.lock.load(std::memory_order_relaxed);
    if (held == nullptr) continue;  // emptied by a destroyer
    if (held == &lock) {
      report_recursion(lock, site);
      return false;
    }
    if (!order) continue;
    const LockClass* ca = h.cls.load(std::memory_order_relaxed);
    const int a = ca->id();
    // The common case first: an order already established, nothing to say.
    if (a != b && !b_sleepable && a >= 0 && later_has(a, b)) [[likely]]
      continue;
    if (a < 0) continue;
    const char* aname = ca->name();
    if (b_sleepable && !ca->sleepable()) {
      // Reported, and not recorded: a reported order must not become the
      // established one that a legal sx -> mutex order is later blamed on.
      if (first_time(ReportKind::kSleepWithLock, a, b, site))
        deliver(Report{ReportKind::kSleepWithLock,
                       "acquiring sleepable lock " + describe_lock(lock) + " @ " + format_site(site) +
                           " with non-sleepable lock held by " + describe_actor(&me) + ":\n  " +
                           describe_held(h),
                       aname, cb.name(),
                       format_site(h.file.load(std::memory_order_relaxed), h.line.load(std::memory_order_relaxed)),
                       format_site(site)},
                Severity::kOrder);
      continue;
    }
    if (a == b) {
      if (nest != nullptr) continue;  // serialised by the nest lock (checked above)
      if (cb.same_class() == SameClass::kOrdered && key > h.key) continue;
      if (!first_time(ReportKind::kSameClass, a, b, site)) continue;
      std::string why =
          cb.same_class() == SameClass::kOrdered
              ? " with key " + std::to_string(key) + " not above held key " + std::to_string(h.key) +
                    " (use lock_nested with increasing keys)"
              : " (class does not allow nesting; use try-lock, SameClass::kOrdered or lock_nest_lock)";
      deliver(Report{ReportKind::kSameClass,
                     "acquiring duplicate lock of same class " + describe_lock(lock) + " @ " +
                         format_site(site) + why + " by " + describe_actor(&me) + "\n  held: " + describe_held(h),
                     aname, cb.name(),
                     format_site(h.file.load(std::memory_order_relaxed), h.line.load(std::memory_order_relaxed)),
                     format_site(site)},
              Severity::kOrder);
      continue;
    }
    if (!later_has(a, b)) [[unlikely]]
      slow_order(me, h, lock, site);
  }
  (void)mode;
  return true;
}

void note_acquired(Actor& me, const LockBase& lock, LockMode mode, std::uint32_t key, bool trylock,
                   bool contended, std::uint64_t wait_ns, const Site& site) {
  HeldLock* h = me.push(lock, mode, site.file_name(), site.line());
  if (h == nullptr) [[unlikely]] {
    if (lock.is_sx()) ++me.sx_overflow;
    checker_limit(describe_actor(&me) + " holds more than " + std::to_string(kMaxHeldLocks) +
                  " locks, at " + describe_lock(lock) + " @ " + format_site(site));
    return;
  }
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
    if (prev != nullptr && prev->id() >= 0 && c->id() >= 0) {
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
                        detail::Severity::kOrder);
      } else if (!later_has(a, b) || !g.edges.count({a, b})) {
        if (!g.edges.count({a, b}))
          add_edge(g, a, b, EdgeSites{site.file_name(), site.line(), site.file_name(), site.line(), true});
      }
    }
    prev = c;
  }
}

bool ordered_before(const LockClass& a, const LockClass& b) {
  return a.id() >= 0 && b.id() >= 0 && later_has(a.id(), b.id());
}

std::string format_graph() {
  Graph& g = graph();
  std::lock_guard<std::mutex> lk(g.mu);
  std::string out;
  for (const auto& [ab, e] : g.edges) out += edge_text(ab.first, ab.second, e) + "\n";
  return out;
}

void reset() {
  {
    Graph& g = graph();
    std::lock_guard<std::mutex> lk(g.mu);
    g.edges.clear();
    g.reported.clear();
    g.seen.clear();
    const int n = LockClass::count(), words = (n + 63) / 64;
    for (int x = 0; x < n; ++x)
      for (int w = 0; w < words; ++w) before_word(x, w).store(0, std::memory_order_relaxed);
  }
  detail::clear_limit();
}

}  // namespace witness

namespace detail {

// A class died: forget every order and finding that names its id, so the id
// can be given to a new class.  Closure bits may go missing for a moment on
// the fast path, which then takes the slow path and waits for the mutex.
void forget_class(int id) {
  Graph& g = graph();
  std::lock_guard<std::mutex> lk(g.mu);
  bool removed = false;
  for (auto it = g.edges.begin(); it != g.edges.end();) {
    if (it->first.first == id || it->first.second == id) {
      it = g.edges.erase(it);
      removed = true;
    } else {
      ++it;
    }
  }
  std::erase_if(g.reported, [id](const auto& p) { return p.first == id || p.second == id; });
  std::erase_if(g.seen, [id](const auto& t) { return std::get<1>(t) == id || std::get<2>(t) == id; });
  if (!removed) return;  // no edge: no closure bit involves it
  const int n = LockClass::count(), words = (n + 63) / 64;
  for (int x = 0; x < n; ++x)
    for (int w = 0; w < words; ++w) before_word(x, w).store(0, std::memory_order_relaxed);
  for (const auto& [ab, e] : g.edges) close_edge(ab.first, ab.second);
}

}  // namespace detail
}  // namespace faultline::locking
