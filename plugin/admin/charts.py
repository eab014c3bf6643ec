"""Numbers and SVG charts for the dashboard pages: formatted figures, and chart geometry the
templates draw (no scripts)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from plugin.analytics import store_kpis


def money(x) -> str:
    return "-" if x is None else f"{Decimal(x):,.2f}"


def pct(x) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def now() -> datetime:
    """The time the dashboard reports up to: the app's KEEPWELL_CLOCK when it has one (the demo's
    clock), else the real time."""
    from flask import current_app, has_app_context

    clock = current_app.config.get("KEEPWELL_CLOCK") if has_app_context() else None
    return clock() if clock is not None else datetime.now(timezone.utc)


def repeat_rate_series(inputs, currency, now: datetime, months: int = 6) -> list[dict]:
    """Repeat purchase rate of all buyers up to the end of each of the last ``months`` months."""
    points = []
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    ends = []
    for i in range(months - 1, -1, -1):
        y, m = first.year, first.month - i
        while m <= 0:
            y, m = y - 1, m + 12
        start = first.replace(year=y, month=m)
        ends.append((start.strftime("%b %Y"), min(now, (start + timedelta(days=32)).replace(day=1))))
    for label, end in ends:
        k = store_kpis([o for o in inputs.orders if o.at < end], currency)
        points.append({"label": label, "rate": k.repeat_purchase_rate})
    return points


def line_chart(points: list[dict], width=560, height=220, pad=40) -> dict:
    """Geometry for a line chart of rates (0..max): points with x, y and their text value."""
    top = max([p["rate"] or 0 for p in points] + [0.05])
    top = min(1.0, (int(top * 10) + 1) / 10)
    inner_w, inner_h = width - 2 * pad, height - 2 * pad
    out = []
    for i, p in enumerate(points):
        x = pad + (inner_w * i / max(1, len(points) - 1))
        y = None if p["rate"] is None else pad + inner_h * (1 - p["rate"] / top)
        out.append({**p, "x": round(x, 1), "y": None if y is None else round(y, 1), "text": pct(p["rate"])})
    path = " ".join(f"{'M' if i == 0 else 'L'}{p['x']},{p['y']}" for i, p in enumerate(q for q in out if q["y"] is not None))
    ticks = [{"y": round(pad + inner_h * (1 - f), 1), "text": f"{top * f * 100:.0f}%"} for f in (0, 0.5, 1)]
    return {"width": width, "height": height, "pad": pad, "points": out, "path": path, "ticks": ticks,
            "bottom": height - pad}


def bar_rows(rows: list[dict], keys: list[str], width=560, label_w=150, bar_h=14) -> dict:
    """Geometry for horizontal grouped bars: one group per row, one bar per key. With
    ``label_w=0`` each group's label sits above its bars, so a long rule name is never cut."""
    top = max([float(r[k]) for r in rows for k in keys] + [1.0])
    scale = (width - label_w - 120) / top  # 120: room for the amount and currency written after the longest bar
    above = 16 if label_w == 0 else 0
    groups, y = [], 10
    for r in rows:
        bars = []
        for j, k in enumerate(keys):
            v = float(r[k])
            bars.append({"key": k, "x": label_w, "y": y + above + j * (bar_h + 2), "w": round(max(v * scale, 1), 1),
                         "h": bar_h, "text": money(r[k])})
        groups.append({"label": r["label"], "y": y, "mid": y + len(keys) * (bar_h + 2) / 2, "bars": bars,
                       "label_y": y + 11})
        y += above + len(keys) * (bar_h + 2) + 14
    return {"width": width, "height": max(y, 40), "label_w": label_w, "above": bool(above), "groups": groups}


def error_bar(diff, width=560, height=90, pad=40) -> dict | None:
    """Geometry for the lift interval (percentage points) around zero."""
    if diff is None:
        return None
    lo, hi, est = diff.low * 100, diff.high * 100, diff.estimate * 100
    span = max(abs(lo), abs(hi), 1.0) * 1.2
    x = lambda v: round(pad + (width - 2 * pad) * (v + span) / (2 * span), 1)  # noqa: E731
    return {"width": width, "height": height, "zero": x(0), "lo": x(lo), "hi": x(hi), "est": x(est), "y": height / 2,
            "lo_text": f"{lo:+.1f}", "hi_text": f"{hi:+.1f}", "est_text": f"{est:+.1f}",
            "left": x(-span), "right": x(span), "left_text": f"{-span:+.1f}", "right_text": f"{span:+.1f}",
            "confidence": round(diff.confidence * 100)}
