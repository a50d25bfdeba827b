// Call stacks for reports, through Boost.Stacktrace (header-only) on the
// libbacktrace that GCC ships (libgcc-12-dev, which g++-12 needs): it reads
// the binary's own symbols and DWARF, so frames are named (and given file and
// line where the build has -g).  Without libbacktrace (FL_HAVE_BACKTRACE 0)
// frames are addresses.
#include <atomic>
#include <string>

#if FL_HAVE_BACKTRACE
#define BOOST_STACKTRACE_USE_BACKTRACE
#define BOOST_STACKTRACE_BACKTRACE_INCLUDE_FILE FL_BACKTRACE_HEADER
#endif
#include <boost/stacktrace.hpp>

#include "locking/checking.h"

namespace faultline::locking {
namespace {
std::atomic<bool> g_stacks{false};
}  // namespace

void set_stacks(bool on) noexcept { g_stacks.store(on, std::memory_order_relaxed); }
bool stacks() noexcept { return g_stacks.load(std::memory_order_relaxed); }

namespace detail {

std::string call_stack(int skip) {
  // +1: this function's own frame.
  boost::stacktrace::stacktrace st(static_cast<std::size_t>(skip) + 1, 12);
  std::string out;
  int i = 0;
  for (const boost::stacktrace::frame& f : st) {
    std::string name = f.name();
    if (name.empty()) name = "?";
    if (name.find("__libc_start") != std::string::npos || name == "_start") break;
    out += "    #" + std::to_string(i++) + " " + name;
    std::string file = f.source_file();
    if (!file.empty()) out += " at " + format_site(file.c_str(), static_cast<std::uint32_t>(f.source_line()));
    out += "\n";
  }
  return out;
}

}  // namespace detail
}  // namespace faultline::locking
