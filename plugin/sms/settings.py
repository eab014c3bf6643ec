"""A shop's SMS provider settings: the secret document kept encrypted with the shop (key ``"sms"``
of its secrets, beside the store credentials) and checked here before it is stored.

Twilio (https://www.twilio.com/docs/messaging/api/message-resource): the Account SID and auth
token authenticate the Messages API with HTTP Basic auth; ``from`` is the sender, either a phone
number in E.164 (``+15017122661``) or a Messaging Service SID (``MG…``), which Twilio takes as
``MessagingServiceSid`` and picks the number itself.
"""
from __future__ import annotations

from typing import Any, Mapping

import jsonschema

PROVIDERS = ("twilio",)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["provider", "account_sid", "auth_token", "from"],
    "properties": {
        "provider": {"enum": list(PROVIDERS)},
        "account_sid": {"type": "string", "pattern": "^AC[0-9a-fA-F]{32}$"},
        "auth_token": {"type": "string", "minLength": 1},
        "from": {"type": "string", "pattern": r"^(\+[1-9][0-9]{6,14}|MG[0-9a-fA-F]{32})$"},
    },
}

_HINTS = {
    "account_sid": "the Account SID starts with AC followed by 32 hexadecimal characters (Twilio Console → Account Info)",
    "from": "the sender is a phone number in international form (+15017122661) or a Messaging Service SID (MG…)",
    "auth_token": "the auth token is empty",
    "provider": f"the provider is one of: {', '.join(PROVIDERS)}",
}


def sms_document(given: Mapping[str, Any]) -> dict[str, Any]:
    """The document to store from ``given`` (empty values left out, ``provider`` defaulting to
    twilio); ValueError says in plain words what is wrong."""
    document = {k: (v.strip() if isinstance(v, str) else v) for k, v in given.items() if v not in ("", None)}
    document.setdefault("provider", "twilio")
    try:
        jsonschema.validate(document, SCHEMA)
    except jsonschema.ValidationError as exc:
        name = exc.path[0] if exc.path else None
        if name is None and exc.validator == "required":
            missing = [k for k in SCHEMA["required"] if k not in document]
            raise ValueError(f"SMS settings: missing {', '.join(missing)}") from None
        raise ValueError(f"SMS settings: {_HINTS.get(str(name), exc.message)}") from None
    return document


def redacted(document: Mapping[str, Any]) -> dict[str, Any]:
    """The document as shown to a merchant: the auth token hidden."""
    return {k: ("…" + str(v)[-4:] if k == "auth_token" else v) for k, v in document.items()}
