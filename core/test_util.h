// Shared fixture for core/'s tests: a small Vm, the lock checker in report
// mode capturing every finding (a test fails if any appear).
#pragma once

#include <memory>
#include <thread>

#include <gtest/gtest.h>

#include "core/object.h"
#include "core/vm.h"
#include "locking/locking.h"

namespace faultline::vm::testing {

class CoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    capture_ = std::make_unique<locking::ScopedReportCapture>(locking::Mode::kReport);
    VmConfig c;
    c.npages = 256;
    vm_ = std::make_unique<Vm>(c);
  }
  void TearDown() override {
    for (std::size_t i = 0; i < capture_->size(); ++i)
      ADD_FAILURE() << "lock checker: " << capture_->at(i).message;
    EXPECT_EQ(vm_->live_objects.load(), 0) << "objects leaked";
    vm_.reset();
    capture_.reset();
  }
  Vm& vm() { return *vm_; }
  std::uint32_t free_pages() { return vm_->free_count.load(); }

  std::unique_ptr<locking::ScopedReportCapture> capture_;
  std::unique_ptr<Vm> vm_;
};

}  // namespace faultline::vm::testing
