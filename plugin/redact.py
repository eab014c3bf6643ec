"""Credentials out of error texts and logs.

Store errors are stored with effects, printed by the CLI and logged by the worker; the URL of a
WooCommerce call over plain http carries the consumer key and the OAuth signature, and library
exceptions quote URLs. ``redact`` is applied where StoreError is built; ``install_log_redaction``
is the safety net for every log record of the process, whichever logger or handler writes it.
"""
from __future__ import annotations

import logging
import re

MASK = "[redacted]"

_PARAMS = re.compile(
    r"(?i)\b(oauth_consumer_key|oauth_signature|oauth_nonce|oauth_token|consumer_key|consumer_secret|access_token"
    r"|refresh_token|client_secret|id_token|subject_token|api_key|apikey|password|passwd|secret|hmac|token)"
    r"(['\"]?\s*[=:]\s*['\"]?)([^&\s'\",;}]+)")
_TOKENS = re.compile(r"\b((?:ck|cs)_[0-9a-f]{16,}|shp(?:at|ss|ca|pa|ua|rt)_[0-9A-Za-z]{8,})\b")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")


def redact(text):
    """``text`` without credentials: secret query parameters, known token shapes, user:password@
    in URLs and Authorization values are masked. Anything that is not a string is returned as is."""
    if not isinstance(text, str) or not text:
        return text
    text = _PARAMS.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _TOKENS.sub(MASK, text)
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    return _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)


_installed = False


def install_log_redaction() -> None:
    """Redact every log record of this process when it is created (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    make = logging.getLogRecordFactory()
    formatter = logging.Formatter()

    def factory(*args, **kwargs):
        record = make(*args, **kwargs)
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(formatter.formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
