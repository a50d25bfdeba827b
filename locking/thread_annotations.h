// Clang thread-safety analysis attributes (-Wthread-safety), as macros.
//
// Every lock type in locking/ is a "capability" and every guard is a
// "scoped capability", so code that uses them is checked at compile time:
// reading a FL_GUARDED_BY field without holding its lock, or returning from a
// function with a lock still held, is a compile error under -Werror.
// Under compilers without the analysis (g++) the macros expand to nothing.
#pragma once

#if defined(__clang__)
#define FL_TSA(x) __attribute__((x))
#else
#define FL_TSA(x)
#endif

#define FL_CAPABILITY(x) FL_TSA(capability(x))
#define FL_SCOPED_CAPABILITY FL_TSA(scoped_lockable)
#define FL_GUARDED_BY(x) FL_TSA(guarded_by(x))
#define FL_PT_GUARDED_BY(x) FL_TSA(pt_guarded_by(x))
#define FL_ACQUIRED_BEFORE(...) FL_TSA(acquired_before(__VA_ARGS__))
#define FL_ACQUIRED_AFTER(...) FL_TSA(acquired_after(__VA_ARGS__))
#define FL_REQUIRES(...) FL_TSA(requires_capability(__VA_ARGS__))
#define FL_REQUIRES_SHARED(...) FL_TSA(requires_shared_capability(__VA_ARGS__))
#define FL_ACQUIRE(...) FL_TSA(acquire_capability(__VA_ARGS__))
#define FL_ACQUIRE_SHARED(...) FL_TSA(acquire_shared_capability(__VA_ARGS__))
#define FL_RELEASE(...) FL_TSA(release_capability(__VA_ARGS__))
#define FL_RELEASE_SHARED(...) FL_TSA(release_shared_capability(__VA_ARGS__))
#define FL_RELEASE_GENERIC(...) FL_TSA(release_generic_capability(__VA_ARGS__))
#define FL_TRY_ACQUIRE(...) FL_TSA(try_acquire_capability(__VA_ARGS__))
#define FL_TRY_ACQUIRE_SHARED(...) FL_TSA(try_acquire_shared_capability(__VA_ARGS__))
#define FL_EXCLUDES(...) FL_TSA(locks_excluded(__VA_ARGS__))
#define FL_ASSERT_CAPABILITY(x) FL_TSA(assert_capability(x))
#define FL_ASSERT_SHARED_CAPABILITY(x) FL_TSA(assert_shared_capability(x))
#define FL_RETURN_CAPABILITY(x) FL_TSA(lock_returned(x))
#define FL_NO_THREAD_SAFETY_ANALYSIS FL_TSA(no_thread_safety_analysis)
