"""Prints bench/run.sh's results as one Markdown table.

Reads the `key=value` lines run.sh wrote (a key may repeat: one line per
round), the refresh run's JSON log and divan's output. Figures are medians
over the rounds; ratios are the median of each round's ratio (a round runs
the baseline and tokend back to back, so they share the machine's noise).
"""

import json
import statistics
import sys
from datetime import datetime


def load(path):
    runs = {}
    for line in open(path):
        key, _, value = line.rstrip("\n").partition("=")
        runs.setdefault(key, []).append(value)
    return runs


def median_runs(runs, key):
    """(rps, p50_us, p99_us) medians over the rounds of `key`."""
    rows = [[int(x) for x in v.split()] for v in runs.get(key, [])]
    if not rows:
        return None
    return tuple(statistics.median(col) for col in zip(*rows))


def round_ratios(runs, key_a, key_b, column):
    """Median over rounds of a/b: each round pairs runs made minutes apart."""
    a = [int(v.split()[column]) for v in runs.get(key_a, [])]
    b = [int(v.split()[column]) for v in runs.get(key_b, [])]
    return statistics.median(x / y for x, y in zip(a, b))


def refresh_rate(log_path):
    """Durable refreshes per second: 'refreshed' is logged after the commit."""
    stamps = []
    for line in open(log_path):
        if '"message":"refreshed"' not in line:
            continue
        ts = json.loads(line)["timestamp"].rstrip("Z")
        stamps.append(datetime.fromisoformat(ts[:26]))
    if len(stamps) < 2:
        return 0.0, len(stamps)
    secs = (max(stamps) - min(stamps)).total_seconds()
    return (len(stamps) - 1) / secs if secs else 0.0, len(stamps)


def divan(path):
    """{bench name: median text} from divan's table."""
    out = {}
    for line in open(path):
        if "│" not in line:
            continue
        cells = [c.strip() for c in line.split("│")]
        name = cells[0].lstrip("├╰─ ").split()
        if len(cells) >= 3 and name and name[0] not in ("hot", "fastest"):
            out[name[0]] = cells[2]
    return out


def main():
    runs = load(sys.argv[1])
    rows = []

    def row(what, tokend, baseline, ratio, target, ok):
        mark = "" if ok is None else ("yes" if ok else "**no**")
        rows.append((what, tokend, baseline, ratio, target, mark))

    def handout(tag, label):
        for net in ("tcp", "unix"):
            t = median_runs(runs, f"{tag}_{net}_tokend")
            b = median_runs(runs, f"{tag}_{net}_bare")
            if not t or not b:
                continue
            ratio = round_ratios(runs, f"{tag}_{net}_tokend", f"{tag}_{net}_bare", 0)
            # Issue 18 asks 0.95x on the unix socket, where a sidecar's
            # callers are; TCP keeps issue 7's 0.80x.
            floor = 0.95 if net == "unix" else 0.80
            row(f"{label}, {net}: req/s", f"{t[0]:,.0f}", f"{b[0]:,.0f} (bare hyper)",
                f"{ratio:.2f}x", f">= {floor:.2f}x", ratio >= floor)
            p99 = round_ratios(runs, f"{tag}_{net}_tokend", f"{tag}_{net}_bare", 2)
            row(f"{label}, {net}: p50 / p99", f"{t[1]/1000:.2f} / {t[2]/1000:.2f} ms",
                f"{b[1]/1000:.2f} / {b[2]/1000:.2f} ms", f"p99 {p99:.2f}x", "p99 <= 1.5x", p99 <= 1.5)

    def per_request(key):
        """Instructions per hand-out: (I2 - I1) / (N2 - N1) of the two runs."""
        i1, i2, n1, n2 = (int(x) for x in runs[key][0].split())
        return (i2 - i1) / (n2 - n1)

    if "callgrind_tokend" in runs and "callgrind_bare" in runs:
        t, b = per_request("callgrind_tokend"), per_request("callgrind_bare")
        row("hand-out, tcp keep-alive: instructions per request (callgrind)",
            f"{t:,.0f}", f"{b:,.0f} (bare hyper)", f"{t/b:.2f}x", "<= 1.5x", t / b <= 1.5)

    n = int(runs.get("handout_n", ["100000"])[0])
    handout("handout", f"hand-out, {n:,} credentials")

    if "refresh_log" in runs:
        rate, logged = refresh_rate(runs["refresh_log"][0])
        fake = float(runs["fake_alone_rps"][0])
        durable = int(runs["refresh_durable"][0])
        calls = int(runs["refresh_provider_calls"][0])
        row(f"refresh: durable refreshes/s ({durable:,} durable, {calls:,} provider calls)",
            f"{rate:,.0f}", f"{fake:,.0f} (fake alone)", f"{rate/fake:.2f}x", ">= 1,000/s",
            rate >= 1000)

    if "scale_ready_ms" in runs:
        ms = int(runs["scale_ready_ms"][0])
        row("scale: start to /readyz 200", f"{ms/1000:.1f} s", "", "", "<= 5 s", ms <= 5_000)
        if "scale_ready_cpu_ms" in runs:
            cpu_ms = int(runs["scale_ready_cpu_ms"][0])
            row("scale: CPU time to /readyz 200 (all threads)", f"{cpu_ms/1000:.1f} s", "", "", "", None)
        hwm = int(runs["scale_hwm_kb"][0]) / 1024
        rss = int(runs["scale_rss_kb"][0]) / 1024
        ready = int(runs["scale_rss_ready_kb"][0]) / 1024
        row("scale: memory (RSS when ready / after load / peak)",
            f"{ready:.0f} / {rss:.0f} / {hwm:.0f} MiB", "", "", "<= 400 MiB", max(ready, rss) <= 400)
        cpu = float(runs["scale_idle_cpu_pct"][0])
        row("scale: CPU while idle", f"{cpu:.2f}% of a core", "", "", "<= 1%", cpu <= 1.0)
        n = int(runs.get("scale_n", ["1000000"])[0])
        handout("scale", f"scale: hand-out, {n:,} credentials")

    if "divan" in runs:
        for name, median in divan(runs["divan"][0]).items():
            row(f"cargo bench: {name} (median)", median, "", "", "", None)

    print("| measurement | tokend | baseline | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


main()
