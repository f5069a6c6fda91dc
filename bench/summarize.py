#!/usr/bin/env python3
"""Turns one bench run directory into the markdown tables of bench/README.md.

Reads RUN/measurements.tsv (written by run.sh: one line per measurement, with
the raw wrk/oha output file, the peak RSS sampled during it and the CPU time
the measured process used) and the raw files, takes the median over rounds of
each figure, and prints: throughput and latency (wrk), latency at a fixed rate
(oha, as added latency over direct), resident memory, the ratios of Weir
against nginx and haproxy, and each BENCH.md target with how much it misses by.

Usage: summarize.py RUN_DIR
"""

import csv
import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def parse_duration_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def parse_wrk(path):
    text = path.read_text(errors="replace")
    out = {"rps": None, "p50": None, "p99": None, "requests": 0, "errors": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", text)
    if m:
        out["requests"] = int(m.group(1))
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        if m:
            out[key] = parse_duration_ms(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        # Read errors are mostly connections the server closed at the end; count
        # connect failures and timeouts, which mean requests did not complete.
        out["errors"] += int(m.group(1)) + int(m.group(4))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        out["errors"] += int(m.group(1))
    return out


def parse_oha(path):
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pct = data.get("latencyPercentiles", {})
    ok = sum(v for k, v in data.get("statusCodeDistribution", {}).items() if k.startswith("2"))
    errors = sum(data.get("errorDistribution", {}).values()) + sum(
        v for k, v in data.get("statusCodeDistribution", {}).items() if not k.startswith("2"))
    return {
        "p50": pct.get("p50", 0) * 1e3,
        "p99": pct.get("p99", 0) * 1e3,
        "p99.9": pct.get("p99.9", 0) * 1e3,
        "rps": data.get("summary", {}).get("requestsPerSec"),
        "ok": ok,
        "errors": errors,
    }


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=1, unit=""):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}{unit}"


def fmt_k(v):
    return "–" if v is None else f"{v / 1000:.1f}k"


def fmt_mib(kb):
    return "–" if kb is None else f"{kb / 1024:.1f} MiB"


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


class Run:
    def __init__(self, run_dir, prefix):
        self.dir = run_dir
        self.rows = [r for r in csv.DictReader(open(run_dir / "measurements.tsv"), delimiter="\t")
                     if r["kind"].startswith(prefix) and r["kind"][len(prefix):] in KINDS]
        self.prefix = prefix
        self.targets = []
        for r in self.rows:
            if r["target"] not in self.targets:
                self.targets.append(r["target"])

    def of(self, kind, target, conns=None):
        return [r for r in self.rows if r["kind"] == self.prefix + kind and r["target"] == target
                and (conns is None or r["conns"] == str(conns))]

    def wrk(self, target, conns):
        runs = []
        for r in self.of("wrk", target, conns):
            w = parse_wrk(self.dir / r["file"])
            cpu = float(r["cpu_s"] or 0)
            w["cpu_us_per_req"] = cpu / w["requests"] * 1e6 if w["requests"] and cpu else None
            w["rss"] = int(r["rss_peak_kb"] or 0) or None
            runs.append(w)
        if not runs:
            return None
        return {k: med([w[k] for w in runs]) for k in ("rps", "p50", "p99", "cpu_us_per_req", "rss")} | {
            "errors": sum(w["errors"] for w in runs), "rounds": len(runs)}

    def oha(self, target):
        runs = [o for o in (parse_oha(self.dir / r["file"]) for r in self.of("oha", target)) if o]
        rss = [int(r["rss_peak_kb"] or 0) or None for r in self.of("oha", target)]
        if not runs:
            return None
        return {k: med([o[k] for o in runs]) for k in ("p50", "p99", "p99.9", "rps")} | {
            "errors": sum(o["errors"] for o in runs), "rss": med(rss)}

    def single(self, kind, target, conns=None):
        rows = self.of(kind, target, conns)
        return med([int(r["rss_peak_kb"]) for r in rows]) if rows else None

    def conns(self):
        return sorted({int(r["conns"]) for r in self.rows if r["kind"] == self.prefix + "wrk"})

    def hold_conns(self):
        return sorted({int(r["conns"]) for r in self.rows if r["kind"] == self.prefix + "hold"})


KINDS = ("wrk", "oha", "idle", "hold", "idle_after")


def tables(run, title, subject):
    lines = []
    conns = run.conns()
    rounds = max((len(run.of("wrk", t, c)) for t in run.targets for c in conns), default=0)
    lines.append(f"### {title}: throughput and latency (wrk -t1, median of {rounds} round(s))\n")
    head = "| target |"
    sep = "| --- |"
    for c in conns:
        head += f" rps, {c} conns | p50 / p99, {c} conns | CPU µs/req, {c} |"
        sep += " --- | --- | --- |"
    lines += [head + " errors |", sep + " --- |"]
    wrk = {(t, c): run.wrk(t, c) for t in run.targets for c in conns}
    for t in run.targets:
        row = f"| {t} |"
        errors = 0
        for c in conns:
            w = wrk[(t, c)]
            if w is None:
                row += " – | – | – |"
                continue
            errors += w["errors"]
            row += f" {fmt_k(w['rps'])} | {fmt(w['p50'], 2)} / {fmt(w['p99'], 2)} ms | {fmt(w['cpu_us_per_req'], 1)} |"
        lines.append(row + f" {errors} |")
    lines.append("")
    lines.append("CPU µs/req: CPU time the measured process (the upstream for `direct`) used during the "
                 "measured run, divided by the requests served: per-core cost, less sensitive to "
                 "other load on the machine than rps.\n")

    oha = {t: run.oha(t) for t in run.targets}
    direct = oha.get("direct")
    if any(oha.values()):
        lines.append(f"### {title}: latency at a fixed rate (oha --latency-correction, median of rounds)\n")
        lines.append("| target | achieved rps | p50 | p99 | p99.9 | added p50 | added p99 | added p99.9 | errors |")
        lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for t in run.targets:
            o = oha[t]
            if not o:
                continue
            add = {k: (o[k] - direct[k]) if direct and t != "direct" else None for k in ("p50", "p99", "p99.9")}
            lines.append(f"| {t} | {fmt(o['rps'], 0)} | {fmt(o['p50'], 3)} ms | {fmt(o['p99'], 3)} ms | "
                         f"{fmt(o['p99.9'], 3)} ms | {fmt(add['p50'], 3)} | {fmt(add['p99'], 3)} | "
                         f"{fmt(add['p99.9'], 3)} | {o['errors']} |")
        lines.append("")

    lines.append(f"### {title}: resident memory (VmRSS; nginx: its worker process, as in BENCH.md)\n")
    hold = run.hold_conns()
    head = "| target | idle |" + "".join(f" holding {c} idle conns |" for c in hold)
    head += "".join(f" peak under wrk {c} conns |" for c in conns) + " peak at fixed rate | idle after the run |"
    lines.append(head)
    lines.append("| --- " * (head.count("|") - 1) + "|")
    for t in run.targets:
        row = f"| {t} | {fmt_mib(run.single('idle', t))} |"
        row += "".join(f" {fmt_mib(run.single('hold', t, c))} |" for c in hold)
        row += "".join(f" {fmt_mib((wrk[(t, c)] or {}).get('rss'))} |" for c in conns)
        row += f" {fmt_mib((oha[t] or {}).get('rss'))} | {fmt_mib(run.single('idle_after', t))} |"
        lines.append(row)
    lines.append("")

    if subject in run.targets:
        lines.append(f"### {title}: ratios ({subject} / other)\n")
        lines.append("| figure | vs nginx | vs haproxy |")
        lines.append("| --- | --- | --- |")
        for c in conns:
            for key, label in (("rps", "rps"), ("p99", "p99"), ("cpu_us_per_req", "CPU µs/req")):
                mine = (wrk[(subject, c)] or {}).get(key)
                cells = [fmt(ratio(mine, (wrk.get((o, c)) or {}).get(key)), 2, "×") for o in ("nginx", "haproxy")]
                lines.append(f"| {label}, {c} conns | {cells[0]} | {cells[1]} |")
        if direct and oha.get(subject):
            for key in ("p50", "p99", "p99.9"):
                mine = oha[subject][key] - direct[key]
                cells = []
                for o in ("nginx", "haproxy"):
                    other = oha.get(o)
                    cells.append(fmt(ratio(mine, other[key] - direct[key]) if other else None, 2, "×"))
                lines.append(f"| added {key} at {int(oha[subject]['rps'] or 0)} rps | {cells[0]} | {cells[1]} |")
        lines.append("")
    return lines, wrk, oha


def levers(run, wrk, oha):
    """Gateway variants (`weir-*` targets) against the baseline `weir`."""
    variants = [t for t in run.targets if t.startswith("weir-")]
    if not variants or "weir" not in run.targets:
        return []
    conns = run.conns()
    out = ["### Gateway levers: each variant / baseline `weir`, same run\n"]
    head = "| variant |" + "".join(f" rps, {c} | CPU µs/req, {c} | p99, {c} |" for c in conns)
    head += " added p99 at fixed rate | RSS idle | RSS holding conns |"
    out += [head, "| --- " * (head.count("|") - 1) + "|"]
    base = lambda c, k: (wrk.get(("weir", c)) or {}).get(k)
    d = oha.get("direct")
    for v in variants:
        row = f"| {v} |"
        for c in conns:
            for k in ("rps", "cpu_us_per_req", "p99"):
                row += f" {fmt(ratio((wrk.get((v, c)) or {}).get(k), base(c, k)), 2, '×')} |"
        if d and oha.get(v) and oha.get("weir"):
            row += f" {fmt(ratio(oha[v]['p99'] - d['p99'], oha['weir']['p99'] - d['p99']), 2, '×')} |"
        else:
            row += " – |"
        row += f" {fmt_mib(run.single('idle', v))} |"
        hold = run.hold_conns()
        row += f" {fmt_mib(run.single('hold', v, hold[-1]) if hold else None)} |"
        out.append(row)
    out.append("\nBelow 1.0× is better for CPU µs/req and p99, above 1.0× for rps.\n")
    return out


def verdict(ok, text, miss):
    return f"- {'MET ' if ok else 'MISSED'}: {text}" + ("" if ok else f" — misses by {miss}")


def gateway_targets(run, wrk, oha):
    out = ["### Gateway against the BENCH.md targets\n"]
    lo, hi = 64, 2000
    w = lambda t, c: wrk.get((t, c)) or {}
    if w("weir", lo).get("rps") and w("nginx", lo).get("rps"):
        r = w("weir", lo)["rps"] / w("nginx", lo)["rps"]
        out.append(verdict(r >= 1.0, f"throughput at {lo} conns ≥ 1.0× nginx: {r:.2f}×", f"{(1 - r) * 100:.0f}%"))
    if w("weir", hi).get("rps") and w("haproxy", hi).get("rps"):
        r = w("weir", hi)["rps"] / w("haproxy", hi)["rps"]
        out.append(verdict(r >= 1.0, f"throughput at {hi} conns ≥ haproxy: {r:.2f}×", f"{(1 - r) * 100:.0f}%"))
        a, b = w("weir", hi)["p99"], w("haproxy", hi)["p99"]
        out.append(verdict(a <= b, f"p99 at {hi} conns ≤ haproxy: {a:.1f} ms vs {b:.1f} ms", f"{a - b:.1f} ms"))
    d, me, ng = oha.get("direct"), oha.get("weir"), oha.get("nginx")
    if d and me and ng:
        for k in ("p50", "p99"):
            a, b = me[k] - d[k], ng[k] - d[k]
            out.append(verdict(a <= b, f"added {k} at the fixed rate ≤ nginx: {a * 1e3:.0f} µs vs {b * 1e3:.0f} µs",
                               f"{(a - b) * 1e3:.0f} µs"))
    idle = run.single("idle", "weir")
    if idle:
        out.append(verdict(idle <= 10 * 1024, f"RSS idle ≤ 10 MB: {idle / 1024:.1f} MiB", f"{idle / 1024 - 10:.1f} MiB"))
    for label, v in ((f"holding {hi} idle conns", run.single("hold", "weir", hi)),
                     (f"under wrk {hi} conns", w("weir", hi).get("rss"))):
        if v:
            out.append(verdict(v <= 25 * 1024, f"RSS ≤ 25 MB {label}: {v / 1024:.1f} MiB", f"{v / 1024 - 25:.1f} MiB"))
    out.append("")
    return out


def sidecar_targets(run, wrk, oha):
    """BENCH.md: the sidecar meets the gateway's bars, against haproxy."""
    out = ["### Sidecar against the BENCH.md targets (bars against haproxy)\n"]
    w = lambda t, c: wrk.get((t, c)) or {}
    for c in run.conns():
        a, b = w("sidecar", c), w("haproxy", c)
        if a.get("rps") and b.get("rps"):
            r = a["rps"] / b["rps"]
            out.append(verdict(r >= 1.0, f"throughput at {c} conns ≥ haproxy: {r:.2f}×", f"{(1 - r) * 100:.0f}%"))
            out.append(verdict(a["p99"] <= b["p99"], f"p99 at {c} conns ≤ haproxy: {a['p99']:.2f} ms vs {b['p99']:.2f} ms",
                               f"{a['p99'] - b['p99']:.2f} ms"))
    d, me, hp = oha.get("direct"), oha.get("sidecar"), oha.get("haproxy")
    if d and me and hp:
        for k in ("p50", "p99", "p99.9"):
            a, b = me[k] - d[k], hp[k] - d[k]
            out.append(verdict(a <= b, f"added {k} at the fixed rate ≤ haproxy: {a * 1e3:.0f} µs vs {b * 1e3:.0f} µs",
                               f"{(a - b) * 1e3:.0f} µs"))
    idle = run.single("idle", "sidecar")
    if idle:
        out.append(verdict(idle <= 10 * 1024, f"RSS idle ≤ 10 MB: {idle / 1024:.1f} MiB", f"{idle / 1024 - 10:.1f} MiB"))
    for c in run.hold_conns():
        v = run.single("hold", "sidecar", c)
        if v:
            out.append(verdict(v <= 25 * 1024, f"RSS ≤ 25 MB holding {c} idle conns: {v / 1024:.1f} MiB",
                               f"{v / 1024 - 25:.1f} MiB"))
    peaks = [w("sidecar", c).get("rss") for c in run.conns()] + [(oha.get("sidecar") or {}).get("rss")]
    peaks = [p for p in peaks if p]
    if peaks:
        v = max(peaks)
        out.append(verdict(v <= 25 * 1024, f"RSS ≤ 25 MB under load: {v / 1024:.1f} MiB", f"{v / 1024 - 25:.1f} MiB"))
    out.append("")
    return out


def main():
    run_dir = Path(sys.argv[1])
    print(f"## Bench run {run_dir.name}\n")
    machine = run_dir / "machine.txt"
    if machine.exists():
        print("```\n" + machine.read_text().strip() + "\n```\n")
    run = Run(run_dir, "")
    if run.rows:
        lines, wrk, oha = tables(run, "Gateway", "weir")
        print("\n".join(lines))
        print("\n".join(gateway_targets(run, wrk, oha)))
        print("\n".join(levers(run, wrk, oha)))
    side = Run(run_dir, "sidecar_")
    if side.rows:
        lines, wrk, oha = tables(side, "Sidecar", "sidecar")
        print("\n".join(lines))
        print("\n".join(sidecar_targets(side, wrk, oha)))


if __name__ == "__main__":
    main()
