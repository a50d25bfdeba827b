// A user of faultline::locking, as a kernel engineer would use WITNESS or
// lockdep in their own code: two lock classes, a thread that takes them in
// one order and a thread that takes them in the other.  The threads run one
// after the other, so nothing deadlocks; the checker still reports the
// reversal, naming both classes and both acquisition sites.
//
// Exit code: 0 if exactly one lock-order reversal was reported, 1 otherwise.
#include <cstdio>
#include <thread>

#include "locking/locking.h"

using namespace faultline::locking;

namespace {

LockClass account_class{"account", LockKind::kMutex};
LockClass ledger_class{"ledger", LockKind::kMutex};

struct Bank {
  Mutex account{account_class, "account 1"};
  Mutex ledger{ledger_class, "ledger"};
  long balance FL_GUARDED_BY(account) = 0;
  long entries FL_GUARDED_BY(ledger) = 0;
};

}  // namespace

int main() {
  int reversals = 0;
  set_mode(Mode::kReport);
  set_report_handler([&](const Report& r) {
    std::printf("consumer: the checker reported a %s between '%s' and '%s'\n%s\n", report_kind_name(r.kind),
                r.first_class.c_str(), r.second_class.c_str(), r.message.c_str());
    if (r.kind == ReportKind::kOrderReversal) ++reversals;
  });

  Bank bank;
  std::thread deposit([&] {  // account, then ledger: establishes the order
    ActorScope actor("deposit");
    MutexLock a(bank.account);
    MutexLock l(bank.ledger);
    bank.balance += 10;
    ++bank.entries;
  });
  deposit.join();
  std::thread audit([&] {  // ledger, then account: the reversal
    ActorScope actor("audit");
    MutexLock l(bank.ledger);
    MutexLock a(bank.account);
    std::printf("consumer: audit sees balance %ld in %ld entries\n", bank.balance, bank.entries);
  });
  audit.join();

  std::printf("consumer: %d lock-order reversal%s reported (faultline built with invariants %s)\n", reversals,
              reversals == 1 ? "" : "s", faultline::invariants_compiled_in() ? "on" : "off");
  return reversals == 1 ? 0 : 1;
}
