// Compiled by the locking.tsa_compile_* tests with clang's -Wthread-safety
// -Werror: the "ok" variant must compile, the "bad" one must be rejected.
#include "locking/mutex.h"

using faultline::locking::LockClass;
using faultline::locking::LockKind;
using faultline::locking::Mutex;
using faultline::locking::MutexLock;

LockClass account_class{"account", LockKind::kMutex};

struct Account {
  Mutex mtx{account_class};
  long balance FL_GUARDED_BY(mtx) = 0;
};

void transfer(Account& from, Account& to, long amount) {
  MutexLock lf(from.mtx);
#if defined(FL_VARIANT_BAD)
  // Wrong: only `from` is locked, yet `to.balance` is written.
  from.balance -= amount;
  to.balance += amount;
#else
  MutexLock lt(to.mtx);
  from.balance -= amount;
  to.balance += amount;
#endif
}

int main() {
  Account a, b;
  transfer(a, b, 1);
}
