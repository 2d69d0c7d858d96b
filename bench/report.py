#!/usr/bin/env python3
"""Turns bench/run.sh's raw samples into DATE.md, DATE.json and DATE.svg.

Usage: report.py --samples S.tsv --states S.tsv --meta M.json --out PREFIX [--docs docs/benchmarks.md]
       report.py --rerender bench/results/DATE.json --out PREFIX [--docs ...]   (after changing this file)

Every figure is reported as median, minimum and maximum over all its samples (all runs);
ratios are hutch's median over the peer's median. With --docs, the part of that file between
the `<!-- results:begin -->` and `<!-- results:end -->` markers is replaced by the tables.
"""
import argparse
import collections
import json
import os
import statistics

KIB, MIB = 1024, 1024 * 1024

# (section, key, label, unit, divisor from the raw unit)
ROWS = [
    ("boot", "boot.hutch.priv", "hutch, privileged", "ms", 1),
    ("boot", "boot.lxc.priv", "LXC, privileged", "ms", 1),
    ("boot", "boot.nspawn.priv", "nspawn, privileged", "ms", 1),
    ("boot", "boot.hutch.unpriv", "hutch, unprivileged", "ms", 1),
    ("boot", "boot.lxc.unpriv", "LXC, unprivileged", "ms", 1),
    ("boot", "boot.nspawn.unpriv", "nspawn, unprivileged (-U)", "ms", 1),
    ("boot", "boot.hutch-notify.priv", "hutch's own READY=1 time, privileged (info)", "ms", 1),
    ("boot", "boot.hutch-notify.unpriv", "hutch's own READY=1 time, unprivileged (info)", "ms", 1),
    ("share", "share.hutch.priv", "hutch's own share of a boot, privileged", "ms", 1),
    ("share", "share.hutch.unpriv", "hutch's own share of a boot, unprivileged", "ms", 1),
    ("stop", "stop.hutch.priv", "hutch stop, privileged", "ms", 1),
    ("stop", "stop.lxc.priv", "lxc-stop, privileged", "ms", 1),
    ("stop", "stop.nspawn.priv", "nspawn (SIGTERM), privileged", "ms", 1),
    ("stop", "stop.hutch.unpriv", "hutch stop, unprivileged", "ms", 1),
    ("stop", "stop.lxc.unpriv", "lxc-stop, unprivileged", "ms", 1),
    ("stop", "stop.nspawn.unpriv", "nspawn (SIGTERM), unprivileged", "ms", 1),
    ("exec", "exec.hutch-exec", "hutch exec c true", "ms", 1),
    ("exec", "exec.lxc-attach", "lxc-attach -n c -- true", "ms", 1),
    ("exec", "exec.nsenter", "nsenter -t PID -a true", "ms", 1),
    ("create", "create.hutch-overlay", "hutch create --image (overlay)", "ms", 1),
    ("create", "create.lxc-copy-overlay", "lxc-copy -s -B overlay", "ms", 1),
    ("create", "create.hutch-dir", "hutch create --image --storage dir (full copy)", "ms", 1),
    ("create", "create.lxc-copy-full", "lxc-copy (full copy)", "ms", 1),
    ("monitor", "monrss.hutch.priv", "hutch-monitor, privileged", "MiB", KIB),
    ("monitor", "monrss.hutch.unpriv", "hutch-monitor, unprivileged", "MiB", KIB),
    ("monitor", "monrss.lxc.priv", "[lxc monitor], privileged", "MiB", KIB),
    ("monitor", "monrss.lxc.unpriv", "[lxc monitor], unprivileged", "MiB", KIB),
    ("monitor", "monrss.nspawn.priv", "systemd-nspawn process, privileged", "MiB", KIB),
    ("monitor", "monrss.nspawn.unpriv", "systemd-nspawn process, unprivileged", "MiB", KIB),
    ("monpss", "monpss.hutch.unpriv", "hutch-monitor PSS, unprivileged", "MiB", KIB),
    ("monpss", "monpss.lxc.unpriv", "[lxc monitor] PSS, unprivileged", "MiB", KIB),
    ("monpss", "monpss.nspawn.unpriv", "systemd-nspawn PSS, unprivileged", "MiB", KIB),
    ("mem", "mem.hutch.priv", "hutch, privileged", "MiB", MIB),
    ("mem", "mem.lxc.priv", "LXC, privileged", "MiB", MIB),
    ("mem", "mem.nspawn.priv", "nspawn, privileged (cgroup holds nspawn too)", "MiB", MIB),
    ("mem", "mem.hutch.unpriv", "hutch, unprivileged", "MiB", MIB),
    ("mem", "mem.lxc.unpriv", "LXC, unprivileged", "MiB", MIB),
    ("mem", "mem.nspawn.unpriv", "nspawn, unprivileged (cgroup holds nspawn too)", "MiB", MIB),
    ("anon", "anon.hutch.unpriv", "hutch, unprivileged", "MiB", MIB),
    ("anon", "anon.lxc.unpriv", "LXC, unprivileged", "MiB", MIB),
    ("anon", "anon.nspawn.unpriv", "nspawn, unprivileged", "MiB", MIB),
    ("density", "density.hutch.seq.ms", "hutch, one after another", "s", 1000),
    ("density", "density.lxc.seq.ms", "LXC, one after another", "s", 1000),
    ("density", "density.hutch.par.ms", "hutch, all at once", "s", 1000),
    ("density", "density.lxc.par.ms", "LXC, all at once", "s", 1000),
    ("densmem", "density.hutch.seq.hostmem", "hutch, host MemAvailable drop (one after another; noisy)", "MiB", MIB),
    ("densmem", "density.lxc.seq.hostmem", "LXC, host MemAvailable drop (one after another; noisy)", "MiB", MIB),
    ("densmem", "density.hutch.par.hostmem", "hutch, host MemAvailable drop (all at once; noisy)", "MiB", MIB),
    ("densmem", "density.lxc.par.hostmem", "LXC, host MemAvailable drop (all at once; noisy)", "MiB", MIB),
    ("densmem", "density.hutch.seq.cgmem", "hutch, containers' cgroups + monitors' RSS (one after another)", "MiB", MIB),
    ("densmem", "density.lxc.seq.cgmem", "LXC, containers' cgroups + monitors' RSS (one after another)", "MiB", MIB),
    ("densmem", "density.hutch.par.cgmem", "hutch, containers' cgroups + monitors' RSS (all at once)", "MiB", MIB),
    ("densmem", "density.lxc.par.cgmem", "LXC, containers' cgroups + monitors' RSS (all at once)", "MiB", MIB),
    ("unpack", "unpack.tar.xz", "GNU tar -xpf .tar.xz", "s", 1000),
    ("unpack", "unpack.tar-syncfs.xz", "GNU tar -xpf .tar.xz, then syncfs", "s", 1000),
    ("unpack", "unpack.hutch.xz", "hutch image import .tar.xz", "s", 1000),
    ("unpack", "unpack.tar.zst", "GNU tar -xpf .tar.zst", "s", 1000),
    ("unpack", "unpack.tar-syncfs.zst", "GNU tar -xpf .tar.zst, then syncfs", "s", 1000),
    ("unpack", "unpack.hutch.zst", "hutch image import .tar.zst", "s", 1000),
]
for _size, _what in (("small", "as created"), ("1g", "with 1 GiB of its own data")):
    ROWS += [
        ("snap", f"snap.create.hutch-overlay.{_size}", f"hutch snapshot create, overlay, {_what}", "ms", 1),
        ("snap", f"snap.create.hutch-btrfs.{_size}", f"hutch snapshot create, btrfs, {_what}", "ms", 1),
        ("snap", f"snap.create.lxc.{_size}", f"lxc-snapshot (overlay clone), {_what}", "ms", 1),
        ("snap", f"snap.restore.hutch-overlay.{_size}", f"hutch snapshot restore, overlay, {_what}", "ms", 1),
        ("snap", f"snap.restore.hutch-btrfs.{_size}", f"hutch snapshot restore, btrfs, {_what}", "ms", 1),
        ("snap", f"snap.restore.lxc.{_size}", f"lxc-snapshot -r, {_what}", "ms", 1),
        ("copy", f"copy.hutch-overlay.{_size}", f"hutch copy, overlay, {_what}", "ms", 1),
        ("copy", f"copy.hutch-btrfs.{_size}", f"hutch copy, btrfs, {_what}", "ms", 1),
        ("copy", f"copy.lxc.{_size}", f"lxc-copy -s -B overlay, {_what}", "ms", 1),
    ]

SECTIONS = {
    "share": "1a. hutch's own share of a boot (CLI invoked → init exec'd, from `hutch info`'s start timeline)",
    "boot": "1. Boot to ready (start command → `systemctl is-system-running` answers running/degraded)",
    "stop": "2. Graceful stop",
    "exec": "3. Exec latency (unprivileged containers)",
    "create": "4. Create from a cached image",
    "monitor": "5a. Monitor RSS per running container",
    "monpss": "5b. Monitor PSS (shared pages split between processes)",
    "mem": "5c. Container memory 1 s after ready (its memory cgroup: usage incl. kernel memory)",
    "anon": "5d. Container anonymous memory 1 s after ready",
    "density": "6a. Density: time until all N are ready",
    "densmem": "6b. Density: memory with all N running",
    "unpack": "7. Rootfs unpack",
    "snap": "8a. Snapshot create and restore of a stopped container",
    "copy": "8b. Copy of a stopped container",
}

# (label, hutch key, peer key)
RATIOS = [
    ("boot, privileged, vs LXC", "boot.hutch.priv", "boot.lxc.priv"),
    ("boot, privileged, vs nspawn", "boot.hutch.priv", "boot.nspawn.priv"),
    ("boot, unprivileged, vs LXC", "boot.hutch.unpriv", "boot.lxc.unpriv"),
    ("boot, unprivileged, vs nspawn -U", "boot.hutch.unpriv", "boot.nspawn.unpriv"),
    ("stop, privileged, vs LXC", "stop.hutch.priv", "stop.lxc.priv"),
    ("stop, privileged, vs nspawn", "stop.hutch.priv", "stop.nspawn.priv"),
    ("stop, unprivileged, vs LXC", "stop.hutch.unpriv", "stop.lxc.unpriv"),
    ("stop, unprivileged, vs nspawn -U", "stop.hutch.unpriv", "stop.nspawn.unpriv"),
    ("exec vs lxc-attach", "exec.hutch-exec", "exec.lxc-attach"),
    ("exec vs nsenter", "exec.hutch-exec", "exec.nsenter"),
    ("create (overlay) vs lxc-copy -s -B overlay", "create.hutch-overlay", "create.lxc-copy-overlay"),
    ("create (overlay) vs full lxc-copy", "create.hutch-overlay", "create.lxc-copy-full"),
    ("create (full copy) vs full lxc-copy", "create.hutch-dir", "create.lxc-copy-full"),
    ("monitor RSS, privileged, vs LXC", "monrss.hutch.priv", "monrss.lxc.priv"),
    ("monitor RSS, unprivileged, vs LXC", "monrss.hutch.unpriv", "monrss.lxc.unpriv"),
    ("monitor RSS, unprivileged, vs nspawn", "monrss.hutch.unpriv", "monrss.nspawn.unpriv"),
    ("container memory, privileged, vs LXC", "mem.hutch.priv", "mem.lxc.priv"),
    ("container memory, unprivileged, vs LXC", "mem.hutch.unpriv", "mem.lxc.unpriv"),
    ("container memory, unprivileged, vs nspawn", "mem.hutch.unpriv", "mem.nspawn.unpriv"),
    ("density time, one after another, vs LXC", "density.hutch.seq.ms", "density.lxc.seq.ms"),
    ("density time, all at once, vs LXC", "density.hutch.par.ms", "density.lxc.par.ms"),
    ("density host MemAvailable drop, all at once, vs LXC", "density.hutch.par.hostmem", "density.lxc.par.hostmem"),
    ("density cgroups + monitors, all at once, vs LXC", "density.hutch.par.cgmem", "density.lxc.par.cgmem"),
    ("unpack .tar.xz vs GNU tar", "unpack.hutch.xz", "unpack.tar.xz"),
    ("unpack .tar.xz vs GNU tar + syncfs", "unpack.hutch.xz", "unpack.tar-syncfs.xz"),
    ("unpack .tar.zst vs GNU tar", "unpack.hutch.zst", "unpack.tar.zst"),
    ("unpack .tar.zst vs GNU tar + syncfs", "unpack.hutch.zst", "unpack.tar-syncfs.zst"),
    ("snapshot create, overlay, 1 GiB, vs lxc-snapshot", "snap.create.hutch-overlay.1g", "snap.create.lxc.1g"),
    ("snapshot restore, overlay, 1 GiB, vs lxc-snapshot -r", "snap.restore.hutch-overlay.1g", "snap.restore.lxc.1g"),
    ("copy, btrfs, 1 GiB, vs lxc-copy -s", "copy.hutch-btrfs.1g", "copy.lxc.1g"),
    ("copy, overlay, 1 GiB, vs lxc-copy -s", "copy.hutch-overlay.1g", "copy.lxc.1g"),
]

TOOLS = [("hutch", "#1f6fb4"), ("lxc", "#e0861a"), ("[lxc", "#e0861a"), ("nspawn", "#4c9a3c"),
         ("systemd-nspawn", "#4c9a3c"), ("gnu tar", "#8a8a8a"), ("nsenter", "#8a8a8a")]


def color(label):
    low = label.lower()
    for prefix, c in TOOLS:
        if low.startswith(prefix):
            return c
    return "#8a8a8a"


def load(args):
    if args.rerender:  # the raw rows kept in an earlier DATE.json
        old = json.load(open(args.rerender))
        rows, srows, meta = old["raw"]["samples"], old["raw"]["states"], old["meta"]
    else:
        rows = [line.rstrip("\n").split("\t") for line in open(args.samples)]
        srows = []
        if os.path.exists(args.states):
            srows = [(line.rstrip("\n").split("\t") + [""])[:3] for line in open(args.states)]
        meta = json.load(open(args.meta))
    samples = collections.defaultdict(list)
    for key, run, value in rows:
        try:
            samples[key].append(float(value))
        except ValueError:
            pass  # a missing figure (null READY time...)
    states = collections.defaultdict(list)
    for key, run, text in srows:
        states[key].append((int(run), text))
    return samples, states, meta, rows, srows


def stats(samples):
    figs = {}
    for sec, key, label, unit, div in ROWS:
        v = samples.get(key)
        if key.startswith("density.") and key.endswith(".cgmem") and v:
            mon = samples.get(key.replace(".cgmem", ".monrss"), [0] * len(v))
            v = [a + b for a, b in zip(v, mon)]
        if not v:
            continue
        v = [x / div for x in v]
        figs[key] = {"label": label, "unit": unit, "n": len(v), "median": statistics.median(v),
                     "min": min(v), "max": max(v), "samples": [round(x, 4) for x in v]}
    return figs


def fmt(x, unit):
    if unit == "ms":
        return f"{x:.0f}" if x >= 10 else f"{x:.1f}"
    if unit == "s":
        return f"{x:.2f}"
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def ratios(figs):
    out = []
    for label, h, p in RATIOS:
        if h in figs and p in figs and figs[p]["median"]:
            out.append({"label": label, "hutch": h, "peer": p, "ratio": figs[h]["median"] / figs[p]["median"]})
    return out


def goals(figs):
    def med(k):
        return figs[k]["median"] if k in figs else None

    out = []

    def goal(text, value, ok):
        out.append({"goal": text, "value": value, "met": ok})

    h, l = med("boot.hutch.unpriv"), med("boot.lxc.unpriv")
    if h and l:
        goal("boot under 0.8x LXC unprivileged", f"{h / l:.2f}x", h / l < 0.8)
    for mode in ("priv", "unpriv"):
        h = med(f"share.hutch.{mode}")
        if h is not None:
            goal(f"hutch's share of a boot at most 10 ms ({'privileged' if mode == 'priv' else 'unprivileged'})",
                 f"{h:.1f} ms", h <= 10)
    h, n = med("exec.hutch-exec"), med("exec.nsenter")
    if h and n:
        goal("exec within 1.3x of nsenter -a", f"{h / n:.2f}x", h / n <= 1.3)
    for mode in ("priv", "unpriv"):
        h, n = med(f"stop.hutch.{mode}"), med(f"stop.nspawn.{mode}")
        if h and n:
            goal(f"stop no slower than nspawn ({'privileged' if mode == 'priv' else 'unprivileged'})",
                 f"{h:.0f} vs {n:.0f} ms ({h / n:.2f}x)", h <= n)
    h, l = med("exec.hutch-exec"), med("exec.lxc-attach")
    if h and l:
        goal("exec under half of lxc-attach", f"{h / l:.2f}x", h / l < 0.5)
    h = med("create.hutch-overlay")
    if h:
        goal("create from cache under 100 ms", f"{h:.0f} ms", h < 100)
    for mode in ("priv", "unpriv"):
        h = med(f"monrss.hutch.{mode}")
        if h:
            goal(f"monitor under 2 MiB RSS ({'privileged' if mode == 'priv' else 'unprivileged'})",
                 f"{h:.2f} MiB", h < 2)
    for kind in ("overlay", "btrfs"):
        for op, limit in (("create", 50), ("restore", 100)):
            vals = [med(f"snap.{op}.hutch-{kind}.{size}") for size in ("small", "1g")]
            if all(v is not None for v in vals):
                goal(f"snapshot {op} at most {limit} ms on {kind}, whatever the data (small, 1 GiB)",
                     f"{vals[0]:.0f}, {vals[1]:.0f} ms", max(vals) <= limit)
    for f in ("xz", "zst"):
        h, t = med(f"unpack.hutch.{f}"), med(f"unpack.tar.{f}")
        if h and t:
            goal(f"unpack .tar.{f} at least as fast as GNU tar", f"{h:.2f} vs {t:.2f} s ({h / t:.2f}x)", h <= t)
    return out


def end_states(states):
    out = {}
    for tool in ("hutch", "lxc", "nspawn"):
        for mode in ("priv", "unpriv"):
            ends = [t for _, t in states.get(f"end.{tool}.{mode}", [])]
            if not ends:
                continue
            failed = collections.Counter()
            for _, t in states.get(f"failed.{tool}.{mode}", []):
                failed.update(u for u in t.split(",") if u)
            out[f"{tool}.{mode}"] = {"states": dict(collections.Counter(ends)), "failed_units": dict(failed)}
    return out


def density_states(states):
    """density.TOOL.MODE -> counts summed over runs, from "running=N degraded=N timeout=N failed=u xN, ..."."""
    out = {}
    for k in sorted(states):
        if not k.startswith("density."):
            continue
        d = {"running": 0, "degraded": 0, "timeout": 0, "failed": collections.Counter()}
        for _, text in states[k]:
            head, _, failed = text.partition(" failed=")
            for part in head.split():
                name, _, n = part.partition("=")
                d[name] += int(n)
            for item in filter(None, failed.split(", ")):
                unit, _, n = item.rpartition(" x")
                d["failed"][unit] += int(n)
        d["failed"] = dict(d["failed"])
        out[k] = d
    return out


def short_machine(meta):
    m = meta["machine"]
    return (f"{m['cpus']} × {m['cpu']}, {m['mem_gib']} GiB, {m['os'].split(' (')[0]}, kernel {m['kernel']}, "
            f"cgroups {m['cgroups'].split(' (')[0]}, {m['fs']}")


def machine_line(meta):
    m = meta["machine"]
    return (f"{m['cpus']} × {m['cpu']}, {m['mem_gib']} GiB, {m['os']}, kernel {m['kernel']}, "
            f"cgroups {m['cgroups']}, {m['fs']} under /var/tmp")


def markdown(meta, figs, rats, gls, ends, states, title=True):
    v = meta["versions"]
    r = meta["rootfs"]
    L = []
    if title:
        L += [f"# hutch benchmarks, {meta['date']}{' (quick)' if meta['quick'] else ''}", ""]
    L += [
        f"- Machine: {machine_line(meta)}.",
        f"- Load average at start `{meta['load_start']}`, at end `{meta['load_end']}` "
        "(other jobs shared the machine).",
        f"- Versions: hutch {v['hutch']}; LXC {v['lxc']}; {v['nspawn']}; {v['tar']}; {v['xz']}; "
        f"zstd {v['zstd'].split(' v')[-1].split(',')[0]}; {v['hyperfine']}.",
        f"- Rootfs: `{r['path']}` (Debian bookworm minbase + systemd), {r['tar_bytes'] / MIB:.0f} MiB as a tar, "
        f"{r['xz_bytes'] / MIB:.0f} MiB .tar.xz, {r['zst_bytes'] / MIB:.0f} MiB .tar.zst.",
        f"- {meta['runs']} runs, tools interleaved in rotating order within each run; exec: "
        f"{meta['exec_runs_per_run']} calls per tool per run (hyperfine, 3 warm-ups); density: N = {meta['density']}, "
        f"{meta['density_runs']} run(s). Wall time {meta['wall_s'] // 60} min {meta['wall_s'] % 60} s.",
        "- No container of any tool has a network: hutch `--network none`, LXC `lxc.net.0.type = empty`, "
        "nspawn `--private-network` (each gets its own network namespace with loopback only).",
        "",
    ]
    cur = None
    for sec, key, label, unit, div in ROWS:
        if key not in figs:
            continue
        if sec != cur:
            cur = sec
            L += ["", f"### {SECTIONS[sec]}", "", f"| | median | min | max | n |", "|---|---|---|---|---|"]
        f = figs[key]
        extra = ""
        if sec == "unpack":
            mibs = r["tar_bytes"] / MIB / f["median"]
            extra = f" ({mibs:.0f} MiB/s)"
        L.append(f"| {label} | **{fmt(f['median'], unit)} {unit}**{extra} | {fmt(f['min'], unit)} | "
                 f"{fmt(f['max'], unit)} | {f['n']} |")
    L += ["", "### End states after boot", "", "| | end state (runs) | failed units (runs) |", "|---|---|---|"]
    names = {"hutch": "hutch", "lxc": "LXC", "nspawn": "nspawn"}
    for k, e in ends.items():
        tool, mode = k.split(".")
        st = ", ".join(f"{s} ×{n}" for s, n in e["states"].items())
        fu = ", ".join(f"`{u}` ×{n}" for u, n in e["failed_units"].items()) or "none"
        L.append(f"| {names[tool]}, {'privileged' if mode == 'priv' else 'unprivileged'} | {st} | {fu} |")
    dens = density_states(states)
    if dens:
        L += ["", "| density, all runs | running | degraded | not ready | failed units (containers) |",
              "|---|---|---|---|---|"]
        for k, d in dens.items():
            tool, mode = k.split(".")[1:]
            fu = ", ".join(f"`{u}` ×{n}" for u, n in d["failed"].items()) or "none"
            L.append(f"| {names[tool]}, {'one after another' if mode == 'seq' else 'all at once'} | "
                     f"{d['running']} | {d['degraded']} | {d['timeout']} | {fu} |")
    errs = [t for k, v in states.items() if k.endswith("error") for _, t in v]
    if errs:
        L += ["", "Errors: " + "; ".join(errs)]
    L += ["", "### Ratios (hutch median / peer median; below 1 is better for hutch)", "",
          "| | ratio |", "|---|---|"]
    L += [f"| {x['label']} | {x['ratio']:.2f} |" if x['ratio'] >= 0.1 else f"| {x['label']} | {x['ratio']:.3f} |"
          for x in rats]
    L += ["", "### Goals (reported, never asserted)", "", "| goal | value | met |", "|---|---|---|"]
    L += [f"| {g['goal']} | {g['value']} | {'yes' if g['met'] else '**no**'} |" for g in gls]
    return "\n".join(L) + "\n"


def svg(meta, figs):
    panels = [("boot", "Boot to ready (ms)", ["boot.hutch.priv", "boot.lxc.priv", "boot.nspawn.priv",
                                               "boot.hutch.unpriv", "boot.lxc.unpriv", "boot.nspawn.unpriv"]),
              ("stop", "Graceful stop (ms)", ["stop.hutch.priv", "stop.lxc.priv", "stop.nspawn.priv",
                                              "stop.hutch.unpriv", "stop.lxc.unpriv", "stop.nspawn.unpriv"]),
              ("exec", "Exec latency (ms)", ["exec.hutch-exec", "exec.lxc-attach", "exec.nsenter"]),
              ("create", "Create from a cached image (ms)", ["create.hutch-overlay", "create.lxc-copy-overlay",
                                                             "create.hutch-dir", "create.lxc-copy-full"]),
              ("monitor", "Monitor RSS (MiB)", ["monrss.hutch.priv", "monrss.lxc.priv", "monrss.nspawn.priv",
                                                "monrss.hutch.unpriv", "monrss.lxc.unpriv", "monrss.nspawn.unpriv"]),
              ("mem", "Container memory after boot (MiB)", ["mem.hutch.priv", "mem.lxc.priv", "mem.nspawn.priv",
                                                            "mem.hutch.unpriv", "mem.lxc.unpriv", "mem.nspawn.unpriv"]),
              ("density", f"Density: {meta['density']} containers, time to all ready (s)",
               ["density.hutch.seq.ms", "density.lxc.seq.ms", "density.hutch.par.ms", "density.lxc.par.ms"]),
              ("densmem", f"Density: memory of {meta['density']} containers, cgroups + monitors (MiB)",
               [("density.hutch.seq.cgmem", "hutch, one after another"), ("density.lxc.seq.cgmem", "LXC, one after another"),
                ("density.hutch.par.cgmem", "hutch, all at once"), ("density.lxc.par.cgmem", "LXC, all at once")]),
              ("unpack", "Rootfs unpack (s)", ["unpack.tar.xz", "unpack.hutch.xz", "unpack.tar.zst", "unpack.hutch.zst"])]
    W, LABEL, BAR, ROW, GAP = 920, 330, 470, 20, 34
    out, y = [], 62
    for _, title, keys in panels:
        keys = [k if isinstance(k, tuple) else (k, None) for k in keys]
        keys = [(k, short) for k, short in keys if k in figs]
        if not keys:
            continue
        top = max(figs[k]["max"] for k, _ in keys) or 1
        out.append(f'<text x="10" y="{y}" class="t">{esc(title)}</text>')
        y += 8
        for k, short in keys:
            f = dict(figs[k], label=short or figs[k]["label"])
            w = BAR * f["median"] / top
            x0, x1 = LABEL + BAR * f["min"] / top, LABEL + BAR * f["max"] / top
            c = color(f["label"])
            out.append(f'<text x="{LABEL - 6}" y="{y + 14}" class="l">{esc(f["label"])}</text>')
            out.append(f'<rect x="{LABEL}" y="{y + 3}" width="{w:.1f}" height="{ROW - 6}" fill="{c}"/>')
            out.append(f'<line x1="{x0:.1f}" x2="{x1:.1f}" y1="{y + ROW / 2}" y2="{y + ROW / 2}" class="w"/>'
                       f'<line x1="{x0:.1f}" x2="{x0:.1f}" y1="{y + 5}" y2="{y + ROW - 5}" class="w"/>'
                       f'<line x1="{x1:.1f}" x2="{x1:.1f}" y1="{y + 5}" y2="{y + ROW - 5}" class="w"/>')
            out.append(f'<text x="{max(w + LABEL, x1) + 6:.1f}" y="{y + 14}" class="v">{fmt(f["median"], f["unit"])}</text>')
            y += ROW
        y += GAP
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{y}" viewBox="0 0 {W} {y}" '
            'font-family="sans-serif">'
            '<style>.t{font-size:14px;font-weight:bold}.l{font-size:12px;text-anchor:end}'
            '.v{font-size:11px}.w{stroke:#222;stroke-width:1}</style>'
            f'<rect width="{W}" height="{y}" fill="white"/>'
            f'<text x="10" y="18" font-size="12">hutch {esc(meta["versions"]["hutch"])} vs LXC {esc(meta["versions"]["lxc"])} '
            f'vs {esc(meta["versions"]["nspawn"].split(" (")[0].replace("systemd", "systemd-nspawn"))}, {esc(meta["date"])}: '
            f'bars are medians, whiskers min–max, {meta["runs"]} runs{" (quick)" if meta["quick"] else ""}.</text>'
            f'<text x="10" y="34" font-size="12">{esc(short_machine(meta))}; load {esc(meta["load_start"].split()[0])} '
            f'at start, {esc(meta["load_end"].split()[0])} at end.</text>')
    return head + "".join(out) + "</svg>\n"


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples")
    ap.add_argument("--states")
    ap.add_argument("--meta")
    ap.add_argument("--rerender", metavar="DATE.json", help="render again from an earlier result's raw rows")
    ap.add_argument("--out", required=True)
    ap.add_argument("--docs")
    args = ap.parse_args()
    if not args.rerender and not (args.samples and args.states and args.meta):
        ap.error("give --samples, --states and --meta, or --rerender")
    samples, states, meta, rows, srows = load(args)
    figs = stats(samples)
    rats, gls, ends = ratios(figs), goals(figs), end_states(states)
    doc = {"meta": meta, "figures": figs, "ratios": rats, "goals": gls, "end_states": ends,
           "density_end_states": density_states(states),
           "states": {k: v for k, v in states.items()}, "raw": {"samples": rows, "states": srows}}
    json.dump(doc, open(args.out + ".json", "w"), indent=1)
    open(args.out + ".md", "w").write(markdown(meta, figs, rats, gls, ends, states))
    open(args.out + ".svg", "w").write(svg(meta, figs))
    if args.docs:
        text = open(args.docs).read()
        b, e = "<!-- results:begin -->", "<!-- results:end -->"
        if b in text and e in text:
            name = os.path.basename(args.out)
            rel = os.path.relpath(args.out, os.path.dirname(os.path.abspath(args.docs)))
            body = (f"\n## Latest full run: {meta['date']}\n\n![chart]({rel}.svg)\n\n"
                    f"Raw numbers: [{name}.json]({rel}.json); this table: [{name}.md]({rel}.md).\n\n"
                    + markdown(meta, figs, rats, gls, ends, states, title=False))
            text = text[: text.index(b) + len(b)] + body + text[text.index(e):]
            open(args.docs, "w").write(text)


if __name__ == "__main__":
    main()
