"""Peak memory per customer and events/s of `keepwell simulate` with every shipped pack, at two sizes.

A generated history (JSON Lines, in time order like an export) of ``--customers`` customers and
one of a tenth of them are each replayed in a fresh process, as `keepwell simulate FILE` reads
them: every line checked, then streamed one event at a time. Each process reports its peak RSS
(the whole process: interpreter, rules, everything the replay keeps) per customer, and its time:
CPU seconds of the process (the machine is shared: wall time says more about the neighbours).

Figures and what passes:
- peak RSS per customer at ``--customers`` <= 2048 bytes (1M customers / 3M events: under 2 GB);
- time per customer at the big size <= 1.25 x the small size's (time stays linear);
- ratio = simulate events/s / floor events/s >= 0.25, where the floor reads the same big file
  the same way (checked, then streamed in time order) without running any rule: the share of
  the run that is the rules' own work, as before (the floor used to be parse + sort in memory,
  which holds the whole history and no longer fits at a million customers).

The last line printed is one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_RATIO, TARGET_RSS, TARGET_LINEAR = 0.25, 2048, 1.25


def child(path: Path, floor: bool) -> None:
    """Run in a fresh process: replay ``path`` (or only read it, ``floor``); print JSON figures."""
    from plugin.engine.ruleset import for_shop
    from plugin.history_stream import TimeOrdered
    from plugin.rulefile import load_rules
    from plugin.sample_history import SAMPLE_REFERRAL_KEY
    from plugin.simulate import simulate

    rules = for_shop(load_rules(), SAMPLE_REFERRAL_KEY)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t, cpu = time.perf_counter(), time.process_time()
    with path.open(encoding="utf-8") as f:
        events = TimeOrdered(f)
        if floor:
            n, customers, touches = sum(1 for _ in events), None, None
        else:
            report = simulate(events, rules, keep_ledger=False)  # as `keepwell simulate` runs it
            n, customers = report.events, report.customers
            touches = sum(r.touches for r in report.rules.values())
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"events": n, "customers": customers, "touches": touches, "wall_seconds": seconds, "seconds": cpu,
                      "peak_rss": peak, "baseline_rss": baseline}))


def run_child(path: Path, floor: bool = False) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(path)] + (["--floor"] if floor else []),
                         check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def write_history(path: Path, customers: int, days: int, seed: int) -> None:
    from plugin.sample_history import generate

    with path.open("w", encoding="utf-8") as f:
        for d in generate(customers, seed=seed, days=days):
            f.write(json.dumps(d) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--floor", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args.child, args.floor)

    sizes = (args.customers // 10, args.customers)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            path = Path(tmp) / f"history-{size}.jsonl"
            t = time.perf_counter()
            write_history(path, size, args.days, args.seed)
            print(f"generated {size} customers over {args.days} days in {time.perf_counter() - t:.1f}s "
                  f"({os.path.getsize(path) / 1e6:.0f} MB)", flush=True)
            r = runs[size] = run_child(path)
            print(f"simulate {size} customers: {r['events']} events in {r['seconds']:.1f}s = "
                  f"{r['events'] / r['seconds']:,.0f} events/s, {r['seconds'] / size * 1e6:.0f} us/customer "
                  f"(CPU; {r['wall_seconds']:.1f}s wall); "
                  f"peak RSS {r['peak_rss'] / 1e6:.0f} MB = {r['peak_rss'] / size:.0f} B/customer "
                  f"({(r['peak_rss'] - r['baseline_rss']) / size:.0f} B/customer above the "
                  f"{r['baseline_rss'] / 1e6:.0f} MB of interpreter and rules)", flush=True)
            if size == sizes[-1]:
                fl = run_child(path, floor=True)
                print(f"floor (read in time order, no rules): {fl['events']} events in {fl['seconds']:.1f}s = "
                      f"{fl['events'] / fl['seconds']:,.0f} events/s", flush=True)
            path.unlink()

    small, big = runs[sizes[0]], runs[sizes[1]]
    rss_per_customer = big["peak_rss"] / args.customers
    linear = (big["seconds"] / sizes[1]) / (small["seconds"] / sizes[0])
    ratio = (big["events"] / big["seconds"]) / (fl["events"] / fl["seconds"])
    print(json.dumps({
        "customers": args.customers,
        "events": big["events"],
        "touches": big["touches"],
        "simulate_seconds": round(big["seconds"], 1),
        "simulate_events_per_s": round(big["events"] / big["seconds"]),
        "floor_events_per_s": round(fl["events"] / fl["seconds"]),
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "peak_rss_bytes": big["peak_rss"],
        "peak_rss_per_customer": round(rss_per_customer),
        "peak_rss_per_customer_above_baseline": round((big["peak_rss"] - big["baseline_rss"]) / args.customers),
        "target_rss_per_customer": TARGET_RSS,
        "small_customers": sizes[0],
        "small_peak_rss_per_customer": round(small["peak_rss"] / sizes[0]),
        "us_per_customer_small": round(small["seconds"] / sizes[0] * 1e6),
        "us_per_customer_big": round(big["seconds"] / sizes[1] * 1e6),
        "time_growth_per_customer": round(linear, 2),
        "target_time_growth": TARGET_LINEAR,
        "pass": ratio >= TARGET_RATIO and rss_per_customer <= TARGET_RSS and linear <= TARGET_LINEAR,
    }))


if __name__ == "__main__":
    main()
