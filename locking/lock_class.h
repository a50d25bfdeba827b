// Lock classes: every lock belongs to one, and the order checker reasons about
// classes, not instances (as WITNESS does with its lock types and lockdep with
// its lock classes).  Thousands of "vm object" mutexes share one class, so one
// observed order between "vm object" and "page queues" covers them all.
//
// Classes are usually long-lived (namespace-scope objects), but may come and
// go: a class gets a small id at construction, and the id (with every order
// the checker learnt about the class) is recycled when the class dies.  At
// most kMaxLockClasses live at once (lockdep's MAX_LOCKDEP_KEYS); one more is
// reported once (ReportKind::kLimit) and turns the order checker off for the
// rest of the process instead of aborting it.  Two live classes with one name
// are reported (kDuplicateName, a warning): reports name classes.  Destroying
// a class while locks of it are alive is reported (kClassInUse, a warning: at
// exit, locks parked with a failed run legitimately outlive their class) and
// its id is then never reused; the locks may still be destroyed.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace faultline::locking {

inline constexpr int kMaxLockClasses = 8192;
// The id of a class made past the limit: never ordered.
inline constexpr int kNoClassId = -1;

enum class LockKind : std::uint8_t {
  kMutex,  // not sleepable: never held across a sleep (other than as interlock)
  kSx,     // shared/exclusive, sleepable: may be held across a sleep
};

// What a blocking acquisition of a second lock of the same class means.
// A try-lock never deadlocks, so a try-lock of the same class is always allowed.
enum class SameClass : std::uint8_t {
  kForbid,   // reported (kSameClass): the default, as WITNESS does without LO_DUPOK
  kOrdered,  // allowed when its key (lock_nested(key)) is greater than the key of
             // every lock of the class already held: e.g. an object chain locked
             // top first, key = depth in the chain
};

// Per-class profile counters (see profile.h); relaxed atomics.
struct LockStats {
  std::atomic<std::uint64_t> acquisitions{0};
  std::atomic<std::uint64_t> contended{0};
  std::atomic<std::uint64_t> wait_ns_total{0};
  std::atomic<std::uint64_t> wait_ns_max{0};
  std::atomic<std::uint64_t> hold_ns_total{0};
  std::atomic<std::uint64_t> hold_ns_max{0};
  void reset() noexcept;
};

class LockClass {
 public:
  LockClass(const char* name, LockKind kind, SameClass same_class = SameClass::kForbid);
  ~LockClass();
  LockClass(const LockClass&) = delete;
  LockClass& operator=(const LockClass&) = delete;

  const char* name() const noexcept { return name_; }
  int id() const noexcept { return id_; }
  LockKind kind() const noexcept { return kind_; }
  bool sleepable() const noexcept { return kind_ == LockKind::kSx; }
  SameClass same_class() const noexcept { return same_class_; }
  LockStats& stats() noexcept { return stats_; }
  const LockStats& stats() const noexcept { return stats_; }

  // Locks of this class alive now.
  long live_locks() const noexcept;

  // The class with this id, or nullptr.
  static LockClass* by_id(int id) noexcept;
  // One past the highest id in use so far (ids below it may be free).
  static int count() noexcept;
  // Classes alive now.
  static int live() noexcept;

 private:
  const char* name_;
  LockKind kind_;
  SameClass same_class_;
  int id_;
  LockStats stats_;
};

}  // namespace faultline::locking
