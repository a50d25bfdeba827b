#!/usr/bin/env python3
"""Overhead factors of the model's instruments on the mixed workload (issue 16).

One workload (the mixed scenario, deterministic fibers, same seed and
configuration), run by several binaries and flags, alternating round by round
so the machine's noise falls on all of them alike:

  as shipped          release build: lock-order checker on (report mode),
                      lock profiling on, KASSERTs compiled in (FL_INVARIANTS)
  checker off         --no-lock-checker
  profiling off       --no-lock-profile
  both off            --no-lock-checker --no-lock-profile
  invariants out      a release build with FL_INVARIANTS=OFF (checker and
                      profiling on, as shipped)
  tsan                the tsan preset's build (as shipped otherwise)
  counters out        a release build with FL_COUNTERS=OFF (bench/counters_cost.sh)

Time is the run's CPU time (user + system, from wait4): the deterministic
fibers run on one OS thread, and CPU time is less moved than wall time by
other load on a shared machine.  Each factor is the median time of a variant
over the median time as shipped (2.0: twice as slow; 0.8: the variant saves
20%).  Every variant must run the same schedule (one digest): the
instruments add no schedule point.  The tsan build runs --tsan-runs times
(default 1: its factor is large beside the noise).

  bench/overhead.py --release build/release/stress/faultline \\
      --noinv build/bench-noinv/stress/faultline [--tsan build/tsan/stress/faultline] \\
      [--nocounters build/nocounters/stress/faultline] [--variants 'as shipped,counters out']
      [--runs 5] [--tsan-runs 1] [--ops 5000] [--json out.json]
Exit 2 on bad arguments, 1 if a run fails or the digests differ.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--release", required=True, help="the release build's faultline")
    ap.add_argument("--noinv", help="a faultline built with FL_INVARIANTS=OFF")
    ap.add_argument("--tsan", help="the tsan preset's faultline")
    ap.add_argument("--nocounters", help="a faultline built with FL_COUNTERS=OFF")
    ap.add_argument("--variants", help="run only these variants (comma-separated names, 'as shipped' among them)")
    ap.add_argument("--runs", type=int, default=5, help="runs of each variant (default 5)")
    ap.add_argument("--tsan-runs", type=int, default=1, help="runs of the tsan build (default 1)")
    ap.add_argument("--ops", type=int, default=5000, help="--ops of the mixed run (default 5000)")
    ap.add_argument("--seed", default="1")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    for name, v in (("--runs", a.runs), ("--tsan-runs", a.tsan_runs)):
        if v < 1 or v > 99:
            print(f"overhead.py: {name} {v}: not in [1, 99]", file=sys.stderr)
            return 2
    if a.ops < 1:
        print(f"overhead.py: --ops {a.ops}: not a positive count", file=sys.stderr)
        return 2
    for name in ("release", "noinv", "tsan", "nocounters"):
        path = getattr(a, name)
        if path is not None and not os.access(path, os.X_OK):
            print(f"overhead.py: --{name} {path}: not an executable", file=sys.stderr)
            return 2

    variants = [
        ("as shipped", a.release, []),
        ("checker off", a.release, ["--no-lock-checker"]),
        ("profiling off", a.release, ["--no-lock-profile"]),
        ("both off", a.release, ["--no-lock-checker", "--no-lock-profile"]),
    ]
    if a.noinv:
        variants.append(("invariants out", a.noinv, []))
    if a.tsan:
        variants.append(("tsan", a.tsan, []))
    if a.nocounters:
        variants.append(("counters out", a.nocounters, []))
    if a.variants is not None:
        wanted = [v.strip() for v in a.variants.split(",")]
        known = {v[0] for v in variants}
        bad = [w for w in wanted if w not in known]
        if bad or "as shipped" not in wanted:
            print(f"overhead.py: --variants {a.variants!r}: {', '.join(bad) or 'as shipped missing'}"
                  f" (available: {', '.join(sorted(known))})", file=sys.stderr)
            return 2
        variants = [v for v in variants if v[0] in wanted]

    times = {v[0]: [] for v in variants}
    digests = {v[0]: set() for v in variants}
    rc = 0
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "r.json")
        for i in range(a.runs):
            for name, exe, flags in variants:
                if name == "tsan" and i >= a.tsan_runs:
                    continue
                cmd = [exe, "--scenario", "mixed", "--ops", str(a.ops), "--seed", a.seed, "--quiet", "--json", out] + flags
                p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                _, status, ru = os.wait4(p.pid, 0)
                p.returncode = os.waitstatus_to_exitcode(status)
                if p.returncode != 0:
                    print(f"overhead.py: {' '.join(cmd)}: exit {p.returncode}", file=sys.stderr)
                    return 1
                j = json.load(open(out))
                secs = ru.ru_utime + ru.ru_stime
                times[name].append(secs)
                digests[name].add(j["schedule"]["digest"])
                print(f"round {i + 1} {name:>15}: {secs:8.3f} s  digest {j['schedule']['digest']}", flush=True)
    base = statistics.median(times["as shipped"])
    rows = []
    print(f"\n{'variant':>15}  {'median CPU s':>12}  {'factor':>7}")
    for name, _, _ in variants:
        med = statistics.median(times[name])
        rows.append({"variant": name, "median_s": med, "factor": med / base, "runs": times[name]})
        print(f"{name:>15}  {med:12.3f}  {med / base:7.3f}")
    all_digests = set().union(*digests.values())
    same = len(all_digests) == 1
    print("schedules: " + ("one digest in every run" if same else f"DIFFER: {digests}"))
    if not same:
        rc = 1
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"ops": a.ops, "seed": a.seed, "runs": a.runs, "rows": rows,
                       "digest": sorted(all_digests)}, f, indent=1)
    return rc


if __name__ == "__main__":
    sys.exit(main())
