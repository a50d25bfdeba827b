// Profiling, schedule-point hooks.
#include "locking/profile.h"

#include <atomic>
#include <map>

#include <gtest/gtest.h>

#include "locking/test_util.h"

namespace faultline::locking {
namespace {

using testing::LockingTest;
using testing::run_threads;

LockClass prof_class{"profiled object", LockKind::kMutex};
LockClass prof_sx_class{"profiled map", LockKind::kSx};

TEST_F(LockingTest, ProfileCountsPerClassAndSite) {
  ScopedReportCapture cap(Mode::kOff);
  reset_profile();
  set_profiling(true);
  Mutex m(prof_class);
  SxLock sx(prof_sx_class);
  const int line = __LINE__ + 3;
  for (int i = 0; i < 10; ++i) {
    sx.slock();
    m.lock();
    m.unlock();
    sx.sunlock();
  }
  // Contention: a second thread blocks while we hold the mutex.
  std::atomic<bool> waiting{false};
  m.lock();
  std::thread t([&] {
    waiting = true;
    m.lock();
    m.unlock();
  });
  while (!waiting) std::this_thread::yield();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  m.unlock();
  t.join();
  set_profiling(false);

  auto classes = profile_by_class();
  std::map<std::string, ProfileRow> by_name;
  for (auto& r : classes) by_name[r.lock_class] = r;
  ASSERT_TRUE(by_name.count("profiled object"));
  EXPECT_EQ(by_name["profiled object"].acquisitions, 12u);
  EXPECT_EQ(by_name["profiled map"].acquisitions, 10u);
  // Whether the thread found it held depends on timing; if it did, the wait is timed.
  const ProfileRow& obj = by_name["profiled object"];
  EXPECT_LE(obj.contended, 1u);
  if (obj.contended == 1) {
    EXPECT_GT(obj.wait_ns_total, 0u);
  }
  EXPECT_GE(obj.hold_ns_max, 1000000u);  // the 5 ms hold

  auto sites = profile_by_site();
  bool found = false;
  for (auto& r : sites) {
    if (r.site == "locking/profile_test.cpp:" + std::to_string(line)) {
      found = true;
      EXPECT_EQ(r.lock_class, "profiled object");
      EXPECT_EQ(r.acquisitions, 10u);
    }
  }
  EXPECT_TRUE(found);
  std::string table = format_profile(sites, 10);
  EXPECT_NE(table.find("total_wait_us"), std::string::npos);
  EXPECT_NE(table.find("(\"profiled object\")"), std::string::npos) << table;
}

TEST_F(LockingTest, ProfilingOffCountsNothing) {
  ScopedReportCapture cap(Mode::kOff);
  reset_profile();
  Mutex m(prof_class);
  m.lock();
  m.unlock();
  EXPECT_TRUE(profile_by_class().empty());
}

struct Recorded {
  std::vector<std::pair<Point, const void*>> points;
};

void record_point(const PointInfo& info, void* ctx) {
  static_cast<Recorded*>(ctx)->points.emplace_back(info.point, info.object);
}

TEST_F(LockingTest, ScheduleHookSeesEveryPoint) {
  ScopedReportCapture cap(Mode::kReport);
  Mutex m(prof_class);
  SxLock sx(prof_sx_class);
  int chan = 0;
  Recorded rec;
  set_point_hook(record_point, &rec);
  sx.slock();
  m.lock();
  EXPECT_TRUE(sx.try_upgrade());
  msleep(&chan, m, "thook", std::chrono::microseconds(10));
  m.unlock();
  sx.unlock();
  wakeup(&chan);
  schedule_point(Point::kIo, &chan, 250);
  set_point_hook(nullptr, nullptr);
  m.lock();  // no hook: not recorded
  m.unlock();
  std::vector<std::pair<Point, const void*>> want = {
      {Point::kLock, &sx},    {Point::kLock, &m},   {Point::kTryLock, &sx}, {Point::kSleep, &chan},
      {Point::kUnlock, &m},   {Point::kUnlock, &sx}, {Point::kWakeup, &chan}, {Point::kIo, &chan}};
  EXPECT_EQ(rec.points, want);
}

}  // namespace
}  // namespace faultline::locking
