"""Email: render a rule's template, build the MIME message, sign unsubscribe links, send over SMTP.

The worker calls these in order for an ``email`` action::

    ctx = email_context(state, coupon_action, shop, unsubscribe_url, referral_link)
    rendered = render(action["template"], action["subject"], ctx)
    msg = build_message(rendered, (name, action["to"]), mail_from, action["key"], unsubscribe_url)
    message_id = send(msg, smtp_url)

The Message-ID is derived from the action key, so a retried send carries the same id; recording
it in the ledger (and not sending twice) is the worker's job.
"""

from plugin.mail.address import AddressError, recipient
from plugin.mail.context import email_context, format_date, format_money
from plugin.mail.message import build_message, message_id, with_postal_address
from plugin.mail.render import TEMPLATES_DIR, Rendered, TemplateError, render
from plugin.mail.smtp import SMTPServer, parse_smtp_url, send
from plugin.mail.unsubscribe import UnsubscribeTokenError, unsubscribe_token, verify_unsubscribe_token

__all__ = [
    "TEMPLATES_DIR", "AddressError", "Rendered", "SMTPServer", "TemplateError", "UnsubscribeTokenError", "build_message",
    "email_context", "format_date", "format_money", "message_id", "parse_smtp_url", "recipient", "render", "send",
    "unsubscribe_token", "verify_unsubscribe_token", "with_postal_address",
]
