"""Secrets at rest: tokens, consumer secrets and webhook secrets are encrypted with Fernet.

The key comes from KEEPWELL_SECRET_KEY; a comma-separated list rotates keys without downtime:
the first encrypts, every one decrypts, and ``rotate`` re-encrypts old values with the first.
"""
from __future__ import annotations

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from plugin.errors import KeepwellError


class SecretError(KeepwellError):
    """A stored secret cannot be decrypted with any configured key."""


def _fernet(keys) -> MultiFernet:
    # Any passphrase works: derive the 32-byte Fernet key from it.
    return MultiFernet([Fernet(base64.urlsafe_b64encode(hashlib.sha256(k.encode()).digest())) for k in keys])


def encrypt(keys, value: dict) -> str:
    return _fernet(keys).encrypt(json.dumps(value).encode()).decode()


def decrypt(keys, token: str) -> dict:
    try:
        return json.loads(_fernet(keys).decrypt(token.encode()))
    except InvalidToken:
        raise SecretError("stored secrets cannot be decrypted: is KEEPWELL_SECRET_KEY (or its old value) set?") from None


def rotate(keys, token: str) -> str:
    """Re-encrypt ``token`` with the newest key."""
    return _fernet(keys).rotate(token.encode()).decode()
