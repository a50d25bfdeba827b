// What every lock type shares: its class, an optional instance name and the
// backend it was built on.  The checker and the dumps see locks through this.
#pragma once

#include "locking/backend.h"
#include "locking/lock_class.h"

namespace faultline::locking {

class LockBase {
 public:
  LockClass& lock_class() const noexcept { return *cls_; }
  // The instance name given at construction, or the class name.
  const char* name() const noexcept { return name_ != nullptr ? name_ : cls_->name(); }
  Backend backend() const noexcept { return backend_; }
  bool is_sx() const noexcept { return sx_; }

 protected:
  LockBase(LockClass& cls, const char* name, bool sx);
  ~LockBase();
  LockBase(const LockBase&) = delete;
  LockBase& operator=(const LockBase&) = delete;

 private:
  LockClass* cls_;
  const char* name_;
  Backend backend_;
  bool sx_;
  int class_id_;  // the live-lock count is kept by id: the class may die first
};

}  // namespace faultline::locking
