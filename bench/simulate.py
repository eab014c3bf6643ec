"""Events/s of `keepwell simulate` with every shipped pack, beside the bare parse-and-sort floor.

Both sides read the same generated JSON Lines history from a file, parse each event into the
canonical model and order them by time; the simulator then also runs every rule. The ratio is
simulate rate / floor rate, measured in one run (floor, simulate, floor; the floor averaged),
so machine noise hits both alike. Target: ratio >= 0.25.

Memory: a second, smaller replay measures (tracemalloc) what the simulator keeps after half the
history and after all of it, per customer: it should stay flat as history grows.

The last line printed is one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin.events import event_from_dict  # noqa: E402
from plugin.rulefile import load_rules  # noqa: E402
from plugin.sample_history import generate  # noqa: E402
from plugin.simulate import Simulator  # noqa: E402
from plugin.simulate import simulate as run_simulation  # noqa: E402


def parse_and_sort(path: Path):
    with path.open(encoding="utf-8") as f:
        events = [event_from_dict(json.loads(line)) for line in f]
    events.sort(key=lambda e: e.occurred_at)
    return events


def floor(path: Path) -> tuple[int, float]:
    t = time.perf_counter()
    events = parse_and_sort(path)
    return len(events), time.perf_counter() - t


def simulate(path: Path, rules) -> tuple[int, float, dict]:
    """What `keepwell simulate HISTORY` does: parse, time-order, replay."""
    t = time.perf_counter()
    events = parse_and_sort(path)
    report = run_simulation(events, rules)
    return len(events), time.perf_counter() - t, report


def memory_per_customer(path: Path, rules) -> dict:
    """Bytes the simulator holds per customer after half and after all of the history."""
    events = parse_and_sort(path)
    half_at = events[len(events) // 2].occurred_at
    out = {}
    for label, cut in (("half", half_at), ("full", None)):
        gc.collect()
        tracemalloc.start()
        sim = Simulator(rules)
        n = 0
        for e in events:
            if cut is not None and e.occurred_at >= cut:
                break
            sim.feed(e)
            n += 1
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        customers = max(1, len(sim.states))
        out[label] = {"events": n, "customers": customers, "bytes_per_customer": round(held / customers)}
        del sim
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--memory-customers", type=int, default=5_000, help="size of the memory replay")
    args = ap.parse_args(argv)
    rules = load_rules()

    with tempfile.TemporaryDirectory() as tmp:
        history = Path(tmp) / "history.jsonl"
        small = Path(tmp) / "small.jsonl"
        t = time.perf_counter()
        for path, n in ((history, args.customers), (small, args.memory_customers)):
            with path.open("w", encoding="utf-8") as f:
                for d in generate(n, seed=args.seed, days=args.days):
                    f.write(json.dumps(d) + "\n")
        print(f"generated {args.customers} customers over {args.days} days in {time.perf_counter() - t:.1f}s "
              f"({os.path.getsize(history) / 1e6:.0f} MB)", flush=True)

        n, f1 = floor(history)
        print(f"floor (parse + sort): {n} events in {f1:.2f}s = {n / f1:,.0f} events/s", flush=True)
        n, s, report = simulate(history, rules)
        print(f"simulate (all packs): {n} events in {s:.2f}s = {n / s:,.0f} events/s", flush=True)
        _, f2 = floor(history)
        print(f"floor again:          {n} events in {f2:.2f}s = {n / f2:,.0f} events/s", flush=True)
        touches = sum(r.touches for r in report.rules.values())
        print(f"{touches} touches, {report.timers_fired} timers fired", flush=True)
        mem = memory_per_customer(small, rules)
        print(f"memory held per customer: {mem['half']['bytes_per_customer']} B after half the history "
              f"({mem['half']['events']} events), {mem['full']['bytes_per_customer']} B after all "
              f"({mem['full']['events']} events)", flush=True)

    floor_rate = n / ((f1 + f2) / 2)
    sim_rate = n / s
    ratio = sim_rate / floor_rate
    growth = mem["full"]["bytes_per_customer"] / mem["half"]["bytes_per_customer"]
    print(json.dumps({
        "customers": args.customers,
        "events": n,
        "touches": touches,
        "floor_events_per_s": round(floor_rate),
        "simulate_events_per_s": round(sim_rate),
        "ratio": round(ratio, 3),
        "target_ratio": 0.25,
        "bytes_per_customer_half": mem["half"]["bytes_per_customer"],
        "bytes_per_customer_full": mem["full"]["bytes_per_customer"],
        "memory_growth": round(growth, 2),
        "pass": ratio >= 0.25,
    }))


if __name__ == "__main__":
    main()
