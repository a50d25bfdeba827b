// The reach catalogue: the race windows and fault branches a stress run must
// enter for its verdict to say anything about them.  Each window is a named
// event counted where it happens in core/ (a Counters counter: per-thread,
// as cheap as the rest), with where it is in the seed listing or in 7.x.
// A run's reach table gives, per window, how often it was entered and the
// stamp of the first time (the harness stamps with the operations
// completed); a window at zero is one the run proved nothing about.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/counters.h"

namespace faultline::vm {

enum class WindowKind : std::uint8_t {
  kSeedBranch,  // a branch of vm_fault (the seed listing's lines)
  kRetry,       // a RetryFault reason
  kWindow,      // a race window elsewhere in 7.x (collapse, pageout, truncation, ...)
};

struct Window {
  const char* name;   // "fault.past_eof"
  WindowKind kind;
  const char* where;  // "seed L423-427", "vm_object_backing_scan"
  const char* what;
  const Counter& (*counter)(const Counters&);
  // Null for a window the workload enters (--require-reach asks for it);
  // else the unit test that forces it, the workload having no operation
  // that can (reach.cpp says why), and --require-reach does not ask.
  const char* forced_by = nullptr;
};

// Every declared window, in catalogue order.
const std::vector<Window>& reach_catalogue();
const Window* find_window(const std::string& name);

struct ReachRow {
  const Window* window;
  std::uint64_t count;
  std::optional<std::uint64_t> first;  // stamp of the first time; none if never
};
std::vector<ReachRow> reach_table(const Counters& c);

}  // namespace faultline::vm
