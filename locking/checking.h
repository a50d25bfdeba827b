// How locking/ reports what it catches, and how hard it looks.
//
// Three kinds of finding, all delivered as a Report to one handler:
//   - lock-order findings (a reversal in the class order graph, an undeclared
//     acquisition of two locks of one class, sleeping with a non-sleepable
//     lock held): looked for only when the mode is not kOff;
//   - misuse (unlocking a lock not held, recursing on a non-recursive lock,
//     destroying a held lock): always caught, since it costs one comparison
//     of the owner field; the bad operation is skipped, never half done;
//   - failed ownership assertions (assert_owned and friends): always checked.
//
// After the handler returns: in kAbort mode the process aborts; in kReport
// mode execution goes on (a skipped misuse leaves the lock as it was); in kOff
// mode misuse and failed assertions still abort, as a kernel would panic.
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
};
const char* report_kind_name(ReportKind k) noexcept;

struct Report {
  ReportKind kind;
  std::string message;   // multi-line, human readable, names classes and sites
  std::string first_class, second_class;  // the classes involved (second may be empty)
  std::string first_site, second_site;    // "file:line" of the acquisitions involved
};

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
// Delivers a report, then aborts or returns per the rules above.
void deliver(Report r, bool order_finding);
}  // namespace detail

}  // namespace faultline::locking
