// Helpers shared by locking/'s tests.
#pragma once

#include <functional>
#include <thread>
#include <vector>

#include <boost/fiber/all.hpp>
#include <gtest/gtest.h>

#include "locking/locking.h"

namespace faultline::locking::testing {

// Selects a backend for a test and restores std afterwards.  Each test starts
// with an empty order graph and the checker in report mode, capturing reports.
class LockingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    set_backend(Backend::kStd);
    witness::reset();
    set_profiling(false);
  }
  void TearDown() override {
    set_profiling(false);
    set_backend(Backend::kStd);
  }
};

// Runs fn(i) on n OS threads and joins them.
inline void run_threads(int n, const std::function<void(int)>& fn) {
  std::vector<std::thread> ts;
  ts.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) ts.emplace_back([&fn, i] { fn(i); });
  for (auto& t : ts) t.join();
}

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FL_TEST_TSAN 1
#endif
#if __has_feature(address_sanitizer)
#define FL_TEST_ASAN 1
#endif
#endif

// Sanitizer runtimes run on the fiber's stack and instrumented frames are
// larger, so sanitizer builds give fibers bigger stacks.
#if defined(FL_TEST_TSAN) || defined(FL_TEST_ASAN)
inline constexpr std::size_t kTestFiberStack = 256 * 1024;
#else
inline constexpr std::size_t kTestFiberStack = 64 * 1024;
#endif

// TSan keeps one shadow call stack per OS thread, and Boost.Fiber's fcontext
// switches stacks without telling it (__tsan_switch_to_fiber), so the frames
// of every suspended fiber pile up on that one shadow stack; at 10,000 fibers
// it overflows and TSan crashes.  Fiber tests therefore use at most this many
// fibers at once under TSan (which cannot see races between fibers on one
// thread anyway: harness.md); release and ASan builds run them in full.
#if defined(FL_TEST_TSAN)
inline constexpr int kMaxTestFibers = 1000;
#else
inline constexpr int kMaxTestFibers = 1 << 30;
#endif

// Runs fn(i) in n fibers on this OS thread (Boost.Fiber's round robin) and
// joins them.  Small stacks so tens of thousands fit.
inline void run_fibers(int n, const std::function<void(int)>& fn,
                       std::size_t stack = kTestFiberStack) {
  std::vector<boost::fibers::fiber> fs;
  fs.reserve(static_cast<std::size_t>(n));
  boost::fibers::fixedsize_stack alloc(stack);
  for (int i = 0; i < n; ++i)
    fs.emplace_back(std::allocator_arg, alloc, [&fn, i] { fn(i); });
  for (auto& f : fs) f.join();
}

}  // namespace faultline::locking::testing
