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


def proxy_ceiling(runs, cores):
    """Median over rounds of the best ratio to direct a proxy could reach
    whose own user-space work cost nothing: each proxied GET still costs
    what a direct GET costs the whole machine (wrk, the fake API, the
    kernel) plus tokend's kernel time for its two socket exchanges, and the
    machine has `cores` of CPU time a second."""
    ratios = []
    for p, d in zip(runs["proxy_cN_tokend"], runs["proxy_cN_direct"]):
        p, d = [int(x) for x in p.split()], [int(x) for x in d.split()]
        best_rps = cores * 1e9 / (d[6] + p[5])
        ratios.append(min(1.0, best_rps / d[0]))
    return statistics.median(ratios)


def proxy(runs, row):
    """The API proxy against the same GET sent straight to the fake API."""
    t = median_runs(runs, "proxy_c1_tokend")
    d = median_runs(runs, "proxy_c1_direct")
    if t and d:
        pairs = zip(runs["proxy_c1_tokend"], runs["proxy_c1_direct"])
        overhead = statistics.median(int(a.split()[1]) - int(b.split()[1]) for a, b in pairs)
        row("proxy: GET p50 / p99, 1 connection", f"{t[1]:.0f} / {t[2]:.0f} µs",
            f"{d[1]:.0f} / {d[2]:.0f} µs (direct)", f"p50 +{overhead:.0f} µs",
            "p50 overhead <= 100 µs", overhead <= 100)
    t = median_runs(runs, "proxy_cN_tokend")
    d = median_runs(runs, "proxy_cN_direct")
    if t and d:
        n = runs.get("proxy_connections", ["64"])[0]
        ratio = round_ratios(runs, "proxy_cN_tokend", "proxy_cN_direct", 0)
        row(f"proxy: GET req/s, {n} connections (p50 / p99)",
            f"{t[0]:,.0f} ({t[1]/1000:.2f} / {t[2]/1000:.2f} ms)",
            f"{d[0]:,.0f} ({d[1]/1000:.2f} / {d[2]/1000:.2f} ms) (direct)",
            f"{ratio:.2f}x", ">= 0.70x", ratio >= 0.70)
        if len(t) >= 7:
            row(f"proxy: CPU per GET, {n} connections (tokend, of it in the kernel; the fake API's own)",
                f"{t[3]/1000:.0f} µs, {t[5]/1000:.0f} µs; fake {t[4]/1000:.0f} µs",
                f"fake {d[4]/1000:.0f} µs (direct)", "", "", None)
            ceiling = proxy_ceiling(runs, int(runs.get("proxy_cores", ["2"])[0]))
            row(f"proxy: ceiling on that ratio if tokend's user-space work cost nothing "
                f"(the machine's busy time per direct GET, {d[6]/1000:.0f} µs, plus tokend's "
                "kernel time per proxied GET, on all cores)",
                f"{ceiling:.2f}x", "", "", "", None)
        elif len(t) >= 5:
            row(f"proxy: CPU per GET, {n} connections (tokend; the fake API's own)",
                f"{t[3]/1000:.0f} µs; fake {t[4]/1000:.0f} µs", f"fake {d[4]/1000:.0f} µs (direct)",
                "", "", None)
    if "proxy_callgrind_tokend" in runs and "proxy_callgrind_fake" in runs:
        def per_get(key):
            i1, i2, n1, n2 = (int(x) for x in runs[key][0].split())
            return (i2 - i1) / (n2 - n1)
        t, f = per_get("proxy_callgrind_tokend"), per_get("proxy_callgrind_fake")
        row("proxy: instructions per GET, 1 keep-alive connection (callgrind)",
            f"{t:,.0f}", f"{f:,.0f} (fake API, direct)", f"{t / f:.1f}x", "", None)
    for key, how in (("proxy_stream_fast", "read at full speed"),
                     ("proxy_stream_slow", "read at 25 MB/s")):
        if key not in runs:
            continue
        size, secs, before, peak, after = runs[key][0].split()
        size, secs = int(size), float(secs)
        before, peak, after = (int(x) / 1024 for x in (before, peak, after))
        row(f"proxy: streaming {size / 1e6:,.0f} MB, {how} ({size / secs / 1e6:,.0f} MB/s): "
            "RSS before / peak / after", f"{before:.1f} / {peak:.1f} / {after:.1f} MiB", "",
            f"+{peak - before:.1f} MiB", "flat: peak <= before + 16 MiB", peak - before <= 16)


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

    if "budget_grants" in runs:
        g = lambda k: runs[k][0]
        grants, hot, budget = int(g("budget_grants")), int(g("budget_hot")), float(g("budget_per_minute"))
        label = f"budget sim: {grants:,} one-hour grants, {hot:,} hot, {budget:.0f}/min budget"
        pct = float(g("budget_hot_from_memory_pct"))
        row(f"{label}: hot hand-outs from memory ({int(g('budget_hot_handouts')):,})",
            f"{pct:.2f} %", "", "", "100 %", pct >= 100.0)
        peak = int(g("budget_calls_per_minute_max"))
        row(f"{label}: provider calls/min, mean / max (need {float(g('budget_need_per_minute')):,.0f}/min)",
            f"{float(g('budget_calls_per_minute_mean')):.0f} / {peak}", f"{budget:.0f} (budget)",
            f"{peak / budget:.2f}x", "<= budget", peak <= budget)
        row(f"{label}: warm / lapsed grants", f"{int(g('budget_warm')):,} / {int(g('budget_lapsed')):,}",
            "", "", "", None)
        row(f"{label}: bookkeeping round (every 5 s)",
            f"{float(g('budget_round_ms')):.1f} ms ({float(g('budget_round_cpu_pct')):.2f}% of a core)",
            "", "", "", None)

    proxy(runs, row)
    if "pg_refresh_log" in runs:
        rate, logged = refresh_rate(runs["pg_refresh_log"][0])
        durable = int(runs["pg_refresh_durable"][0])
        calls = int(runs["pg_refresh_provider_calls"][0])
        row(f"postgres: durable refreshes/s ({durable:,} durable, {calls:,} provider calls)",
            f"{rate:,.0f}", "", "", ">= 2,000/s", rate >= 2000)
    if "pg_propagation" in runs:
        # "propagation: N samples p50 X ms p99 Y ms max Z ms"
        words = runs["pg_propagation"][0].split()
        p50, p99, top = float(words[4]), float(words[7]), float(words[10])
        row(f"postgres: propagation to the 2 other members ({words[1]} samples): p50 / p99 / max",
            f"{p50:.1f} / {p99:.1f} / {top:.1f} ms", "", "", "p99 < 1 s", p99 < 1000)
    if "pg_scale_ready_ms" in runs:
        ms = int(runs["pg_scale_ready_ms"][0])
        n = int(runs["pg_scale_n"][0])
        rss = int(runs["pg_scale_rss_ready_kb"][0]) / 1024
        detail = f"RSS {rss:.0f} MiB"
        if "pg_scale_cpu_ms" in runs:
            cpu = int(runs["pg_scale_cpu_ms"][0]) / 1000
            backends = int(runs["pg_scale_backend_cpu_ms"][0]) / 1000
            detail += f"; CPU {cpu:.1f} s, its PostgreSQL backends {backends:.1f} s"
            detail += f"; load {runs['pg_scale_load'][0]}"
        row(f"postgres: start to /readyz 200, {n:,} credentials ({detail})",
            f"{ms/1000:.1f} s", "", "", "<= 15 s", ms <= 15_000)

    if "divan" in runs:
        for name, median in divan(runs["divan"][0]).items():
            row(f"cargo bench: {name} (median)", median, "", "", "", None)

    print("| measurement | tokend | baseline | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


main()
