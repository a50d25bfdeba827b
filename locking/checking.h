// How locking/ reports what it catches, and how hard it looks.
//
// Four kinds of finding, all delivered as a Report to one handler:
//   - lock-order findings (a reversal in the class order graph, an undeclared
//     acquisition of two locks of one class, sleeping with a non-sleepable
//     lock held, a declared order contradicting an observed one): looked for
//     only while the order checker is on (mode not kOff, and not turned off by
//     a limit);
//   - misuse (unlocking a lock not held or in the wrong mode, recursing on a
//     non-recursive lock, destroying a held lock, an actor ending with locks
//     held, a lock built on a class of the wrong kind):
//     caught in every mode, off included, since it costs a comparison of the
//     owner field or a look at the actor's own held stack; the bad operation
//     is skipped, never half done, and the library stays consistent (no
//     dangling owner, no dead lock left on a held stack);
//   - failed ownership assertions (assert_owned and friends): always checked;
//   - warnings (a limit reached, which turns the order checker off; two live
//     classes with one name; a class destroyed while locks of it live, as at
//     exit after a failed run parks its workers): reported, never fatal.
//
// After the handler returns: in kAbort mode the process aborts (except after
// a warning); in kReport mode execution goes on; in kOff mode misuse and
// failed assertions still abort, as a kernel would panic.
//
// What kOff does not do: it builds no order graph, and plain Mutex holds are
// not put on the actor's held stack (the fast path is one owner compare and
// a per-actor hold count, as FreeBSD counts td_locks without WITNESS).  So in
// kOff an actor that ends holding mutexes is reported with their number but
// not their names; sx holds (shared holds have no owner field) are always on
// the held stack, so sx misuse is caught by lock and site in every mode.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <source_location>
#include <string>
#include <string_view>

namespace faultline::locking {

using Site = std::source_location;

// A site printed as "dir/file.cpp:123", relative to the source tree.
std::string format_site(const char* file, std::uint32_t line);
// The file's path relative to the source tree (a suffix of `file`, no
// allocation: safe on the way to abort()).
const char* tree_relative(const char* file) noexcept;
inline std::string format_site(const Site& s) { return format_site(s.file_name(), s.line()); }

enum class Mode : std::uint8_t { kOff, kReport, kAbort };
const char* mode_name(Mode m) noexcept;
std::optional<Mode> parse_mode(std::string_view name) noexcept;

void set_mode(Mode m) noexcept;
Mode mode() noexcept;

enum class ReportKind : std::uint8_t {
  kOrderReversal,     // the acquisition closes a cycle in the class order graph
  kSameClass,         // an undeclared blocking acquisition of a second lock of one class
  kSleepWithLock,     // sleeping with a non-sleepable lock other than the interlock
  kRecursion,         // locking a non-recursive lock already held by this actor
  kNotOwned,          // unlocking a lock this actor does not hold
  kDestroyHeld,       // destroying a lock that is held
  kAssertion,         // an ownership assertion failed
  kDeclaredOrder,     // declare_order contradicts an order already established
  kExitHeld,          // a thread, fiber or actor scope ended holding locks
  kClassInUse,        // destroying a lock class while locks of it are alive
  kWrongKind,         // a lock built on a class of the other kind (Mutex on kSx...)
  kLimit,             // warning: a checker limit was reached; order checking is off
  kDuplicateName,     // warning: two live lock classes share a name
};
const char* report_kind_name(ReportKind k) noexcept;

struct Report {
  ReportKind kind;
  std::string message;   // multi-line, human readable, names classes, sites and the actor
  std::string first_class, second_class;  // the classes involved (second may be empty)
  std::string first_site, second_site;    // "file:line" of the acquisitions involved
  std::string actor = {};                 // the actor that did it: "actor 3 \"worker-2\""
};

// False once a limit (kMaxLockClasses live classes, kMaxHeldLocks held by one
// actor) was reached: the order checker then stays off, whatever the mode,
// until witness::reset().  Misuse is still caught.
bool order_checker_enabled() noexcept;

// Call stacks in order reports (off by default).  When on, the checker saves
// the call stack of the acquisition that first establishes each order, and a
// reversal prints it with the stack of the reversing acquisition, so a lock
// taken through a helper shows its callers (as lockdep does).  Costs nothing
// per acquisition: stacks are taken only when a new order is recorded or a
// finding is reported.  Symbols come from Boost.Stacktrace on GCC's
// libbacktrace (names always; files and lines where the build has -g).
void set_stacks(bool on) noexcept;
bool stacks() noexcept;

// The handler sees every report; the default prints report.message to stderr.
// Returns the previous handler.  The handler must not take locking/ locks.
using ReportHandler = std::function<void(const Report&)>;
ReportHandler set_report_handler(ReportHandler h);

// Installs a capturing handler for its lifetime and restores the previous one
// (and the previous mode); for tests.
class ScopedReportCapture {
 public:
  explicit ScopedReportCapture(Mode m = Mode::kReport);
  ~ScopedReportCapture();
  ScopedReportCapture(const ScopedReportCapture&) = delete;
  ScopedReportCapture& operator=(const ScopedReportCapture&) = delete;

  std::size_t size() const;
  Report at(std::size_t i) const;
  std::size_t count(ReportKind k) const;
  void clear();

 private:
  struct State;
  State* state_;
  ReportHandler previous_;
  Mode previous_mode_;
};

namespace detail {
enum class Severity : std::uint8_t { kOrder, kMisuse, kWarning };
// Delivers a report, then aborts or returns per the rules above.
void deliver(Report r, Severity s);
// The current call stack, one frame a line ("    #0 f(int) at file.cpp:12"),
// without the innermost `skip` frames.
std::string call_stack(int skip);
}  // namespace detail

}  // namespace faultline::locking
