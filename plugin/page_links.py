"""Personal page links: one page per (shop, customer, touch), reached by ``/p/<token>``.

A token is short enough for a text message (39 characters)::

    <channel letter> <nonce: 22 chars, 128 random bits> <signature: 16 chars>

The nonce is the page row's (``pages.nonce``); the signature is an HMAC-SHA256 of the channel
letter and the nonce under the deployment's secret key (any of KEEPWELL_SECRET_KEY's keys, so a
rotation keeps old links working). A token is good while its row exists, is not revoked, has not
expired and its shop is active; anything else (tampered, unknown, expired, revoked) is the same
404 to whoever asks. Revoking is a time on the row; erasing the customer deletes the row.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import escape
from sqlalchemy import select, update

from plugin.db import PageRow, ShopRow

#: How long a page link works after the touch that made it.
PAGE_DAYS = 90
#: The channel a link was sent on, as the token's first letter ("p": a link shown elsewhere).
CHANNEL_LETTERS = {"email": "e", "sms": "s", None: "p"}
_LETTER_CHANNELS = {v: k for k, v in CHANNEL_LETTERS.items()}
_NONCE_CHARS, _MAC_CHARS = 22, 16
TOKEN_CHARS = 1 + _NONCE_CHARS + _MAC_CHARS


@dataclass(frozen=True)
class Found:
    """A valid token's page and the channel its link went out on."""

    page: PageRow
    channel: str | None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _mac(secret: str, purpose: str, text: str) -> str:
    if not secret:
        raise ValueError("a page secret must not be empty")
    return _b64(hmac.new(secret.encode(), f"keepwell.{purpose}:{text}".encode(), hashlib.sha256).digest())


def token(secret: str, nonce: str, channel: str | None) -> str:
    """The link token of the page ``nonce`` for a message sent on ``channel``."""
    letter = CHANNEL_LETTERS[channel]
    return f"{letter}{nonce}{_mac(secret, 'page', letter + nonce)[:_MAC_CHARS]}"


def csrf_token(secret: str, nonce: str) -> str:
    """What the page's forms carry back: bound to this page, unknown to any other site."""
    return _mac(secret, "page-form", nonce)[:22]


def csrf_ok(secrets_: Sequence[str], nonce: str, given: str | None) -> bool:
    return bool(given) and any(hmac.compare_digest(csrf_token(s, nonce), given or "") for s in secrets_)


def page_for(session, shop_id: str, customer_id: str, touch: str, rule_id: str, now: datetime) -> PageRow:
    """The page of (shop, customer, touch), made on first use; expires PAGE_DAYS after that."""
    row = session.scalar(select(PageRow).where(PageRow.shop_id == shop_id, PageRow.customer_id == customer_id,
                                               PageRow.touch == touch))
    if row is None:
        row = PageRow(shop_id=shop_id, customer_id=customer_id, touch=touch, rule_id=rule_id,
                      nonce=_b64(secrets.token_bytes(16)), created_at=now, expires_at=now + timedelta(days=PAGE_DAYS),
                      answers=[])
        session.add(row)
        session.flush()
    return row


def page_url(session, config, shop_id: str, customer_id: str, touch: str, rule_id: str, channel: str | None,
             now: datetime) -> str:
    """The customer's personal page link for ``touch``, as sent on ``channel`` (email, sms)."""
    row = page_for(session, shop_id, customer_id, touch, rule_id, now)
    return f"{config.app_url}/p/{token(config.secret_key, row.nonce, channel)}"


class LazyPageUrl:
    """``page_url`` in a message's template context: the link, made (and its page stored) only
    when the template shows it, so touches whose messages never link to a page leave no row."""

    __slots__ = ("_make", "_url")

    def __init__(self, make):
        self._make, self._url = make, None

    def __str__(self) -> str:
        if self._url is None:
            self._url = self._make()
        return self._url

    def __html__(self) -> str:
        return str(escape(str(self)))


def lazy_page_url(session, config, shop_id: str, customer_id: str, touch: str, rule_id: str, channel: str | None,
                  now: datetime) -> LazyPageUrl:
    """``page_url`` for a message template (see LazyPageUrl)."""
    return LazyPageUrl(lambda: page_url(session, config, shop_id, customer_id, touch, rule_id, channel, now))


def verify(session, secrets_: Sequence[str], raw: str, now: datetime) -> Found | None:
    """The page a token opens, or None (malformed, tampered, unknown, expired, revoked, shop gone)."""
    if not isinstance(raw, str) or len(raw) != TOKEN_CHARS or raw[0] not in _LETTER_CHANNELS:
        return None
    letter, nonce, mac = raw[0], raw[1:1 + _NONCE_CHARS], raw[1 + _NONCE_CHARS:]
    if not any(hmac.compare_digest(_mac(s, "page", letter + nonce)[:_MAC_CHARS], mac) for s in secrets_):
        return None
    row = session.scalar(select(PageRow).where(PageRow.nonce == nonce))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    shop = session.get(ShopRow, row.shop_id)
    if shop is None or not shop.active:
        return None
    return Found(row, _LETTER_CHANNELS[letter])


def revoke(session, shop_id: str, now: datetime, customer_id: str | None = None) -> int:
    """Revoke the shop's pages (one customer's, or all of them on uninstall); how many."""
    q = update(PageRow).where(PageRow.shop_id == shop_id, PageRow.revoked_at.is_(None))
    if customer_id is not None:
        q = q.where(PageRow.customer_id == customer_id)
    return session.execute(q.values(revoked_at=now)).rowcount
