#include "stress/run.h"

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/locks.h"
#include "locking/locking.h"
#include "locking/profile_json.h"
#include "stress/trace.h"

namespace faultline::stress {

namespace {

std::atomic<World*> g_interruptible{nullptr};

extern "C" void on_sigint(int) {
  if (World* w = g_interruptible.load()) w->request_stop();
}

// The crash report: built before the run, so the handler only writes it.
std::string g_crash_tail;                    // verdict and replay lines
std::atomic<const Executor*> g_crash_ex{nullptr};
constexpr int kCrashSignals[] = {SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE};

void write_out(const char* s, std::size_t n) {
  while (n > 0) {
    const ssize_t k = ::write(1, s, n);
    if (k <= 0) return;
    s += k;
    n -= static_cast<std::size_t>(k);
  }
}

extern "C" void on_crash(int sig) {
  char head[800];
  const char* panic = last_panic();
  const int n =
      panic[0] != '\0'
          ? std::snprintf(head, sizeof head, "FAIL [crash] panic: %s; the run died of signal %d\n", panic, sig)
          : std::snprintf(head, sizeof head, "FAIL [crash] the run died of signal %d (%s)\n", sig,
                          sig == SIGABRT ? "abort: an assertion, message above" : sigabbrev_np(sig));
  write_out(head, static_cast<std::size_t>(n > 0 ? n : 0));
  // After an assertion the heap is sound: the schedule's last events are
  // worth the risk.  After a memory fault they are not.
  if (const Executor* ex = g_crash_ex.load(); ex != nullptr && sig == SIGABRT) {
    static const char le[] = "last schedule events:\n";
    write_out(le, sizeof le - 1);
    for (const std::string& e : ex->last_events(30)) {
      write_out("  ", 2);
      write_out(e.data(), e.size());
      write_out("\n", 1);
    }
  }
  write_out(g_crash_tail.data(), g_crash_tail.size());
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

std::string format_failures(const std::vector<Failure>& fs) {
  std::string out;
  for (const Failure& f : fs) out += fmt::format("  [{}] {}\n", f.oracle, f.what);
  return out;
}

}  // namespace

std::vector<std::string> unreached(const std::vector<vm::ReachRow>& rows) {
  std::vector<std::string> out;
  for (const vm::ReachRow& r : rows)
    if (r.count == 0 && r.window->forced_by == nullptr) out.push_back(r.window->name);
  return out;
}

std::string format_reach(const std::vector<vm::ReachRow>& rows, const char* first_label,
                         const std::vector<std::string>& firsts) {
  std::size_t reached = 0, workload = 0;
  for (const vm::ReachRow& r : rows) {
    reached += r.count != 0 && r.window->forced_by == nullptr;
    workload += r.window->forced_by == nullptr;
  }
  std::string out = fmt::format("reach: {} of {} windows entered ({} more forced by unit tests only)\n", reached,
                                workload, rows.size() - workload);
  out += fmt::format("  {:<26} {:<40} {:>12} {:>14}\n", "window", "where", "count", first_label);
  for (const vm::ReachRow& r : rows) {
    const char* note = r.window->forced_by != nullptr ? "" : r.count == 0 ? "  NEVER" : "";
    out += fmt::format("  {:<26} {:<40} {:>12} {:>14}{}{}\n", r.window->name, r.window->where, r.count,
                       !firsts.empty() ? firsts[static_cast<std::size_t>(&r - rows.data())]
                       : r.first       ? fmt::format("{}", *r.first)
                                       : "-",
                       note,
                       r.window->forced_by != nullptr ? fmt::format("  (test only: {})", r.window->forced_by) : "");
  }
  return out;
}

nlohmann::ordered_json reach_json(const std::vector<vm::ReachRow>& rows) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const vm::ReachRow& r : rows) {
    nlohmann::ordered_json e = {{"count", r.count}};
    if (r.first) e["first_after_ops"] = *r.first;
    j[r.window->name] = e;
  }
  return j;
}

std::string never_reached_message(const std::vector<std::string>& names) {
  return fmt::format("never reached: {}", fmt::join(names, ", "));
}

namespace {

std::string coverage_table(const vm::Counters& c) {
  std::string out;
  for (std::size_t i = 0; i < static_cast<std::size_t>(vm::Retry::kCount); ++i) {
    const auto r = static_cast<vm::Retry>(i);
    const std::uint64_t n = c.retries_of(r);
    out += fmt::format("  {:>12} {:<20}{}\n", n, vm::retry_name(r), n == 0 ? "  (never taken: a coverage gap)" : "");
  }
  return out;
}

}  // namespace

nlohmann::ordered_json failures_json(const std::vector<Failure>& fs) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const Failure& f : fs) out.push_back({{"oracle", f.oracle}, {"what", f.what}});
  return out;
}

RunResult run_once(const Config& cfg, const RunOptions& opts) {
  RunResult res;
  const bool fibers = cfg.executor != ExecutorKind::kThreads;
  locking::set_backend(fibers ? locking::Backend::kFiber : locking::Backend::kStd);
  locking::witness::reset();
  vm::declare_vm_lock_order();
  locking::reset_profile();
  locking::set_profiling(!cfg.no_lock_profile);

  // Before the executor: its schedule-point hook goes in through the trace.
  std::unique_ptr<ChromeTrace> trace;
  if (!cfg.trace_path.empty()) {
    std::string error;
    trace.reset(ChromeTrace::open(cfg.trace_path, cfg.trace_events, &error));
    if (!trace) {
      res.exit_code = 2;
      res.verdict = error;
      res.summary = error + "\n";
      return res;
    }
  }
  std::unique_ptr<Executor> ex = make_executor(cfg);
  auto world = std::make_unique<World>(cfg, *ex);
  World* w = world.get();
  // Lock-order reversals, misuse and failed ownership assertions fail the run.
  locking::set_mode(cfg.no_lock_checker   ? locking::Mode::kOff
                    : cfg.abort_on_report ? locking::Mode::kAbort
                                          : locking::Mode::kReport);
  locking::ReportHandler previous = locking::set_report_handler([w](const locking::Report& r) {
    w->fail(fmt::format("lock checker: {}", locking::report_kind_name(r.kind)), r.message);
  });
  if (opts.handle_sigint) {
    g_interruptible.store(w);
    std::signal(SIGINT, on_sigint);
  }
  if (opts.handle_crash) {
    g_crash_tail = fmt::format("verdict: FAIL (crashed)\nreplay: {}\n", cfg.replay_line());
    g_crash_ex.store(ex.get());
    std::fflush(stdout);
    for (int sig : kCrashSignals) std::signal(sig, on_crash);
  }

  const auto t0 = std::chrono::steady_clock::now();
  std::atomic<bool> finished{false};
  // Progress, and the liveness watchdog: no operation completed for
  // watchdog_s fails the run with every actor's locks and wait channel.
  std::thread monitor([&] {
    std::uint64_t last_ops = w->ops_done.load();
    auto last_change = std::chrono::steady_clock::now();
    auto last_print = last_change;
    while (!finished.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const auto now = std::chrono::steady_clock::now();
      const std::uint64_t ops = w->ops_done.load();
      if (ops != last_ops) {
        last_ops = ops;
        last_change = now;
      }
      if (opts.progress && now - last_print >= std::chrono::seconds(2)) {
        last_print = now;
        std::fprintf(stderr, "[%5.1fs] %llu ops, %llu faults, %llu forks, %s\n",
                     std::chrono::duration<double>(now - t0).count(), static_cast<unsigned long long>(ops),
                     static_cast<unsigned long long>(w->vm.counters().v_vm_faults.load()),
                     static_cast<unsigned long long>(w->forks.load()), w->failed() ? "FAILING" : "ok");
      }
      if (finished.load()) break;
      if (now - last_change > std::chrono::duration<double>(cfg.watchdog_s)) {
        std::printf("FAIL [liveness watchdog] no operation completed for %.1f s (%llu done)\n", cfg.watchdog_s,
                    static_cast<unsigned long long>(ops));
        std::printf("%s", locking::dump_all_locks(true).c_str());
        std::printf("%s", format_failures(w->failures()).c_str());
        std::printf("replay: %s\n", cfg.replay_line().c_str());
        std::fflush(stdout);
        if (opts.on_fatal)
          opts.on_fatal(fmt::format("FAIL (liveness watchdog: no operation completed for {:.1f} s)", cfg.watchdog_s),
                        w->failures());
        std::_Exit(1);
      }
    }
  });

  if (!w->start()) w->wake_actors();
  const RunEnd end = ex->run();
  finished.store(true);
  monitor.join();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  if (end != RunEnd::kDone) {
    const std::string stall = fmt::format(
        "no operation completed in {} schedule points while workers ran (livelock; --stall-steps)", cfg.stall_steps);
    const char* what = end == RunEnd::kDeadlock ? "every simulated thread is blocked (deadlock)"
                       : end == RunEnd::kStall  ? stall.c_str()
                                                : "the schedule-point budget ran out";
    std::printf("FAIL [liveness] %s after %llu steps; unfinished:", what,
                static_cast<unsigned long long>(ex->steps()));
    for (const std::string& n : ex->unfinished()) std::printf(" %s", n.c_str());
    // Where memory went (a standstill of VM_WAIT sleepers is often memory
    // nobody can free): the counts as the run left them.
    std::printf("\nmemory: %u pages, %u free, %u cached, %u wired\n", w->vm.npages(), w->vm.free_count.load(),
                w->vm.cache_count.load(), w->vm.wired_count.load());
    std::printf("%s", locking::dump_all_locks(true).c_str());
    std::printf("last schedule events:\n");
    for (const std::string& e : ex->last_events(30)) std::printf("  %s\n", e.c_str());
    std::printf("%s", format_failures(w->failures()).c_str());
    std::printf("replay: %s\n", cfg.replay_line().c_str());
    std::fflush(stdout);
    if (opts.on_fatal) opts.on_fatal(fmt::format("FAIL (liveness: {})", what), w->failures());
    std::_Exit(1);
  }

  w->finish();
  if (opts.handle_crash) {
    for (int sig : kCrashSignals) std::signal(sig, SIG_DFL);
    g_crash_ex.store(nullptr);
  }
  g_interruptible.store(nullptr);
  if (opts.handle_sigint) std::signal(SIGINT, SIG_DFL);
  locking::set_report_handler(previous);
  locking::set_mode(locking::Mode::kOff);
  locking::set_profiling(false);

  const vm::Counters& c = w->vm.counters();
  res.failures = w->failures();
  res.digest = ex->digest();
  res.steps = ex->steps();
  res.ops = w->ops_done.load();
  res.quiescent_checks = w->quiescent_checks.load();
  res.quiescent_checks_skipped = w->quiescent_checks_skipped.load();
  for (std::size_t i = 0; i < static_cast<std::size_t>(vm::Retry::kCount); ++i)
    res.retries.push_back(c.retries_of(static_cast<vm::Retry>(i)));
  res.reach = vm::reach_table(c);
  if (cfg.require_reach && !w->setup_error()) {
    const std::vector<std::string> never = unreached(res.reach);
    if (!never.empty()) res.failures.push_back({"reach", never_reached_message(never)});
  }
  res.exit_code = res.failures.empty() ? 0 : w->setup_error() ? 2 : 1;

  std::string s;
  s += fmt::format("faultline: scenario {}, executor {}{}, seed {}\n", cfg.scenario, executor_name(cfg.executor),
                   cfg.executor == ExecutorKind::kFibers ? fmt::format(" ({})", sched_name(cfg.sched)) : "",
                   cfg.seed);
  s += fmt::format("  invariants {} (FL_KASSERT and lock assertions{})\n",
                   invariants_compiled_in() ? "compiled in" : "COMPILED OUT",
                   invariants_compiled_in() ? "" : ": built with FL_INVARIANTS=OFF, for benchmarking only");
  if (cfg.mutant != vm::Mutant::kNone)
    s += fmt::format("  MUTANT {} injected: the protocol is broken on purpose, this run should fail\n",
                     vm::mutant_name(cfg.mutant));
  if (cfg.fixes != vm::kAllFixes)
    s += fmt::format("  fixes OFF: {} (7.x as written there: its race may fail the run)\n",
                     fmt::join(cfg.fixes_off(), ", "));
  if (!cfg.only_workers.empty())
    s += fmt::format("  only {} of the {} threads started: {}\n", cfg.started_workers(), cfg.processes * cfg.workers,
                     cfg.only_workers);
  s += fmt::format("  {} processes x {} threads (+{} children from {} forks, {} skipped at the live limit or the fork budget, peak {} live);"
                   " {} pages, pageout daemon {}, truncator {}\n",
                   cfg.processes, cfg.workers, w->forks.load() * static_cast<std::uint64_t>(cfg.child_workers),
                   w->forks.load(), w->forks_skipped.load(), w->peak_live_processes.load(), cfg.pages,
                   cfg.pagedaemon ? "on" : "off", cfg.truncator ? "on" : "off");
  s += fmt::format("  {} operations in {:.2f} s: {:.0f} ops/s; {} faults: {:.0f} faults/s\n", res.ops, res.seconds,
                   static_cast<double>(res.ops) / res.seconds, c.v_vm_faults.load(),
                   static_cast<double>(c.v_vm_faults.load()) / res.seconds);
  if (cfg.executor == ExecutorKind::kFibers)
    s += fmt::format("  schedule: {} points ({:.2f} M/s), digest {:016x}\n", res.steps,
                     static_cast<double>(res.steps) / res.seconds / 1e6, res.digest);
  s += "operations:\n ";
  for (std::size_t i = 0; i < kOps; ++i)
    if (cfg.mix[i] != 0) s += fmt::format(" {} {}", op_name(static_cast<Op>(i)), w->op_counts[i].load());
  s += "\noracle:\n";
  s += fmt::format("  {} reads checked, {} writes committed, {} file reads checked, {} file writes, {} truncations;"
                   " legitimate: {} SIGSEGV on mprotected scratch, {} SIGSEGV racing mlock of a COW entry,"
                   " {} SIGSEGV on a lent page of an mlocked COW entry,"
                   " {} SIGSEGV on an mlocked page a loan's copy unmapped,"
                   " {} SIGBUS from pager read errors, {} SIGBUS past the end of the short file, {} SIGBUS racing a"
                   " truncation, {} churn accesses unmapped\n",
                   w->reads_checked.load(), w->writes_committed.load(), w->file_reads_checked.load(),
                   w->file_writes.load(), w->truncations.load(), w->segv_on_scratch.load(), w->segv_racing_mlock.load(),
                   w->segv_lent_wired.load(), w->segv_cowfault_unmapped.load(), w->sigbus_pager_error.load(),
                   w->sigbus_past_eof.load(), w->sigbus_in_truncation.load(), w->unmapped_churn.load());
  s += fmt::format("  file: {} words of new generations stored by the truncator, {} stores racing a truncation"
                   " step (the word may keep their value), {} words read back by the final check\n",
                   w->file_fill_words.load(), w->file_writes_racing.load(), w->file_final_words.load());
  if (cfg.mix[static_cast<std::size_t>(Op::kFilePrivate)] != 0)
    s += fmt::format("  private file mapping: {} reads of pages never copied checked against the file, {} of copied"
                     " pages, {} stores, {} SIGBUS past the end of the short file\n",
                     w->fpriv_reads_exact.load(), w->fpriv_reads_loose.load(), w->fpriv_writes.load(),
                     w->fpriv_sigbus.load());
  if (cfg.mix[static_cast<std::size_t>(Op::kWirePrivate)] != 0)
    s += fmt::format("  {} mlocks of runs of the private file mapping (each page copied), {} failed past the end of"
                     " the short file; {} stores to it and reads of it refused while an mlock of the page was in"
                     " progress (a user-wired copy-on-write entry refuses write faults; a read's retried fault is"
                     " one, seed L309-310)\n",
                     w->mlocks_of_private.load(), w->mlock_private_past_eof.load(), w->fpriv_refused_wired.load());
  if (cfg.mix[static_cast<std::size_t>(Op::kProtectPrivate)] != 0)
    s += fmt::format("  {} mprotects of runs of the private file mapping read-only and back ({} back refused: the"
                     " maximum protection lost, seed L249-271); {} stores to it refused meanwhile; {} mlocks of it"
                     " refused by a retried fault of an entry made read-only meanwhile (L309-310)\n",
                     w->mprotects_of_private.load(), w->mprotect_private_refused.load(), w->fpriv_refused_ro.load(),
                     w->mlock_private_refused.load());
  if (cfg.mix[static_cast<std::size_t>(Op::kUnmapPrivate)] != 0)
    s += fmt::format("  {} munmaps of runs of the private file mapping (its copies dropped, the file mapped privately"
                     " there again), {} skipped (another in progress); {} accesses and mlocks of it that met one;"
                     " {} reads of pages whose copy one dropped, checked against the file\n",
                     w->munmaps_of_private.load(), w->unmap_private_skipped.load(), w->fpriv_unmapped.load(),
                     w->fpriv_reads_reset.load());
  if (cfg.mix[static_cast<std::size_t>(Op::kWireFile)] != 0)
    s += fmt::format("  {} mlocks of runs of the file mapping, {} failed past the end of the short file; {} accesses"
                     " past it met a page a truncation left wired (7.0 zero-fills it: no SIGBUS)\n",
                     w->mlocks_of_file.load(), w->mlock_file_past_eof.load(), w->past_eof_left_wired.load());
  if (cfg.mix[static_cast<std::size_t>(Op::kProtectFile)] != 0)
    s += fmt::format("  {} stores to the shared file mapping refused while an mprotect had it read-only; {} mprotects"
                     " of it back to read/write refused (an mlock's retried fault took write out of the maximum"
                     " protection, seed L249-271, L309-310)\n",
                     w->segv_on_file.load(), w->mprotect_file_refused.load());
  if (cfg.mix[static_cast<std::size_t>(Op::kProtectFile)] != 0 && cfg.mix[static_cast<std::size_t>(Op::kWireFile)] != 0)
    s += fmt::format("  {} reads of the file mapping and {} mlocks of it refused by a retried fault of a wired entry"
                     " made read-only meanwhile (seed L309-310: fault_type stays the entry's first protection)\n",
                     w->file_reads_refused_wired.load(), w->mlock_file_refused.load());
  if (cfg.mix[static_cast<std::size_t>(Op::kUnmapFile)] != 0)
    s += fmt::format("  {} accesses to the file mapping (and mlocks of it) found a run munmap-file unmapped; {}"
                     " munmap-files skipped, another in progress\n",
                     w->file_access_unmapped.load(), w->unmap_file_skipped.load());
  if (cfg.mix[static_cast<std::size_t>(Op::kSendFile)] != 0)
    s += fmt::format("  {} file pages lent to sends and checked intact, {} not compared (a truncation step during"
                     " the loan may change a lent file page)\n",
                     w->file_loans.load(), w->file_loans_truncated.load());
  if (cfg.mix[static_cast<std::size_t>(Op::kWireNone)] != 0)
    s += fmt::format("  {} mlocks of a PROT_NONE page refused by their retried fault (7.x: the override lookup meets"
                     " the maximum protection its first pass reduced)\n",
                     w->mlock_none_refused.load());
  s += fmt::format("  {} pages lent to sends and checked intact ({} sends found no idle resident page);"
                   " {} device reads checked, the driver moved its memory {} times\n",
                   w->loans.load(), w->loans_skipped.load(),
                   w->device_reads_checked.load(),
                   w->device_moves.load());
  if (cfg.check_every != 0)
    s += fmt::format("  {} quiescent checks during the run, one every {} operations ({} not made: one in progress or"
                     " the run stopping), each of one live process's data ({} slot reads in all) and of every"
                     " invariant; one more of the invariants at the end\n",
                     w->quiescent_checks.load(), cfg.check_every, w->quiescent_checks_skipped.load(),
                     w->quiescent_reads.load());
  else
    s += "  invariants checked at the end only (--check-every 0)\n";
  s += "vmstat -s:\n" + c.format_vmstat();
  s += "fault retry paths taken (seed's RetryFault):\n" + coverage_table(c);
  s += format_reach(res.reach, "first (ops)");
  s += "lock profile, top contenders:\n" + locking::format_profile(locking::profile_by_class(), 8);
  if (trace) {
    std::string error;
    if (trace->write(&error)) {
      s += fmt::format("trace: {} slices written to {}", trace->events(), cfg.trace_path);
      if (trace->dropped() != 0) s += fmt::format(" ({} more not recorded: --trace-events bound)", trace->dropped());
      s += "\n";
    } else {
      s += "trace: " + error + "\n";
    }
  }
  nlohmann::ordered_json& j = res.report;
  j["seconds"] = res.seconds;
  nlohmann::ordered_json per_op = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < kOps; ++i)
    if (cfg.mix[i] != 0) per_op[op_name(static_cast<Op>(i))] = w->op_counts[i].load();
  j["operations"] = {{"total", res.ops}, {"per_second", static_cast<double>(res.ops) / res.seconds},
                     {"by_kind", per_op}};
  j["faults"] = {{"total", c.v_vm_faults.load()},
                 {"per_second", static_cast<double>(c.v_vm_faults.load()) / res.seconds}};
  if (cfg.executor == ExecutorKind::kFibers)
    j["schedule"] = {{"points", res.steps}, {"digest", fmt::format("{:016x}", res.digest)}};
  j["processes"] = {{"initial", cfg.processes},
                    {"threads_each", cfg.workers},
                    {"forks", w->forks.load()},
                    {"forks_skipped", w->forks_skipped.load()},
                    {"peak_live", w->peak_live_processes.load()}};
  j["oracle"] = {{"reads_checked", w->reads_checked.load()},
                 {"writes_committed", w->writes_committed.load()},
                 {"file_reads_checked", w->file_reads_checked.load()},
                 {"file_writes", w->file_writes.load()},
                 {"file_writes_racing", w->file_writes_racing.load()},
                 {"file_fill_words", w->file_fill_words.load()},
                 {"file_final_words", w->file_final_words.load()},
                 {"fpriv_reads_exact", w->fpriv_reads_exact.load()},
                 {"fpriv_reads_loose", w->fpriv_reads_loose.load()},
                 {"fpriv_writes", w->fpriv_writes.load()},
                 {"fpriv_sigbus", w->fpriv_sigbus.load()},
                 {"mlocks_of_private", w->mlocks_of_private.load()},
                 {"mlock_private_past_eof", w->mlock_private_past_eof.load()},
                 {"fpriv_refused_wired", w->fpriv_refused_wired.load()},
                 {"mprotects_of_private", w->mprotects_of_private.load()},
                 {"mprotect_private_refused", w->mprotect_private_refused.load()},
                 {"fpriv_refused_ro", w->fpriv_refused_ro.load()},
                 {"mlock_private_refused", w->mlock_private_refused.load()},
                 {"munmaps_of_private", w->munmaps_of_private.load()},
                 {"unmap_private_skipped", w->unmap_private_skipped.load()},
                 {"fpriv_unmapped", w->fpriv_unmapped.load()},
                 {"fpriv_reads_reset", w->fpriv_reads_reset.load()},
                 {"truncations", w->truncations.load()},
                 {"segv_on_scratch", w->segv_on_scratch.load()},
                 {"segv_on_file", w->segv_on_file.load()},
                 {"mprotect_file_refused", w->mprotect_file_refused.load()},
                 {"file_reads_refused_wired", w->file_reads_refused_wired.load()},
                 {"mlock_file_refused", w->mlock_file_refused.load()},
                 {"file_access_unmapped", w->file_access_unmapped.load()},
                 {"unmap_file_skipped", w->unmap_file_skipped.load()},
                 {"segv_racing_mlock", w->segv_racing_mlock.load()},
                 {"segv_lent_wired", w->segv_lent_wired.load()},
                 {"segv_cowfault_unmapped", w->segv_cowfault_unmapped.load()},
                 {"sigbus_pager_error", w->sigbus_pager_error.load()},
                 {"sigbus_past_eof", w->sigbus_past_eof.load()},
                 {"mlock_none_refused", w->mlock_none_refused.load()},
                 {"mlocks_of_file", w->mlocks_of_file.load()},
                 {"mlock_file_past_eof", w->mlock_file_past_eof.load()},
                 {"past_eof_left_wired", w->past_eof_left_wired.load()},
                 {"sigbus_in_truncation", w->sigbus_in_truncation.load()},
                 {"unmapped_churn", w->unmapped_churn.load()},
                 {"loans_checked", w->loans.load()},
                 {"loans_skipped", w->loans_skipped.load()},
                 {"file_loans_checked", w->file_loans.load()},
                 {"file_loans_truncated", w->file_loans_truncated.load()},

                 {"device_reads_checked", w->device_reads_checked.load()},
                 {"device_moves", w->device_moves.load()}};
  j["quiescent_checks"] = {{"every", cfg.check_every},
                           {"made", res.quiescent_checks},
                           {"skipped", res.quiescent_checks_skipped},
                           {"slot_reads", w->quiescent_reads.load()}};
  nlohmann::ordered_json counters = nlohmann::ordered_json::object();
  for (const vm::Counters::VmstatRow& r : c.vmstat()) counters[r.name] = r.value;
  j["counters"] = counters;
  nlohmann::ordered_json retries = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < res.retries.size(); ++i) retries[vm::retry_name(static_cast<vm::Retry>(i))] = res.retries[i];
  j["retries"] = retries;
  j["reach"] = reach_json(res.reach);
  j["lock_profile"] = locking::profile_json(locking::profile_by_class());
  j["failures"] = failures_json(res.failures);
  res.summary = std::move(s);
  res.verdict = res.exit_code == 0 ? "PASS"
                                   : fmt::format("FAIL ({} finding{}, first by the {} oracle)", res.failures.size(),
                                                 res.failures.size() == 1 ? "" : "s", res.failures.front().oracle);
  return res;
}

}  // namespace faultline::stress
