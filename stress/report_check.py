#!/usr/bin/env python3
"""Checks faultline's machine-readable results with Python's own parsers.

  report_check.py FAULTLINE WORKDIR [INVARIANTS]   (INVARIANTS: 1 or 0, how the build set FL_INVARIANTS)

1. `faultline --json` of a passing run parses with json and holds the
   configuration, verdict, counters, retry table, lock profile, replay line
   and digest;
2. with a mutant switched on, the run's JSON says FAIL with its findings;
3. `faultline sweep --junit --json` with that mutant parses with
   xml.etree.ElementTree: one test case per seed, each failing seed a
   <failure> carrying its first failure line and its replay line;
4. a passing sweep's JUnit has no failure.
Exits 1 with the reason at the first check that does not hold.
"""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

faultline, work = sys.argv[1], sys.argv[2]
invariants = len(sys.argv) < 4 or sys.argv[3] == "1"
os.makedirs(work, exist_ok=True)


def check(cond, what):
    if not cond:
        print(f"report_check: FAILED: {what}")
        sys.exit(1)


def run(args, want_rc):
    p = subprocess.run([faultline] + args, capture_output=True, text=True, timeout=600)
    check(p.returncode == want_rc, f"faultline {' '.join(args)}: exit {p.returncode}, wanted {want_rc}\n"
          f"{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout


# 1. A passing run.
path = os.path.join(work, "pass.json")
run(["--ops", "300", "--seed", "5", "--quiet", "--json", path], 0)
j = json.load(open(path))
for key in ["faultline", "config", "verdict", "pass", "exit_code", "counters", "retries", "lock_profile",
            "replay", "schedule", "operations", "oracle", "quiescent_checks", "failures"]:
    check(key in j, f"--json has no '{key}': {sorted(j)}")
check(j["verdict"] == "PASS" and j["pass"] is True and j["exit_code"] == 0, f"verdict {j['verdict']}")
check(j["faultline"]["invariants"] is invariants, f"invariants {j['faultline']['invariants']}, wanted {invariants}")
check(j["config"]["seed"] == 5 and j["config"]["ops"] == 300, f"config {j['config']}")
check(j["counters"]["v_vm_faults"] > 0, "no faults counted")
check(set(j["retries"]) == {"cow_loan", "busy_page", "no_free_page", "pager_page_gone", "map_trylock_failed",
                            "map_lookup_failed", "map_changed", "dead_object"}, f"retries {j['retries']}")
check(len(j["lock_profile"]) > 0 and {"class", "acquisitions", "contended", "wait_ns_total", "hold_ns_max"}
      <= set(j["lock_profile"][0]), f"lock profile {j['lock_profile'][:1]}")
check(any(r["class"] == "vm object" for r in j["lock_profile"]), "no 'vm object' class in the profile")
check(len(j["schedule"]["digest"]) == 16, f"digest {j['schedule']}")
check(j["replay"].startswith("faultline --scenario mixed ") and "--seed 5 " in j["replay"], j["replay"])
check(j["failures"] == [], f"failures {j['failures']}")
print(f"report_check: --json of a passing run: {len(j)} fields, {j['operations']['total']} operations, "
      f"{j['counters']['v_vm_faults']} faults, digest {j['schedule']['digest']}")

# 2. A failing run (a protocol fault switched on).
mutant = ["--scenario", "fork", "--processes", "2", "--workers", "3", "--ops", "2000", "--check-every", "100",
          "--mutant", "no-write-protect-at-fork"]
path = os.path.join(work, "fail.json")
run(mutant + ["--quiet", "--json", path], 1)
j = json.load(open(path))
check(j["pass"] is False and j["exit_code"] == 1 and j["verdict"].startswith("FAIL"), f"verdict {j['verdict']}")
check(len(j["failures"]) > 0 and j["failures"][0]["oracle"] == "invariants", f"failures {j['failures'][:1]}")
check("--mutant no-write-protect-at-fork" in j["replay"], j["replay"])
print(f"report_check: --json of a mutant run: {j['verdict']}; first finding [{j['failures'][0]['oracle']}]")

# 3. A failing sweep.
xml_path, sj_path = os.path.join(work, "sweep.xml"), os.path.join(work, "sweep.json")
out = run(["sweep", "--seeds", "1..4", "--jobs", "2", "--junit", xml_path, "--json", sj_path] + mutant, 1)
root = ET.parse(xml_path).getroot()
suites = root.findall("testsuite")
check(root.tag == "testsuites" and len(suites) == 1, f"root {root.tag}, {len(suites)} suites")
cases = suites[0].findall("testcase")
check(len(cases) == 4 and [c.get("name") for c in cases] == [f"seed {s}" for s in range(1, 5)],
      f"test cases {[c.get('name') for c in cases]}")
failures = [c.find("failure") for c in cases if c.find("failure") is not None]
check(len(failures) == 4 and suites[0].get("failures") == "4", f"{len(failures)} failures of 4")
for c, f in zip(cases, failures):
    seed = c.get("name").split()[1]
    check(f.get("message").startswith("FAIL [invariants]"), f"failure message {f.get('message')}")
    check(f"replay: faultline --scenario fork --executor fibers --seed {seed} " in f.text, f.text)
    check("--mutant no-write-protect-at-fork" in f.text, f.text)
sj = json.load(open(sj_path))
check(sj["failed"] == 4 and sj["passed"] == 0 and len(sj["seeds"]) == 4, f"sweep json {sj}")
print(f"report_check: --junit of a mutant sweep: {len(cases)} test cases, {len(failures)} failures, e.g. "
      f"'{failures[0].get('message')[:90]}'")

# 4. A passing sweep.
run(["sweep", "--seeds", "1..3", "--jobs", "2", "--ops", "100", "--junit", xml_path], 0)
root = ET.parse(xml_path).getroot()
cases = root.find("testsuite").findall("testcase")
check(len(cases) == 3 and all(c.find("failure") is None for c in cases), "a passing sweep has failures")
print("report_check: --junit of a passing sweep: 3 test cases, 0 failures")
print("report_check: all checks hold")
