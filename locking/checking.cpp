#include "locking/checking.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "locking/detail/check.h"

#ifndef FL_SOURCE_DIR
#define FL_SOURCE_DIR ""
#endif

namespace faultline::locking {
namespace detail {
std::atomic<std::uint8_t> g_track{0};
}  // namespace detail

namespace {

std::atomic<Mode> g_mode{Mode::kOff};
std::atomic<bool> g_limit_hit{false};  // a limit turned the order checker off

// The handler is replaced rarely (tests) and read on every report; reports
// are rare, so a plain mutex suffices.  std::mutex, not a locking/ lock: the
// checker must not check itself.
std::mutex g_handler_mu;
ReportHandler g_handler;  // empty: print to stderr

}  // namespace

const char* tree_relative(const char* file) noexcept {
  if (file == nullptr) return "?";
  const char* root = FL_SOURCE_DIR;
  const std::size_t n = std::strlen(root);
  return n != 0 && std::strncmp(file, root, n) == 0 ? file + n : file;
}

std::string format_site(const char* file, std::uint32_t line) {
  return std::string(tree_relative(file)) + ":" + std::to_string(line);
}

const char* mode_name(Mode m) noexcept {
  switch (m) {
    case Mode::kOff: return "off";
    case Mode::kReport: return "report";
    case Mode::kAbort: return "abort";
  }
  return "?";
}

std::optional<Mode> parse_mode(std::string_view name) noexcept {
  for (Mode m : {Mode::kOff, Mode::kReport, Mode::kAbort})
    if (name == mode_name(m)) return m;
  return std::nullopt;
}

void set_mode(Mode m) noexcept {
  g_mode.store(m, std::memory_order_relaxed);
  if (m == Mode::kOff || g_limit_hit.load(std::memory_order_relaxed))
    detail::g_track.fetch_and(static_cast<std::uint8_t>(~1u), std::memory_order_relaxed);
  else
    detail::g_track.fetch_or(1, std::memory_order_relaxed);
}

Mode mode() noexcept { return g_mode.load(std::memory_order_relaxed); }

bool order_checker_enabled() noexcept { return !g_limit_hit.load(std::memory_order_relaxed); }

const char* report_kind_name(ReportKind k) noexcept {
  switch (k) {
    case ReportKind::kOrderReversal: return "lock order reversal";
    case ReportKind::kSameClass: return "duplicate lock of same class";
    case ReportKind::kSleepWithLock: return "sleeping with non-sleepable lock held";
    case ReportKind::kRecursion: return "recursion on non-recursive lock";
    case ReportKind::kNotOwned: return "lock not owned";
    case ReportKind::kDestroyHeld: return "destroying held lock";
    case ReportKind::kAssertion: return "lock assertion failed";
    case ReportKind::kDeclaredOrder: return "declared order contradicts observed order";
    case ReportKind::kExitHeld: return "actor ended holding locks";
    case ReportKind::kClassInUse: return "destroying lock class in use";
    case ReportKind::kWrongKind: return "lock of the wrong kind for its class";
    case ReportKind::kLimit: return "lock checker limit reached";
    case ReportKind::kDuplicateName: return "two lock classes share a name";
  }
  return "?";
}

ReportHandler set_report_handler(ReportHandler h) {
  std::lock_guard<std::mutex> g(g_handler_mu);
  ReportHandler old = std::move(g_handler);
  g_handler = std::move(h);
  return old;
}

namespace detail {

void deliver(Report r, Severity severity) {
  if (r.actor.empty() && r.kind != ReportKind::kExitHeld) r.actor = describe_actor(&current_actor());
  {
    std::lock_guard<std::mutex> g(g_handler_mu);
    if (g_handler) {
      g_handler(r);
    } else {
      std::fprintf(stderr, "faultline: %s\n", r.message.c_str());
      std::fflush(stderr);
    }
  }
  const Mode m = mode();
  if (severity == Severity::kWarning) return;
  if (m == Mode::kAbort || (m == Mode::kOff && severity == Severity::kMisuse)) {
    std::fprintf(stderr, "faultline: aborting (lock checker mode %s) after: %s\n", mode_name(m),
                 report_kind_name(r.kind));
    std::fflush(stderr);
    std::abort();
  }
}

std::string describe_actor(const Actor* a) {
  if (a == nullptr) return "nobody";
  std::string s = "actor " + std::to_string(a->id()) + " \"" + a->name() + "\"";
  if (a->exited()) s += " (exited)";
  return s;
}

std::string describe_lock(const LockBase& l) {
  std::string s = "\"";
  s += l.lock_class().name();
  s += "\"";
  if (std::strcmp(l.name(), l.lock_class().name()) != 0) {
    s += " (";
    s += l.name();
    s += ")";
  }
  return s;
}

namespace {

// The site where `a` took `l`, if its held stack says so.
std::string held_site(const Actor* a, const LockBase& l) {
  if (a == nullptr) return "";
  int i = a->find(&l);
  if (i < 0) return "";
  const HeldLock& h = a->held(i);
  return format_site(h.file.load(std::memory_order_relaxed), h.line.load(std::memory_order_relaxed));
}

}  // namespace

std::string describe_held(const HeldLock& h) {
  std::string s = h.mode.load(std::memory_order_relaxed) == LockMode::kShared ? "shared " : "exclusive ";
  const char* cls = h.cls.load(std::memory_order_relaxed)->name();
  const char* name = h.lock_name.load(std::memory_order_relaxed);
  s += "\"";
  s += cls != nullptr ? cls : "?";
  s += "\"";
  if (name != nullptr && cls != nullptr && std::strcmp(name, cls) != 0) {
    s += " (";
    s += name;
    s += ")";
  }
  s += " @ ";
  s += format_site(h.file.load(std::memory_order_relaxed), h.line.load(std::memory_order_relaxed));
  return s;
}

void report_recursion(const LockBase& lock, const Site& site) {
  Actor& me = current_actor();
  std::string first = held_site(&me, lock);
  Report r{ReportKind::kRecursion,
           "recursion on non-recursive lock " + describe_lock(lock) + " by " + describe_actor(&me) +
               "\n  first acquired @ " + (first.empty() ? std::string("?") : first) +
               "\n  acquired again @ " + format_site(site),
           lock.lock_class().name(), "", first, format_site(site)};
  deliver(std::move(r), Severity::kMisuse);
}

void report_not_owned(const LockBase& lock, const Actor* owner, const char* what, const Site& site) {
  Actor& me = current_actor();
  std::string msg = std::string(what) + " lock " + describe_lock(lock) + " not held by " +
                    describe_actor(&me) + " @ " + format_site(site) + "\n  ";
  std::string owner_site;
  if (owner == &me) {
    msg += "this actor holds it exclusively";
    owner_site = held_site(owner, lock);
  } else if (owner != nullptr) {
    // Another actor's: it may be ending right now, so look it up in the
    // registry rather than read it.
    msg += "held exclusively by " + describe_owner(owner, lock, &owner_site);
  } else {
    msg += "not held exclusively";
  }
  if (!owner_site.empty()) msg += ", acquired @ " + owner_site;
  // A wrong-mode release: name this actor's own hold.
  if (owner != &me) {
    int i = me.find(&lock);
    if (i >= 0) {
      const HeldLock& h = me.held(i);
      owner_site = format_site(h.file.load(std::memory_order_relaxed), h.line.load(std::memory_order_relaxed));
      msg += std::string("\n  this actor holds it ") +
             (h.mode.load(std::memory_order_relaxed) == LockMode::kShared ? "shared" : "exclusively") +
             ", acquired @ " + owner_site;
    }
  }
  Report r{ReportKind::kNotOwned, std::move(msg), lock.lock_class().name(), "", owner_site,
           format_site(site)};
  deliver(std::move(r), Severity::kMisuse);
}

void report_wrong_kind(const LockBase& lock, const char* type, const char* wanted, const Site& site) {
  Report r{ReportKind::kWrongKind,
           std::string("lock ") + describe_lock(lock) + " is " + type + " but its class \"" +
               lock.lock_class().name() + "\" is " + (lock.lock_class().sleepable() ? "sleepable (kSx)" : "non-sleepable (kMutex)") +
               "; " + type + " needs " + wanted + " @ " + format_site(site) +
               "\n  the checker treats the lock by its class's kind",
           lock.lock_class().name(), "", "", format_site(site)};
  deliver(std::move(r), Severity::kMisuse);
}

void report_assertion(const LockBase& lock, const char* expected, const Site& site) {
  Actor& me = current_actor();
  Report r{ReportKind::kAssertion,
           "lock assertion failed: " + describe_lock(lock) + " expected " + expected + " by " +
               describe_actor(&me) + " @ " + format_site(site),
           lock.lock_class().name(), "", "", format_site(site)};
  deliver(std::move(r), Severity::kMisuse);
}

void checker_limit(const std::string& what) {
  if (g_limit_hit.exchange(true)) return;  // reported once
  g_track.fetch_and(static_cast<std::uint8_t>(~kTrackOrder), std::memory_order_relaxed);
  deliver(Report{ReportKind::kLimit,
                 "lock checker limit reached: " + what +
                     "\n  the order checker is off from here on (misuse is still caught)",
                 "", "", "", ""},
          Severity::kWarning);
}

void clear_limit() noexcept {
  g_limit_hit.store(false, std::memory_order_relaxed);
  set_mode(mode());
}

}  // namespace detail

struct ScopedReportCapture::State {
  mutable std::mutex mu;
  std::vector<Report> reports;
};

ScopedReportCapture::ScopedReportCapture(Mode m) : state_(new State), previous_mode_(mode()) {
  State* s = state_;
  previous_ = set_report_handler([s](const Report& r) {
    std::lock_guard<std::mutex> g(s->mu);
    s->reports.push_back(r);
  });
  set_mode(m);
}

ScopedReportCapture::~ScopedReportCapture() {
  set_report_handler(std::move(previous_));
  set_mode(previous_mode_);
  delete state_;
}

std::size_t ScopedReportCapture::size() const {
  std::lock_guard<std::mutex> g(state_->mu);
  return state_->reports.size();
}

Report ScopedReportCapture::at(std::size_t i) const {
  std::lock_guard<std::mutex> g(state_->mu);
  return state_->reports.at(i);
}

std::size_t ScopedReportCapture::count(ReportKind k) const {
  std::lock_guard<std::mutex> g(state_->mu);
  std::size_t n = 0;
  for (const Report& r : state_->reports) n += r.kind == k;
  return n;
}

void ScopedReportCapture::clear() {
  std::lock_guard<std::mutex> g(state_->mu);
  state_->reports.clear();
}

}  // namespace faultline::locking
