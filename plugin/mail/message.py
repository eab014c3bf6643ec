"""Build the MIME message: text and HTML alternatives, stable Message-ID, one-click unsubscribe."""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, parseaddr

from markupsafe import escape

from plugin.mail.render import Rendered

_VERBATIM = frozenset({"list-unsubscribe"})


class _MailPolicy(EmailPolicy):
    """The default policy, except that List-Unsubscribe is never folded into encoded words:
    the stdlib encodes an over-long URL as =?utf-8?q?...?=, which mail clients cannot follow."""

    def _verbatim(self, name, value) -> str:
        return f"{name}: {f',{self.linesep} '.join(str(value).split(', '))}{self.linesep}"

    def fold(self, name, value):
        if name.lower() in _VERBATIM:
            return self._verbatim(name, value)
        return super().fold(name, value)

    def fold_binary(self, name, value):
        if name.lower() in _VERBATIM:
            return self._verbatim(name, value).encode("ascii")
        return super().fold_binary(name, value)


# 7bit: bodies go out as quoted-printable or base64, so relays without 8BITMIME take them too
_POLICY = _MailPolicy(cte_type="7bit")


def message_id(key: str, domain: str) -> str:
    """The Message-ID for an action key: stable, so a retried send has the same id."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def _address(value) -> Address | str:
    if isinstance(value, tuple):
        name, addr = value
        # customer names come from store data: no line breaks or odd spacing in a header
        return Address(display_name=" ".join((name or "").split()), addr_spec=addr)
    return value


def with_postal_address(rendered: Rendered, postal_address: str | None) -> Rendered:
    """``rendered`` with the shop's postal address in its footer: a template that does not show
    it (an edited one, say) gets it appended, so no marketing email goes out without it."""
    if not postal_address:
        return rendered
    text, html = rendered.text, rendered.html
    if postal_address not in text:
        text = f"{text.rstrip()}\n{postal_address}\n"
    escaped = str(escape(postal_address))  # as the templates' autoescape writes it
    if escaped not in html:
        footer = f'<p style="font-size: 12px; color: #777;">{escaped}</p>'
        at = html.lower().rfind("</body>")
        html = f"{html[:at]}{footer}\n{html[at:]}" if at >= 0 else f"{html}\n{footer}"
    return Rendered(rendered.subject, html, text)


def build_message(rendered: Rendered, to_addr, from_addr: str, message_id_key: str, unsubscribe_url: str,
                  unsubscribe_mailto: str | None = None, date: datetime | None = None,
                  reply_to: str | None = None) -> EmailMessage:
    """A multipart/alternative (text, then HTML) UTF-8 message with one-click unsubscribe headers.

    ``to_addr`` is an address string, an ``Address`` or a ``(display name, email)`` tuple.
    """
    links = [unsubscribe_url] + ([unsubscribe_mailto] if unsubscribe_mailto else [])
    if not unsubscribe_url.startswith("https://") and not unsubscribe_url.startswith("http://"):
        raise ValueError(f"unsubscribe_url must be an http(s) URL (RFC 8058), got {unsubscribe_url!r}")
    if unsubscribe_mailto and not unsubscribe_mailto.startswith("mailto:"):
        raise ValueError(f"unsubscribe_mailto must be a mailto: URI, got {unsubscribe_mailto!r}")
    if not all(link.isascii() and "," not in link and not any(c.isspace() for c in link) for link in links):
        raise ValueError("unsubscribe links must be ASCII URIs without spaces or commas (percent-encode them)")
    domain = parseaddr(from_addr)[1].rpartition("@")[2] or "localhost"
    msg = EmailMessage(policy=_POLICY)
    msg["Subject"] = rendered.subject
    msg["From"] = from_addr
    msg["To"] = _address(to_addr)
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Date"] = format_datetime(date or datetime.now(timezone.utc))
    msg["Message-ID"] = message_id(message_id_key, domain)
    msg["List-Unsubscribe"] = ", ".join(f"<{link}>" for link in links)
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg
