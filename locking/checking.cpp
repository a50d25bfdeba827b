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
  if (m == Mode::kOff)
    detail::g_track.fetch_and(static_cast<std::uint8_t>(~1u), std::memory_order_relaxed);
  else
    detail::g_track.fetch_or(1, std::memory_order_relaxed);
}

Mode mode() noexcept { return g_mode.load(std::memory_order_relaxed); }

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

void deliver(Report r, bool order_finding) {
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
  if (m == Mode::kAbort || (m == Mode::kOff && !order_finding)) {
    std::fprintf(stderr, "faultline: aborting (lock checker mode %s) after: %s\n", mode_name(m),
                 report_kind_name(r.kind));
    std::fflush(stderr);
    std::abort();
  }
}

namespace {

std::string describe_actor(const Actor* a) {
  if (a == nullptr) return "nobody";
  return "actor " + std::to_string(a->id()) + " \"" + a->name() + "\"";
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
  const LockBase* l = h.lock.load(std::memory_order_relaxed);
  std::string s = h.mode.load(std::memory_order_relaxed) == LockMode::kShared ? "shared " : "exclusive ";
  s += l != nullptr ? describe_lock(*l) : "?";
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
  deliver(std::move(r), false);
}

void report_not_owned(const LockBase& lock, const Actor* owner, const char* what, const Site& site) {
  Actor& me = current_actor();
  std::string msg = std::string(what) + " lock " + describe_lock(lock) + " not held by " +
                    describe_actor(&me) + " @ " + format_site(site) + "\n  ";
  msg += owner != nullptr ? "held exclusively by " + describe_actor(owner) : "not held exclusively";
  std::string owner_site = held_site(owner, lock);
  if (!owner_site.empty()) msg += ", acquired @ " + owner_site;
  Report r{ReportKind::kNotOwned, std::move(msg), lock.lock_class().name(), "", owner_site,
           format_site(site)};
  deliver(std::move(r), false);
}

void report_destroy_held(const LockBase& lock, const Actor* owner) {
  std::string owner_site = held_site(owner, lock);
  std::string msg = "destroying lock " + describe_lock(lock) + " while it is held";
  msg += owner != nullptr ? " by " + describe_actor(owner) : std::string(" shared");
  if (!owner_site.empty()) msg += "\n  acquired @ " + owner_site;
  Report r{ReportKind::kDestroyHeld, std::move(msg), lock.lock_class().name(), "", owner_site, ""};
  deliver(std::move(r), false);
}

void report_assertion(const LockBase& lock, const char* expected, const Site& site) {
  Actor& me = current_actor();
  Report r{ReportKind::kAssertion,
           "lock assertion failed: " + describe_lock(lock) + " expected " + expected + " by " +
               describe_actor(&me) + " @ " + format_site(site),
           lock.lock_class().name(), "", "", format_site(site)};
  deliver(std::move(r), false);
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
