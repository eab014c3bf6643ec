"""Twilio's Messaging REST API: ``POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`` with
HTTP Basic auth (Account SID, auth token) and the form fields ``To``, ``From`` (a number) or
``MessagingServiceSid`` (MG…), and ``Body``. Twilio answers 201 with the Message resource (its
``sid`` is the message id), or an error document ``{"code", "message", "more_info", "status"}``
(https://www.twilio.com/docs/messaging/api/message-resource, https://www.twilio.com/docs/errors).

Permanent: 21211 (the To number is not valid), 21610 (the recipient replied STOP to this sender:
no message reaches them until they reply START), and any other 4xx. Later: 429 (and Twilio's
20429), 5xx and network failures, honouring Retry-After. The base URL is the deployment's
``KEEPWELL_TWILIO_API_URL`` (default https://api.twilio.com), so the local sink serves demos and tests.
"""
from __future__ import annotations

from typing import Any, Mapping

import requests

from plugin.sms.provider import SmsError

TIMEOUT = 15  # seconds
INVALID_TO, UNSUBSCRIBED, TOO_MANY = 21211, 21610, 20429


def _retry_after(response: requests.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


class Twilio:
    def __init__(self, settings: Mapping[str, Any], config: Any):
        self.sid, self.token, self.sender = settings["account_sid"], settings["auth_token"], settings["from"]
        self.url = f"{config.twilio_api_url.rstrip('/')}/2010-04-01/Accounts/{self.sid}/Messages.json"

    def send(self, to: str, body: str) -> str:
        sender = {"MessagingServiceSid" if self.sender.startswith("MG") else "From": self.sender}
        try:
            response = requests.post(self.url, data={"To": to, **sender, "Body": body},
                                     auth=(self.sid, self.token), timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise SmsError(f"Twilio did not answer: {type(exc).__name__}", retryable=True) from None
        if response.status_code in (200, 201):
            try:
                return str(response.json()["sid"])
            except (ValueError, KeyError, TypeError):
                raise SmsError(f"Twilio answered {response.status_code} without a message sid", retryable=False) from None
        raise _error(response)


def _error(response: requests.Response) -> SmsError:
    try:
        doc = response.json()
        code, message = doc.get("code"), str(doc.get("message") or "")
    except (ValueError, AttributeError):
        code, message = None, response.text[:200]
    status = response.status_code
    text = f"Twilio {status}" + (f" (error {code})" if code else "") + (f": {message}" if message else "")
    retryable = status == 429 or status >= 500 or code == TOO_MANY
    return SmsError(text, retryable=retryable, code=str(code) if code else None, status=status,
                    retry_after=_retry_after(response), invalid_number=code == INVALID_TO,
                    unsubscribed=code == UNSUBSCRIBED)
