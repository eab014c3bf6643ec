"""The dashboard's API page: the shop's key for ``POST /api/v1/events`` (its own events, for
rules with ``trigger: {event: custom.…}``), and rotating it. A key is shown once, when made:
only its last characters are kept (plugin.api_keys)."""
from __future__ import annotations

from flask import g, request

from plugin import api_keys
from plugin.admin import bp
from plugin.admin.security import check_csrf, edge, render, shop_page


@bp.route("/api", methods=["GET", "POST"])
@shop_page
def api():
    new_key = None
    if request.method == "POST":
        check_csrf()
        with edge().sessions.begin() as s:
            new_key = api_keys.rotate(s, edge().config, g.shop_id)
    with edge().sessions() as s:
        current = api_keys.describe(s, edge().config, g.shop_id)
    return render("admin/api.html", current=current, new_key=new_key, endpoint=f"{edge().config.app_url}/api/v1/events",
                  per_minute=edge().config.api_events_per_minute, active="api")
