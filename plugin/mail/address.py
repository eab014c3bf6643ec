"""Recipient addresses: exactly one valid address, or a reason why not.

Addresses come from store data that customers typed. A line break would inject headers, a comma or
a display name would add recipients: such an address is refused before any effect of the touch
runs. email-validator checks the syntax only (no DNS lookups on the worker's hot path).
"""
from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from plugin.errors import KeepwellError


class AddressError(KeepwellError, ValueError):
    """An email address is not exactly one valid address; ``reason`` says why."""

    def __init__(self, address, reason: str):
        self.address = address
        self.reason = reason
        super().__init__(f"{address!r} is not one valid email address: {reason}")


def recipient(address) -> str:
    """``address`` normalised (domain lower-cased) when it is exactly one valid address; AddressError otherwise."""
    if not isinstance(address, str):
        raise AddressError(address, f"expected text, got {type(address).__name__}")
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise AddressError(address, str(exc)) from None
