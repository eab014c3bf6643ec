"""The provider interface every SMS provider implements, and the errors they raise.

A provider is one module in ``plugin/sms/`` with a class that takes the shop's settings document
(``Shop.sms``) and the deployment's config, and sends: ``send(to, body) -> message id``. Its
failures are ``SmsError``: ``retryable`` ones (the provider said "later": 429, 5xx, a timeout) go
through the one retry policy (plugin.effects.retry) with the provider's own wait first; the
others give the touch up. ``unsubscribed`` says the recipient opted out at the provider (Twilio's
21610): the customer's SMS consent is withdrawn. A second provider is one module and one line in
``plugin.sms.PROVIDERS``.
"""
from __future__ import annotations

from typing import Protocol

from plugin.errors import DeliveryError


class SmsError(DeliveryError):
    """The provider did not take the message."""

    def __init__(self, message: str, *, retryable: bool, code: str | None = None, status: int | None = None,
                 retry_after: float | None = None, invalid_number: bool = False, unsubscribed: bool = False):
        super().__init__(message, retryable=retryable)
        self.code, self.status, self.retry_after = code, status, retry_after
        self.invalid_number, self.unsubscribed = invalid_number, unsubscribed


class Provider(Protocol):
    def send(self, to: str, body: str) -> str:
        """Send ``body`` to ``to`` (E.164); the provider's message id. SmsError when it is not taken."""
        ...
