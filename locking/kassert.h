// FL_KASSERT(condition, message): the model's own assertions, as FreeBSD's
// KASSERT in a kernel built with `options INVARIANTS`.
//
// They do not depend on NDEBUG: a Release build (-O3 -DNDEBUG) checks them
// as a Debug build does.  Only the CMake option FL_INVARIANTS=OFF compiles
// them out (with the lock ownership assertions, assert_owned and friends),
// for benchmarking the protocol's cost without its checks; the condition is
// then not evaluated.  `faultline` prints which way it was built.
//
// A failed KASSERT panics: it prints
//   panic: <message>
//     KASSERT(<condition>) failed at <file:line> in <function>
// to stderr and aborts.  The text stays readable through last_panic() so a
// crash handler (the harness's) can put it in its own report.
#pragma once

#ifndef FL_INVARIANTS
#define FL_INVARIANTS 1
#endif

namespace faultline {

// True where FL_KASSERT and the lock assertions are compiled in.
inline constexpr bool kInvariants = FL_INVARIANTS != 0;

// How the library itself was built (a consumer's own FL_INVARIANTS could
// differ only if it overrode the installed package's definition).
bool invariants_compiled_in() noexcept;

// The message of the panic in progress ("" if none): set before abort().
const char* last_panic() noexcept;

namespace detail {
[[noreturn]] void kassert_fail(const char* condition, const char* message, const char* file, int line,
                               const char* function) noexcept;
}  // namespace detail

}  // namespace faultline

#if FL_INVARIANTS
#define FL_KASSERT(condition, message)                                                          \
  (static_cast<bool>(condition)                                                                 \
       ? static_cast<void>(0)                                                                   \
       : ::faultline::detail::kassert_fail(#condition, message, __FILE__, __LINE__, __func__))
#else
// Not evaluated, but still compiled: no unused-variable warnings, no rot.
#define FL_KASSERT(condition, message) static_cast<void>(sizeof(static_cast<bool>(condition)))
#endif
