"""What happened in the demo: gathered from the ledger, the store sandbox, the SMTP sink's outbox
and the storefront's deliveries, then printed as plain text."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import select

from plugin.db import DecisionRow, EffectRow, TimerRow
from plugin.events import parse_time

#: Suppression reasons in the order the engine's gates apply them (see plugin/engine/decide.py).
REASONS = ("consent", "holdout", "priority", "cap", "limit", "cancelled")
EXAMPLES = 3


def gather(session, *, t0: datetime, stores, sandbox, outbox: list[dict], storefront, dead_letters: dict,
           texts: list[dict] = ()) -> list[dict]:
    """One dict per store: webhooks, coupons, tags, emails, texts (from the SMS sink's outbox),
    suppressions, failures."""
    shops = []
    for store in stores:
        people = [p for p in storefront.people.values() if p.platform == store.platform]
        names = {p.id: p.name for p in people} | {p.email: p.name for p in people}
        decisions = {d.key: d for d in session.scalars(select(DecisionRow).where(DecisionRow.shop_id == store.shop_id))}
        effects = session.scalars(select(EffectRow).where(EffectRow.shop_id == store.shop_id)).all()

        def day(key: str) -> int:
            d = decisions.get(key)
            return int((parse_time(d.decision["at"]) - t0).total_seconds() // 86400) if d else -1

        def who(customer_id: str) -> str:
            return names.get(customer_id, customer_id)

        by_code = {e.coupon_code.lower(): e for e in effects if e.type == "coupon" and e.coupon_code}
        coupons = []
        for c in sandbox.coupons:
            if c["platform"] != store.platform:
                continue
            eff = by_code.get(c["code"].lower())
            d = decisions.get(eff.decision_key) if eff else None
            coupons.append({
                "day": day(eff.decision_key) if eff else -1, "code": c["code"], "rule": d.rule_id if d else "?",
                "customer": who(d.customer_id) if d else "?", "discount": c["discount"], "minimum": c["minimum"],
                "for": ", ".join(who(x.strip()) for x in c["for"].split(",")) if c["for"] != "anyone" else "anyone",
                "expires": (c["ends_at"] or "")[:10],
            })
        # a shop's touches run side by side: within a day, in an order that does not depend on which came first
        coupons.sort(key=lambda c: (c["day"], c["rule"], c["customer"], c["discount"], c["expires"]))

        by_message = {e.message_id: e for e in effects if e.type == "email" and e.message_id}
        emails = []
        for m in outbox:
            eff = by_message.get(m["message_id"])
            if eff is None:
                continue
            emails.append({"day": day(eff.decision_key), "to": ", ".join(m["to"]), "subject": m["subject"],
                           "rule": decisions[eff.decision_key].rule_id if eff.decision_key in decisions else "?"})
        emails.sort(key=lambda e: (e["day"], e["to"], e["subject"], e["rule"]))
        by_sid = {e.message_id: e for e in effects if e.type == "sms" and e.message_id}
        sent_texts = [{"day": day(eff.decision_key), "to": who(eff.customer_id), "number": m["to"], "body": m["body"],
                       "segments": eff.segments, "rule": decisions[eff.decision_key].rule_id
                       if eff.decision_key in decisions else "?"}
                      for m in texts if (eff := by_sid.get(m["sid"])) is not None]
        sent_texts.sort(key=lambda t: (t["day"], t["to"], t["rule"]))

        suppressed = {r: [] for r in REASONS}
        for d in decisions.values():
            if d.kind == "suppressed" and d.reason in suppressed and not (d.reason == "cap" and _was_deferred(d)):
                suppressed[d.reason].append({"key": d.key, "rule": d.rule_id, "customer": who(d.customer_id),
                                             "day": day(d.key), "detail": d.detail})
        # A touch the frequency cap deferred is replaced in the ledger when it goes out; its
        # deferral timer remains, and says when.
        timers = session.scalars(select(TimerRow).where(TimerRow.shop_id == store.shop_id)).all()
        seen_cap = {s["key"] for s in suppressed["cap"]}
        for t in timers:
            if (t.event.get("data") or {}).get("kind") != "deferred":
                continue
            key = t.key.rsplit(":deferred:", 1)[0]
            d = decisions.get(key)
            if key in seen_cap or d is None:
                continue
            seen_cap.add(key)
            went_out = d.kind == "touch" and d.status == "done"
            wake = int((t.wake_at - t0).total_seconds() // 86400)
            suppressed["cap"].append({
                "key": key, "rule": d.rule_id, "customer": who(d.customer_id), "day": wake,
                "detail": f"frequency cap reached; deferred to day {wake}" + (", then sent" if went_out else ""),
            })
        for items in suppressed.values():  # an order that does not depend on the database's or the lanes'
            items.sort(key=lambda s: (s["day"], s["rule"], s["customer"], str(s.get("detail"))))

        summary = storefront.summary(store.platform)
        shops.append({
            "platform": store.platform, "shop_id": store.shop_id, "domain": store.domain,
            "webhooks": {"sent": summary["sent"], "accepted": summary["accepted"],
                         "duplicates": [d.what for d in summary["duplicates"]],
                         "other": [f"{d.topic} {d.what}: {d.status_code} {d.status}" for d in summary["other"]]},
            "coupons": coupons,
            "tags": {who(cid): sorted(tags) for cid, tags in sandbox.tags[store.platform].items() if tags},
            "emails": emails,
            "texts": sent_texts,
            "suppressed": suppressed,
            "failed": sorted(({"rule": d.rule_id, "customer": who(d.customer_id), "error": d.error}
                              for d in decisions.values() if d.status == "failed"),
                             key=lambda f: (f["rule"], f["customer"], str(f["error"]))),
            "pending": sum(d.status == "pending" for d in decisions.values()),
            "store_calls": {op: n for (platform, op), n in sorted(sandbox.calls.items()) if platform == store.platform},
            "codes_asked_twice": sum(r["platform"] == store.platform for r in sandbox.refused),
            "dead_letters": dead_letters.get(store.shop_id, 0),
        })
    return shops


def _was_deferred(d: DecisionRow) -> bool:
    return "deferred to" in (d.detail or "")


def format_report(report: dict) -> str:
    lines = []
    for shop in report["shops"]:
        title = {"shopify": "Shopify", "woocommerce": "WooCommerce"}[shop["platform"]]
        lines += ["", f"== {title}: {shop['domain']} (shop {shop['shop_id']}) " + "=" * 20]
        w = shop["webhooks"]
        lines.append(f"webhooks: {w['sent']} sent, {w['accepted']} accepted (202), "
                     f"{len(w['duplicates'])} answered 200 \"duplicate\""
                     + (f", {len(w['other'])} other" if w["other"] else ""))
        for what in w["duplicates"]:
            lines.append(f"  duplicate: {what}")
        for what in w["other"]:
            lines.append(f"  UNEXPECTED: {what}")

        calls = ", ".join(f"{op} x{n}" for op, n in shop["store_calls"].items())
        lines.append(f"store API calls (sandbox): {calls or 'none'}"
                     + (f"; {shop['codes_asked_twice']} codes asked for twice, answered 'already exists'"
                        if shop["codes_asked_twice"] else ""))
        note = " (WooCommerce keeps codes in lower case)" if shop["platform"] == "woocommerce" else ""
        lines.append(f"coupons created in the store ({len(shop['coupons'])}){note}:")
        rows = [(str(c["day"]), c["code"], c["rule"], c["discount"] + (f", min {c['minimum']}" if c["minimum"] else ""),
                 c["for"] if c["for"] != "anyone" else f"anyone: {c['customer']}'s referral code")
                for c in shop["coupons"]]
        lines += _table(("day", "code", "rule", "discount", "for"), rows)
        if shop["tags"]:
            lines.append("customer tags written to the store: "
                         + "; ".join(f"{who}: {', '.join(tags)}" for who, tags in shop["tags"].items()))

        lines.append(f"emails delivered ({len(shop['emails'])}):")
        lines += _table(("day", "to", "subject"), [(str(e["day"]), e["to"], e["subject"]) for e in shop["emails"]])

        if shop.get("texts"):
            lines.append(f"texts delivered ({len(shop['texts'])}):")
            lines += _table(("day", "to", "segments", "text"),
                            [(str(t["day"]), f"{t['to']} {t['number']}", str(t["segments"]), t["body"]) for t in shop["texts"]])
        total = sum(len(v) for v in shop["suppressed"].values())
        lines.append(f"decisions suppressed ({total}), by reason:")
        for reason, items in shop["suppressed"].items():
            if not items:
                lines.append(f"  {reason:<10} {0:>3}")
                continue
            examples = _examples(items)
            for i, s in enumerate(examples):
                head = f"  {reason:<10} {len(items):>3}" if i == 0 else " " * 16
                lines.append(f"{head}  day {s['day']:>2}  {s['rule']} for {s['customer']}: {s['detail']}")
            if len(items) > len(examples):
                lines.append(" " * 16 + f"  ... and {len(items) - len(examples)} more")
        for f in shop["failed"]:
            lines.append(f"FAILED: {f['rule']} for {f['customer']}: {f['error']}")
        if shop["pending"]:
            lines.append(f"STILL PENDING: {shop['pending']} decisions")
        if shop["dead_letters"]:
            lines.append(f"DEAD-LETTERED: {shop['dead_letters']} backlog entries")
    return "\n".join(lines)


def _table(header: tuple, rows: list[tuple]) -> list[str]:
    """Left-aligned columns (the first, the day, right-aligned), two spaces apart."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for r in [header, *rows]:
        cells = [str(r[0]).rjust(widths[0])] + [str(v).ljust(w) for v, w in zip(r[1:], widths[1:])]
        out.append(("  " + "  ".join(cells)).rstrip())
    return out


def _examples(items: list[dict]) -> list[dict]:
    """Up to EXAMPLES items, preferring different rules."""
    chosen, rules = [], set()
    for s in items:
        if s["rule"] not in rules:
            chosen.append(s)
            rules.add(s["rule"])
    for s in items:
        if len(chosen) >= EXAMPLES:
            break
        if s not in chosen:
            chosen.append(s)
    return sorted(chosen[:EXAMPLES], key=lambda s: s["day"])


def totals(report: dict) -> dict:
    """Counts across both stores (for the summary line and the tests)."""
    out = defaultdict(int)
    for shop in report["shops"]:
        out["coupons"] += len(shop["coupons"])
        out["emails"] += len(shop["emails"])
        out["texts"] += len(shop.get("texts", ()))
        out["suppressed"] += sum(len(v) for v in shop["suppressed"].values())
        out["duplicates"] += len(shop["webhooks"]["duplicates"])
        out["failed"] += len(shop["failed"])
    return dict(out)
