#!/usr/bin/env python3
"""Plots and a summary table from one ci/bench.sh run (issue 16).

  bench/plot.py RESULTS_DIR

reads the Google Benchmark JSON files ci/bench.sh wrote there (scale.json,
host.json, fault.json, ops.json, sched.json, fibermem-*.json), the lock
profiles (scale_profile.jsonl) and the overhead factors (overhead.json), and
writes there:

  scale_model.png      model: touches per second per worker against workers,
                       one panel per sharing, a line per shape, read and write
  model_vs_host.png    model and host kernel per worker in the three
                       will-it-scale shapes (disjoint, write), and their ratio
  lock_wait.png        where the model's waiting goes at the highest worker
                       count: wait time per lock class, per shape and sharing
  chain_depth.png      fault cost against shadow-chain depth, with the fitted
                       slope; and against object size
  ops_per_page.png     fork, truncation and pageout scan cost per page
  fibers.png           schedule points per second and bytes per fiber
  overhead.png         overhead factors on the mixed workload
  summary.md           the figures behind each plot, as tables

Exit 2 if the folder or a file it needs is missing or unreadable.
"""
import json
import os
import platform
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SHAPES = ["anon", "private-file", "shared-file"]
SHARINGS = ["disjoint", "shared", "hot-page"]


def die(msg):
    print(f"plot.py: {msg}", file=sys.stderr)
    sys.exit(2)


def load(d, name, required=True):
    p = os.path.join(d, name)
    if not os.path.exists(p):
        if required:
            die(f"{p}: missing")
        return None
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        die(f"{p}: {e}")


def args_of(name):
    """'BM_X/shape:0/sharing:1/workers:4/...' -> {'shape': 0, ...}; bare numbers as 'arg0'..."""
    out = {}
    parts = name.split("/")[1:]
    k = 0
    for p in parts:
        m = re.fullmatch(r"([a-z_]+):(\d+)", p)
        if m and m.group(1) not in ("iterations", "repeats", "threads"):
            out[m.group(1)] = int(m.group(2))
        elif re.fullmatch(r"\d+", p):
            out[f"arg{k}"] = int(p)
            k += 1
    return out


def run_name(b):
    """The benchmark's name without an aggregate's suffix ('BM_X/4_median' -> 'BM_X/4')."""
    return b.get("run_name") or b["name"]


def runs(doc, prefix):
    """Benchmarks named prefix..., iterations only (aggregates: the median if there are repetitions)."""
    rows = [b for b in doc["benchmarks"] if b["name"].startswith(prefix) and not b.get("error_occurred")]
    med = [b for b in rows if b.get("aggregate_name") == "median"]
    if med:
        return med
    return [b for b in rows if b.get("run_type", "iteration") == "iteration"]


def ns(b):
    unit = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
    return b["real_time"] * unit


def scale_table(doc, prefix, what="per_worker"):
    """{(shape, sharing, write): {workers: per_worker}}; what="faults": faults per second per worker."""
    t = {}
    for b in runs(doc, prefix):
        a = args_of(run_name(b))
        key = (SHAPES[a["shape"]], SHARINGS[a["sharing"]], a["write"])
        v = b["per_worker"] * (b["faults_per_touch"] if what == "faults" else 1.0)
        t.setdefault(key, {})[a["workers"]] = v
    return t


def main():
    if len(sys.argv) != 2:
        die("usage: plot.py RESULTS_DIR")
    d = sys.argv[1]
    if not os.path.isdir(d):
        die(f"{d}: not a folder")
    md = []
    ctx = load(d, "scale.json")["context"]
    md.append(f"Machine: {ctx.get('num_cpus')} CPUs at {ctx.get('mhz_per_cpu')} MHz, {platform.uname().release}; "
              f"run {ctx.get('date')}.\n")

    # ---- model scaling ----
    model = scale_table(load(d, "scale.json"), "BM_ModelFaults")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), sharey=True)
    for ax, sharing in zip(axes, SHARINGS):
        for shape in SHAPES:
            for write, style in ((1, "-"), (0, "--")):
                pts = model.get((shape, sharing, write))
                if not pts:
                    continue
                ws = sorted(pts)
                ax.plot(ws, [pts[w] for w in ws], style, marker="o", ms=3,
                        label=f"{shape} {'write' if write else 'read'}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"model, {sharing}")
        ax.set_xlabel("workers (OS threads; 2 cores)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("pages touched per second per worker")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(d, "scale_model.png"), dpi=110)
    plt.close(fig)

    # ---- lock profile at the top worker count ----
    prof = {}
    p = os.path.join(d, "scale_profile.jsonl")
    if os.path.exists(p):
        for line in open(p):
            r = json.loads(line)
            key = r["name"]
            if key not in prof or r["workers"] > prof[key]["workers"]:
                prof[key] = r
    md.append("## Scaling of the model (pages touched per second per worker)\n")
    md.append("Write faults; the lock class with the most waiting at the highest worker count, and its top site.\n")
    md.append("| shape | sharing | 1 worker | 2 | top workers | per worker there | most waited-on class | wait / run | its top site |")
    md.append("|---|---|---|---|---|---|---|---|---|")
    for shape in SHAPES:
        for sharing in SHARINGS:
            pts = model.get((shape, sharing, 1))
            if not pts:
                continue
            top = max(pts)
            r = prof.get(f"{shape}/{sharing}/write")
            cls, wait, site = "-", "-", "-"
            if r and r["classes"] and r["classes"][0]["wait_ns_total"] > 0:
                c = r["classes"][0]
                cls = c["class"]
                wait = f"{c['wait_ns_total'] / 1e9 / r['seconds']:.1f} s/s"
                s = [x for x in r["sites"] if x["class"] == cls]
                site = s[0]["site"] if s else "?"
            md.append(f"| {shape} | {sharing} | {pts.get(1, 0):,.0f} | {pts.get(2, 0):,.0f} | {top} | "
                      f"{pts[top]:,.0f} | {cls} | {wait} | `{site}` |")
    md.append("\n'wait / run': seconds spent waiting for that class, summed over the workers, per second of the "
              "profiled run (above 1: more than one worker waiting at a time on average).\n")
    if prof:
        names = [f"{s}/{h}/write" for s in SHAPES for h in SHARINGS if f"{s}/{h}/write" in prof]
        classes = sorted({c["class"] for n in names for c in prof[n]["classes"]})
        fig, ax = plt.subplots(figsize=(12, 4.5))
        bottom = [0.0] * len(names)
        for cls in classes:
            vals = []
            for n in names:
                r = prof[n]
                v = sum(c["wait_ns_total"] for c in r["classes"] if c["class"] == cls) / 1e9 / r["seconds"]
                vals.append(v)
            if max(vals) <= 0:
                continue
            ax.bar(range(len(names)), vals, bottom=bottom, label=cls)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([n.replace("/write", "") for n in names], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("seconds waiting per second (all workers)")
        tw = max(r["workers"] for r in prof.values())
        ax.set_title(f"model, write faults at {tw} workers: where the waiting goes, by lock class")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(d, "lock_wait.png"), dpi=110)
        plt.close(fig)

    # ---- model against host ----
    host = scale_table(load(d, "host.json"), "BM_HostFaults")
    model_f = scale_table(load(d, "scale.json"), "BM_ModelFaults", "faults")
    host_f = scale_table(load(d, "host.json"), "BM_HostFaults", "faults")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    md.append("## Model against the host kernel (will-it-scale shapes, disjoint, write)\n")
    md.append("Faults per second per worker (the kernel's minor faults for the host), and pages touched per second "
              "per worker; ratio = model / host.\n")
    md.append("| shape | workers | model faults/s | host faults/s | ratio | model touches/s | host touches/s | ratio |")
    md.append("|---|---|---|---|---|---|---|---|")
    for shape, color in zip(SHAPES, ("C0", "C1", "C2")):
        m = model.get((shape, "disjoint", 1), {})
        h = host.get((shape, "disjoint", 1), {})
        ws = sorted(set(m) & set(h))
        if not ws:
            continue
        ax1.plot(ws, [m[w] for w in ws], "-", marker="o", ms=3, color=color, label=f"model {shape}")
        ax1.plot(ws, [h[w] for w in ws], ":", marker="s", ms=3, color=color, label=f"host {shape}")
        ax2.plot(ws, [m[w] / h[w] for w in ws], "-", marker="o", ms=3, color=color, label=shape)
        mf = model_f.get((shape, "disjoint", 1), {})
        hf = host_f.get((shape, "disjoint", 1), {})
        for w in ws:
            md.append(f"| {shape} | {w} | {mf[w]:,.0f} | {hf[w]:,.0f} | {mf[w] / hf[w]:.2f} | "
                      f"{m[w]:,.0f} | {h[w]:,.0f} | {m[w] / h[w]:.2f} |")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("workers")
        ax.grid(True, which="both", alpha=0.3)
    ax1.set_yscale("log")
    ax1.set_ylabel("pages touched per second per worker")
    ax1.set_title("model (threads, own address spaces) and host (processes)")
    ax1.legend(fontsize=7)
    ax2.set_ylabel("model / host")
    ax2.set_title("ratio")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(d, "model_vs_host.png"), dpi=110)
    plt.close(fig)
    md.append("")

    # ---- chain depth and object size ----
    fault = load(d, "fault.json")
    chain = sorted((args_of(run_name(b))["arg0"], ns(b)) for b in runs(fault, "BM_ChainDepthFault"))
    size = sorted((args_of(run_name(b))["arg0"], ns(b)) for b in runs(fault, "BM_ObjectSizeFault"))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    if chain:
        xs = [c[0] for c in chain]
        ys = [c[1] for c in chain]
        n = len(xs)
        mx, my = sum(xs) / n, sum(ys) / n
        slope = sum((x - mx) * (y - my) for x, y in chain) / sum((x - mx) ** 2 for x in xs)
        icpt = my - slope * mx
        ax1.plot(xs, ys, "o-", label="measured")
        ax1.plot(xs, [icpt + slope * x for x in xs], "--", label=f"fit: {icpt:.0f} ns + {slope:.1f} ns x depth")
        ax1.set_xlabel("shadow-chain depth (objects)")
        ax1.set_ylabel("ns per read fault (+ one pmap_remove)")
        ax1.set_title("fault cost against chain depth")
        ax1.legend(fontsize=8)
        ax1.grid(True, alpha=0.3)
        md.append("## Fault cost against shadow-chain depth\n")
        md.append(f"Least-squares fit over depths {xs[0]}..{xs[-1]}: **{icpt:.0f} ns + {slope:.1f} ns per level**.\n")
        md.append("| depth | ns |")
        md.append("|---|---|")
        md.extend(f"| {x} | {y:.0f} |" for x, y in chain)
        md.append("")
    if size:
        ax2.plot([s[0] for s in size], [s[1] for s in size], "o-")
        ax2.set_xscale("log", base=2)
        ax2.set_xlabel("resident pages in the object")
        ax2.set_ylabel("ns per read fault (+ one pmap_remove)")
        ax2.set_title("fault cost against object size")
        ax2.grid(True, alpha=0.3)
        md.append("| object pages | ns per fault |")
        md.append("|---|---|")
        md.extend(f"| {x} | {y:.0f} |" for x, y in size)
        md.append("")
    fig.tight_layout()
    fig.savefig(os.path.join(d, "chain_depth.png"), dpi=110)
    plt.close(fig)

    # ---- fork, truncate, pageout ----
    ops = load(d, "ops.json")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    md.append("## Operations, cost per page\n")
    md.append("| operation | pages | ns per page |")
    md.append("|---|---|---|")
    for prefix, label in (("BM_Fork/", "fork + child exit"), ("BM_Truncate/", "truncate to 0 (pages mapped)"),
                          ("BM_PageoutScan/pages:", "pageout scan")):
        groups = {}
        for b in runs(ops, prefix):
            a = args_of(run_name(b))
            pages = a.get("pages", a.get("arg0"))
            lab = label + ("" if "dirty" not in a else (", dirty anon (launder)" if a["dirty"] else ", clean file (cache)"))
            groups.setdefault(lab, []).append((pages, 1e9 / b["items_per_second"]))
        for lab, pts in groups.items():
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=lab)
            md.extend(f"| {lab} | {p} | {v:.1f} |" for p, v in pts)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("pages")
    ax.set_ylabel("ns per page")
    ax.set_title("fork, truncation and pageout scan: cost per page")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(d, "ops_per_page.png"), dpi=110)
    plt.close(fig)
    md.append("")

    # ---- fibers ----
    sched = load(d, "sched.json")
    pts = {}
    for b in runs(sched, "BM_SchedPoints"):
        a = args_of(run_name(b))
        pts.setdefault("pct" if a["pct"] else "random", []).append((a["fibers"], b["items_per_second"]))
    mem = []
    for f in sorted(os.listdir(d)):
        if f.startswith("fibermem-") and f.endswith(".json"):
            for b in runs(load(d, f), "BM_FiberMemory"):
                mem.append((args_of(run_name(b))["arg0"], b["bytes_per_fiber"]))
    mem.sort()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    md.append("## Deterministic scheduler: fibers\n")
    setup = {args_of(run_name(b))["arg0"]: ns(b) for b in runs(sched, "BM_SchedSetup")}
    md.append("Each run passes 2^20 schedule points shared among its fibers and includes creating them; the last "
              "column takes out that creation (BM_SchedSetup: a run of as many fibers that return at once).\n")
    md.append("| fibers | points/s random | points/s pct | bytes per fiber | points/s random, creation taken out |")
    md.append("|---|---|---|---|---|")
    for pol, p in pts.items():
        p.sort()
        ax1.plot([x[0] for x in p], [x[1] for x in p], "o-", label=pol)
    memd = dict(mem)
    rnd = dict(pts.get("random", []))
    pct = dict(pts.get("pct", []))
    for n in sorted(set(rnd) | set(memd)):
        mem_s = f"{memd[n]:,.0f}" if n in memd else "-"
        excl = "-"
        if n in rnd and n in setup:
            per_run_ns = (1 << 20) / rnd[n] * 1e9
            if per_run_ns > setup[n]:
                excl = f"{(1 << 20) / ((per_run_ns - setup[n]) / 1e9):,.0f}"
        md.append(f"| {n:,} | {rnd.get(n, float('nan')):,.0f} | {pct.get(n, float('nan')):,.0f} | {mem_s} | {excl} |")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("fibers")
    ax1.set_ylabel("schedule points per second")
    ax1.set_title("schedule points per second (2^20 per run)")
    ax1.legend()
    ax1.grid(True, which="both", alpha=0.3)
    if mem:
        ax2.bar([str(m[0]) for m in mem], [m[1] / 1024 for m in mem])
        ax2.set_xlabel("fibers")
        ax2.set_ylabel("KiB resident per fiber")
        ax2.set_title("memory per live fiber (64 KiB stack reserved)")
    fig.tight_layout()
    fig.savefig(os.path.join(d, "fibers.png"), dpi=110)
    plt.close(fig)
    md.append("")

    # ---- overhead ----
    ov = load(d, "overhead.json")
    fig, ax = plt.subplots(figsize=(7, 4))
    names = [r["variant"] for r in ov["rows"]]
    bars = ax.bar(names, [r["factor"] for r in ov["rows"]])
    for bar, r in zip(bars, ov["rows"]):
        ax.annotate(f"{r['factor']:.2f}", (bar.get_x() + bar.get_width() / 2, r["factor"]), ha="center",
                    va="bottom", fontsize=8)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_yscale("log")
    ax.set_ylabel("CPU time / CPU time as shipped (log)")
    ax.set_title(f"mixed scenario, --ops {ov['ops']} --seed {ov['seed']}: overhead factors")
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    fig.savefig(os.path.join(d, "overhead.png"), dpi=110)
    plt.close(fig)
    md.append(f"## Overhead factors (mixed scenario, --ops {ov['ops']}, medians of {ov['runs']} runs)\n")
    md.append("| variant | median CPU s | factor |")
    md.append("|---|---|---|")
    md.extend(f"| {r['variant']} | {r['median_s']:.3f} | {r['factor']:.3f} |" for r in ov["rows"])
    md.append("")

    with open(os.path.join(d, "summary.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print(f"plot.py: wrote 7 plots and summary.md in {d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
