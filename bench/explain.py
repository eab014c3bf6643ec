"""Seconds `keepwell explain` takes for one customer of a large store history, beside replaying
the whole history up to that customer's event (how explain answered before it indexed the
history by customer), measured in the same run on the same events.

The history is a generated store of --customers customers (100,000 by default) with every shipped
pack. The index is built once (its time is reported on its own); then each sampled customer is
explained from it. The baseline replays every event before the customer's last one through the
simulator, for a few of the same customers. Target: every indexed answer under 1 second.

The last line printed is one JSON object with the figures; ``ratio`` is baseline seconds per
answer / indexed seconds per answer.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin.engine.ruleset import for_shop  # noqa: E402
from plugin.events import event_from_dict  # noqa: E402
from plugin.explain import HistoryIndex, explain  # noqa: E402
from plugin.rulefile import load_rules  # noqa: E402
from plugin.sample_history import SAMPLE_REFERRAL_KEY, generate  # noqa: E402
from plugin.simulate import Simulator  # noqa: E402


def full_replay(events, rules, customer_id: str) -> float:
    """The earlier explain: every event of the store before the customer's last one, replayed."""
    t = time.perf_counter()
    target = [e for e in events if e.customer_id == customer_id][-1]
    sim = Simulator(rules)
    for e in events:
        if e is target:
            break
        sim.feed(e)
    sim.advance(target.occurred_at)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=30, help="customers explained from the index")
    parser.add_argument("--baseline-samples", type=int, default=2, help="customers explained by a full replay")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    rules = for_shop(load_rules(), SAMPLE_REFERRAL_KEY)
    t = time.perf_counter()
    events = sorted((event_from_dict(d) for d in generate(args.customers, seed=1)), key=lambda e: e.occurred_at)
    load_s = time.perf_counter() - t
    print(f"history: {args.customers} customers, {len(events)} events, generated in {load_s:.1f} s", file=sys.stderr)

    t = time.perf_counter()
    index = HistoryIndex(events, rules.settings)
    index_s = time.perf_counter() - t
    customers = sorted(index.by_customer)
    picked = random.Random(args.seed).sample(customers, min(args.samples, len(customers)))
    # the customers who referred the most friends replay the most events: measure the worst too
    picked += sorted(index.referred, key=lambda c: -len(index.referred[c]))[:3]

    answers = []
    for cid in picked:
        t = time.perf_counter()
        lines = explain(index, rules, cid)
        answers.append(time.perf_counter() - t)
        assert lines and lines[0].startswith(f"customer {cid} at ")
    baseline = [full_replay(events, rules, cid) for cid in picked[:args.baseline_samples]]

    indexed_mean = sum(answers) / len(answers)
    baseline_mean = sum(baseline) / len(baseline)
    result = {
        "customers": args.customers, "events": len(events), "index_seconds": round(index_s, 6),
        "explained": len(answers), "indexed_mean_seconds": round(indexed_mean, 6),
        "indexed_max_seconds": round(max(answers), 6), "baseline_customers": len(baseline),
        "baseline_mean_seconds": round(baseline_mean, 6), "ratio": round(baseline_mean / indexed_mean, 1),
        "under_one_second": max(answers) < 1.0,
    }
    print(f"index built in {index_s:.3f} s; explain from the index: mean {indexed_mean * 1000:.1f} ms, "
          f"max {max(answers) * 1000:.1f} ms over {len(answers)} customers; full replay: mean {baseline_mean:.2f} s "
          f"over {len(baseline)}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
