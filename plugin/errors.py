"""Keepwell's error hierarchy: every error carries enough context to act on."""
from plugin.redact import redact


class KeepwellError(Exception):
    """Base of every error Keepwell raises on purpose."""


class RuleError(KeepwellError):
    """A rule set failed validation; ``problems`` lists each one with file, line and rule."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class WebhookError(KeepwellError):
    """A webhook was refused; ``status`` is the HTTP status the edge answers with."""

    status = 400

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class InstallRefused(KeepwellError):
    """An install, OAuth callback or store connection was refused: the web app answers the
    merchant ``reason`` in plain text with ``status``. Each platform's install errors derive from it."""

    status = 400

    def __init__(self, reason: str, status: int | None = None):
        self.reason = reason
        if status is not None:
            self.status = status
        super().__init__(reason)


class SignatureError(WebhookError):
    status = 401


class PayloadError(WebhookError):
    status = 400


class EventError(PayloadError, ValueError):
    """A canonical event is malformed (a payload of our own: a timer, a signal, a history line)."""


class PayloadTooLarge(WebhookError):
    status = 413


class UnknownShop(WebhookError):
    status = 404


class BacklogUnavailable(WebhookError):
    """Redis (the backlog) did not answer in time: 503 with Retry-After, so the store delivers again
    later instead of a web worker waiting on Redis."""

    status = 503


class StoreError(KeepwellError):
    """A store API call failed. ``retryable`` errors (429, 5xx, timeouts, throttling) are
    retried with backoff, honouring ``retry_after`` seconds; others fail the decision. The
    message is stored, logged and printed, so credentials in it (a signed URL) are masked here."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None,
                 retry_after: float | None = None, code: str | None = None):
        message = redact(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after
        self.code = code
        super().__init__(message)


class DeliveryError(KeepwellError):
    """An email could not be handed to the SMTP server; ``retryable`` when it may work later."""

    def __init__(self, message: str, *, retryable: bool):
        self.message = message
        self.retryable = retryable
        super().__init__(message)
