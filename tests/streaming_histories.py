"""Realistic histories for the streaming simulator's tests (and how their golden reports were made).

Each history is built the same way every time: the sample store's generator (names in their own
scripts, Hebrew among them; 4% without a name; consent changes; refunds; referrals), on a
Shopify shop in euros and on a WooCommerce shop in shekels, starting years before today, plus
the real order exports of both platforms from tests/fixtures put through the connectors'
parsers. The file is written out of order in places and with re-delivered events, as a real
export and webhook log would be: simulate must order it by time and ignore the re-deliveries.
"""
from __future__ import annotations

import json
import random
from datetime import datetime, timezone
from pathlib import Path

from plugin.events import event_to_dict
from plugin.exports import export_events, read_orders
from plugin.sample_history import generate

FIXTURES = Path(__file__).resolve().parent / "fixtures"
GOLDEN = FIXTURES / "simulate"

#: name -> (platform, shop, currency, start, customers, seed)
HISTORIES = {
    "shopify_eur": ("shopify", "kaffee-haus.myshopify.com", "EUR", datetime(2019, 3, 1, tzinfo=timezone.utc), 1500, 7),
    "woocommerce_ils": ("woocommerce", "3", "ILS", datetime(2021, 9, 15, tzinfo=timezone.utc), 1500, 8),
}
EXPORTS = {
    "shopify": [FIXTURES / "shopify/order_paid.json", FIXTURES / "shopify/order_paid_multicurrency.json",
                FIXTURES / "shopify/order_paid_gift.json"],
    "woocommerce": [FIXTURES / "woocommerce/rest-v3-docs-examples/orders_list_response.json",
                    FIXTURES / "woocommerce/order_with_occasion.json"],
}


def _export_lines(platform: str, shop: str) -> list[str]:
    lines = []
    for path in EXPORTS[platform]:
        for event in export_events(platform, read_orders(path.read_text(encoding="utf-8")), shop_id=shop):
            lines.append(json.dumps(event_to_dict(event), ensure_ascii=False))
    return lines


def write_history(name: str, path: Path) -> Path:
    """Write history ``name`` as JSON Lines: mostly in time order, some events late, some twice."""
    platform, shop, currency, start, customers, seed = HISTORIES[name]
    lines = [json.dumps(d, ensure_ascii=False) for d in generate(customers, seed=seed, start=start, days=500,
                                                                    shop=shop, currency=currency)]
    lines += _export_lines(platform, shop)  # orders from the store's own export, dated before the rest
    rng = random.Random(seed)
    for _ in range(len(lines) // 50):  # a webhook delivered late, and one re-delivered a while after
        i = rng.randrange(len(lines))
        lines.insert(min(len(lines), i + rng.randrange(1, 400)), lines.pop(i))
        j = rng.randrange(len(lines))
        lines.insert(min(len(lines), j + rng.randrange(1, 400)), lines[j])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def explained_customers(name: str) -> list[str]:
    """Customers whose explanation is compared: a referrer, a Hebrew name, and a few more."""
    platform, shop, currency, start, customers, seed = HISTORIES[name]
    first = 7_000_000_001
    return [str(first + n) for n in (0, 17, 250, 999)]


def rules():
    """The shipped packs with the sample store's referral key, so friends' orders convert."""
    from plugin.engine.ruleset import for_shop
    from plugin.rulefile import load_rules
    from plugin.sample_history import SAMPLE_REFERRAL_KEY

    return for_shop(load_rules(), SAMPLE_REFERRAL_KEY)


def renderer():
    from plugin.mail.preview import touch_renderer
    from plugin.rulefile import RULES_DIR, read_templates

    return touch_renderer(read_templates(RULES_DIR / "templates"))


if __name__ == "__main__":  # writes the golden reports (made in memory, before simulate streamed)
    import sys
    import tempfile

    from plugin.cli.replay import format_report
    from plugin.explain import explain
    from plugin.simulate import read_events, simulate, time_ordered

    ruleset = rules()
    with tempfile.TemporaryDirectory() as tmp:
        for name in HISTORIES:
            history = write_history(name, Path(tmp) / f"{name}.jsonl")
            with history.open(encoding="utf-8") as f:
                events = time_ordered(read_events(f))
            report = simulate(events, ruleset, render=renderer())
            explained = {c: explain(events, ruleset, c) for c in explained_customers(name)}
            golden = {"report": report.to_dict(), "table": format_report(report), "explain": explained}
            (GOLDEN / f"{name}.json").write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n",
                                                 encoding="utf-8")
            print(name, len(events), "events", file=sys.stderr)
