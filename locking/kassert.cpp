#include "locking/kassert.h"

#include <cstdio>
#include <cstdlib>

#include "locking/checking.h"

namespace faultline {

namespace {
// Written once, by the panicking thread, before abort(); a signal handler
// may read it.
char g_panic[512];
}  // namespace

bool invariants_compiled_in() noexcept { return kInvariants; }

const char* last_panic() noexcept { return g_panic; }

namespace detail {

void kassert_fail(const char* condition, const char* message, const char* file, int line,
                  const char* function) noexcept {
  file = locking::tree_relative(file);  // no allocation on the way to abort()
  std::snprintf(g_panic, sizeof g_panic, "%s (KASSERT(%s) at %s:%d)", message, condition, file, line);
  std::fflush(stdout);
  std::fprintf(stderr, "panic: %s\n  KASSERT(%s) failed at %s:%d in %s\n", message, condition, file, line,
               function);
  std::fflush(stderr);
  std::abort();
}

}  // namespace detail
}  // namespace faultline
