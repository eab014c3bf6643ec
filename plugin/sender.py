"""Who a shop's emails come from: sender name and address, reply-to, and the postal address
every marketing email's footer carries (a legal requirement for commercial email).

Each value comes from the first of: the ``sender`` block of the shop's ``settings.yaml`` (set
there or on the dashboard's Sender page), the store's own details (its name, contact email and
address, fetched through the connector and kept a week), and the deployment. The sender
address defaults to the deployment's ``KEEPWELL_MAIL_FROM`` address, never to the shop's own
domain: mail servers refuse, or file as spam, mail from a domain that has not authorised them.
The shop's contact email becomes the Reply-To, so customers' replies still reach the shop.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.utils import parseaddr

import yaml

import connectors
from plugin.db import ShopRow
from plugin.errors import StoreError

log = logging.getLogger("keepwell.sender")

PROFILE_MAX_AGE = timedelta(days=7)
FIELDS = ("name", "address", "reply_to", "postal_address")


@dataclass(frozen=True)
class Sender:
    name: str
    address: str
    reply_to: str | None
    postal_address: str | None
    #: where each value came from: "settings.yaml", "store" or "deployment"
    sources: dict = field(default_factory=dict, compare=False)

    @property
    def from_header(self) -> str:
        """``Name <address>``, quoted where the name needs it (the message encodes non-ASCII)."""
        return str(Address(display_name=self.name, addr_spec=self.address))


def effective(mail_from: str, configured: dict, profile: dict, fallback_name: str) -> Sender:
    """The sender from the shop's ``settings.yaml`` values, then the store's ``profile``, then the
    deployment's ``mail_from``."""
    _, deployment_address = parseaddr(mail_from)
    chosen, sources = {}, {}
    store = {"name": profile.get("name"), "reply_to": profile.get("email"),
             "postal_address": profile.get("postal_address")}
    deployment = {"name": fallback_name, "address": deployment_address or "noreply@localhost"}
    for key in FIELDS:
        for source, values in (("settings.yaml", configured), ("store", store), ("deployment", deployment)):
            if values.get(key):
                chosen[key], sources[key] = " ".join(str(values[key]).split()), source
                break
    reply_to = chosen.get("reply_to")
    if reply_to and reply_to.lower() == chosen["address"].lower():
        reply_to = None  # replies go to the sender anyway
    return Sender(chosen["name"], chosen["address"], reply_to, chosen.get("postal_address"), sources)


def profile(shop, sessions, now: datetime, refresh: bool = False) -> dict:
    """The store's own details (``connector.shop_profile``), kept in the shop's settings for a
    week; the kept copy (or nothing) when the store cannot be asked now."""
    kept = dict(shop.settings.get("profile") or {})
    fetched_at = kept.get("fetched_at")
    if not refresh and fetched_at and now - datetime.fromisoformat(fetched_at) < PROFILE_MAX_AGE:
        return kept
    try:
        found = connectors.get(shop.platform).shop_profile(shop)
    except StoreError as exc:
        log.warning("shop %s: store details not fetched (%s); using %s", shop.id, exc.message,
                    "the kept copy" if kept else "the defaults")
        return kept
    found = {k: v for k, v in found.items() if v} | {"fetched_at": now.isoformat()}
    with sessions.begin() as session:
        row = session.get(ShopRow, shop.id)
        if row is not None:
            row.settings = {**(row.settings or {}), "profile": found}
    return found


def for_shop(rt, shop, ruleset) -> Sender:
    """The sender of the shop's emails under ``ruleset`` (its settings.yaml)."""
    details = profile(shop, rt.sessions, rt.clock())
    if details.get("fetched_at") != (shop.settings.get("profile") or {}).get("fetched_at"):
        rt.forget_shop(shop.id)  # its settings now hold the fetched copy
    return effective(rt.config.mail_from, dict(ruleset.settings.sender), details,
                     shop.settings.get("name") or shop.domain)


# --- settings.yaml: the sender block -------------------------------------------------------------

def with_sender(files: dict[str, str], values: dict) -> dict[str, str]:
    """The rule set's files with the ``sender`` block of its settings set to ``values`` (empty
    values left out, so they come from the store again); the rest of the text, comments
    included, stays as it was. A rule set without a settings block gets one in settings.yaml."""
    block = {k: " ".join(str(values[k]).split()) for k in FIELDS if values.get(k) and str(values[k]).strip()}
    lines = ["  sender:"] + ["    " + yaml.safe_dump({k: v}, allow_unicode=True, width=10_000).strip()
                             for k, v in block.items()] if block else []
    out = dict(files)
    for name, text in files.items():
        if name.startswith("templates/") or not re.search(r"(?m)^settings:\s*(#.*)?$", text):
            continue
        out[name] = _replace_block(text, lines)
        return out
    out["settings.yaml"] = "settings:\n" + "".join(f"{line}\n" for line in lines) if lines else "settings: {}\n"
    return out


def _replace_block(text: str, new: list[str]) -> str:
    rows = text.split("\n")
    start = next(i for i, r in enumerate(rows) if re.match(r"settings:\s*(#.*)?$", r))
    end = next((i for i in range(start + 1, len(rows)) if rows[i].strip() and not rows[i].startswith((" ", "#"))),
               len(rows))
    body = rows[start + 1:end]
    at = next((i for i, r in enumerate(body) if re.match(r"  sender:\s*(#.*)?$", r)), None)
    if at is not None:  # drop the old block: its line and everything indented deeper after it
        stop = next((j for j in range(at + 1, len(body)) if body[j].strip() and not body[j].startswith("   ")), len(body))
        body = body[:at] + body[stop:]
    while body and not body[-1].strip():
        body.pop()
    rest = rows[end:]
    return "\n".join(rows[:start + 1] + body + new + ([""] if rest and rest[0].strip() else []) + rest).rstrip("\n") + "\n"
