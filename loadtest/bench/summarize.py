#!/usr/bin/env python3
"""Medians of the JSON reports written by run.sh, as Markdown tables."""
import glob
import json
import os
import statistics
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "target/bench"


def load(group):
    runs = []
    for path in sorted(glob.glob(os.path.join(out, f"{group}-*.json"))):
        try:
            with open(path) as f:
                runs.append(json.load(f)["result"])
        except (json.JSONDecodeError, KeyError):
            print(f"skipping unreadable {path}", file=sys.stderr)
    return runs


def med(runs, *path):
    vals = []
    for r in runs:
        v = r
        for key in path:
            v = v.get(key) if isinstance(v, dict) else None
        if v is not None:
            vals.append(v)
    return statistics.median(vals) if vals else None


def fmt(v, digits=1):
    return "n/a" if v is None else f"{v:.{digits}f}"


def latency_table(title, runs, rows):
    if not runs:
        return
    print(f"### {title} (median of {len(runs)} run{'s' if len(runs) > 1 else ''})\n")
    print("| histogram | count | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        cells = [fmt(med(runs, row, k), 2) for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")]
        print(f"| {row} | {fmt(med(runs, row, 'count'), 0)} | " + " | ".join(cells) + " |")
    c = lambda k: fmt(med(runs, "counters", k), 0)
    print(
        f"\nsent {c('sent')}, expected {c('expected')}, delivered {c('delivered')}, "
        f"lost {fmt(med(runs, 'lost'), 0)}, duplicated {c('duplicated')}, "
        f"out of order {c('out_of_order')}, gap frames {c('gap_frames')}, "
        f"disconnects {c('disconnects')}; errors: "
        + (", ".join(sorted({k for r in runs for k in r["counters"]["errors"]})) or "none")
    )
    res = lambda k, d=1: fmt(med(runs, "resources", k), d)
    print(
        f"\n| resources | loadtest | server |\n|---|---:|---:|\n"
        f"| deliveries/s in window | {fmt((med(runs, 'resources', 'window_deliveries') or 0) / max(med(runs, 'resources', 'window_secs') or 1, 1e-9), 0)} | |\n"
        f"| CPU % of one core | {res('loadtest_cpu_percent')} | {res('server_cpu_percent')} |\n"
        f"| CPU µs per delivery | {res('loadtest_cpu_us_per_delivery', 2)} | {res('server_cpu_us_per_delivery', 2)} |\n"
        f"| RSS per connection (KiB) | {fmt((med(runs, 'resources', 'loadtest_rss_per_connection_bytes') or 0) / 1024)} "
        f"| {fmt((med(runs, 'resources', 'server_rss_per_connection_bytes') or 0) / 1024)} |\n"
    )
    if any(r["counters"].get("churn_cycles") for r in runs):
        cycles = med(runs, "counters", "churn_cycles")
        secs = med(runs, "resources", "window_secs") or 1
        print(f"churn: {fmt(cycles, 0)} cycles in the window ({fmt(cycles / secs)}/s)\n")


latency_table("Fanout: 1 room × 1000 members, 1 publisher at 100 msg/s, 100 B", load("fanout"),
              ["delivery", "connect", "join"])
latency_table("Many rooms: 500 rooms × 10 members, 1 publisher per room at 5 msg/s, 100 B", load("rooms"),
              ["delivery", "connect", "join"])
latency_table("Idle: 19,900 joined connections (199 rooms × 100)", load("idle"), ["connect", "join"])
latency_table("Big room: 1 room × 19,000 members, 2 msg/s, 100 B", load("bigroom"), ["delivery", "join"])
latency_table("Churn: 100 clients looping connect → join → leave → close", load("churn"), ["connect", "join"])
latency_table("Reconnect storm: 5000 clients drop at once and rejoin", load("storm"),
              ["reconnect", "connect", "join"])


def joins_table(title, runs):
    if not runs:
        return
    print(f"### {title} (median of {len(runs)} run{'s' if len(runs) > 1 else ''})\n")
    print("| histogram | count | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in ("join", "join_lag", "connect"):
        cells = [fmt(med(runs, row, k), 2) for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")]
        print(f"| {row.replace('_', ' ')} | {fmt(med(runs, row, 'count'), 0)} | " + " | ".join(cells) + " |")
    c = lambda k: fmt(med(runs, "counters", k), 0)
    joins = [r["resources"]["window_deliveries"] / max(r["resources"]["window_secs"], 1e-9) for r in runs]
    res = lambda k, d=1: fmt(med(runs, "resources", k), d)
    print(
        f"\njoins scheduled {c('joins_scheduled')}, completed {c('joins_completed')}, "
        f"with history {c('joins_with_history')}; achieved {fmt(statistics.median(joins))} joins/s; errors: "
        + (", ".join(sorted({k for r in runs for k in r["counters"]["errors"]})) or "none")
    )
    print(
        f"\n| resources | loadtest | server |\n|---|---:|---:|\n"
        f"| CPU % of one core | {res('loadtest_cpu_percent')} | {res('server_cpu_percent')} |\n"
        f"| CPU µs per join | {res('loadtest_cpu_us_per_delivery', 2)} | {res('server_cpu_us_per_delivery', 2)} |\n"
    )


joins_table("Joins: 1000 joins/s into 1 room with 50 messages of history, pool of 100", load("joins"))

for path in sorted(glob.glob(os.path.join(out, "slo-*.json"))):
    with open(path) as f:
        slo = json.load(f)["slo"]
    print(f"### SLO search: p{slo['slo']['percentile']} ≤ {slo['slo']['target']} ms, zero loss, over {slo['axis']}\n")
    print("| rate msg/s/publisher | runs | deliveries/s (median run) | pooled p99 ms | lost | server CPU % (median run) | verdict |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for p in slo["probes"]:
        r = p["result"]
        dps = r["resources"]["window_deliveries"] / max(r["resources"]["window_secs"], 1e-9)
        print(f"| {p['value']:.1f} | {p.get('runs', 1)} | {dps:.0f} | {p['observed_ms']:.1f} | {r['lost']} | "
              f"{fmt(r['resources']['server_cpu_percent'])} | {'pass' if p['pass'] else 'FAIL: ' + p['reason']} |")
    print(f"\nverdict: highest passing rate {slo['best']}, lowest failing {slo['lowest_fail']}\n")
