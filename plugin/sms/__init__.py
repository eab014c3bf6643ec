"""Text messages: the shop's provider settings (``settings``), the provider interface
(``provider``), Twilio (``twilio``) and the local sink (``sink``). Texts are rendered from their
templates by plugin.mail.text, in the emails' sandbox.

A second provider is one module with a class taking (the shop's settings document, the config)
and sending ``send(to, body) -> message id``, and one line in ``PROVIDERS``; its name is then
allowed in the shop's settings (plugin.sms.settings.PROVIDERS).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from plugin.sms import twilio
from plugin.sms.provider import Provider, SmsError

PROVIDERS: dict[str, Callable[[Mapping[str, Any], Any], Provider]] = {"twilio": twilio.Twilio}


def provider_for(settings: Mapping[str, Any], config: Any) -> Provider:
    """The provider a shop's SMS settings name (``settings["provider"]``), for the deployment's ``config``."""
    maker = PROVIDERS.get(settings.get("provider", "twilio"))
    if maker is None:
        raise SmsError(f"unknown SMS provider {settings.get('provider')!r}", retryable=False)
    return maker(settings, config)


__all__ = ["PROVIDERS", "Provider", "SmsError", "provider_for"]
