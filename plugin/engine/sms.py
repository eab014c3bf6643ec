"""Text messages, the pure part: segments and their price, the shop's SMS settings, numbers in
E.164, and quiet hours in the customer's time zone. No I/O, no clock (phonenumbers' and the time
zone database's tables are static data).

Segments (3GPP TS 23.038, as Twilio bills them): a message written only in the GSM-7 alphabet
takes 160 characters in one segment, 153 per segment once split (the rest is the concatenation
header); the extension characters (``^{}\\[~]|€`` and form feed) take two. Any other character
(Hebrew, emoji, most accented letters) makes the whole message UCS-2: 70 code units in one
segment, 67 per part, a character outside the Basic Multilingual Plane (most emoji) taking two.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_zones

from plugin.events import CHANNELS

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


class Segments(NamedTuple):
    encoding: str  # GSM-7 | UCS-2
    units: int  # septets (GSM-7) or 16-bit code units (UCS-2)
    parts: int  # segments billed (0 for an empty message)


def segments(text: str) -> Segments:
    """How many segments ``text`` is sent (and billed) as."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        units, single, part, encoding = sum(2 if c in GSM7_EXTENSION else 1 for c in text), 160, 153, "GSM-7"
    else:
        units, single, part, encoding = sum(2 if ord(c) > 0xFFFF else 1 for c in text), 70, 67, "UCS-2"
    if units == 0:
        return Segments(encoding, 0, 0)
    return Segments(encoding, units, 1 if units <= single else -(-units // part))


@dataclass(frozen=True, slots=True)
class SmsSettings:
    """A shop's SMS settings in its rule set (``settings: sms:``)."""

    quiet_start: time = time(20, 0)  # texts wait from this local time ...
    quiet_end: time = time(9, 0)  # ... until this one, in the customer's time zone
    time_zone: str = "UTC"  # the shop's: for numbers whose zone is not known for sure
    region: str | None = None  # the shop's country (ISO 3166 alpha-2): numbers written without +country
    price_per_segment: Decimal = Decimal("0.0079")  # what the provider charges per segment (Twilio US list price)
    price_currency: str = "USD"
    channels: tuple[str, ...] = CHANNELS  # the shop's default order for ``channel: preferred``

    def cost(self, parts: int) -> Decimal:
        return self.price_per_segment * parts


def _clock(value: str) -> time:
    """'09:00' -> 09:00 (ValueError for anything else)."""
    hours, _, minutes = value.strip().partition(":")
    if not (hours.isdigit() and (minutes or "0").isdigit()):
        raise ValueError(value)
    return time(int(hours) % 24, int(minutes or 0))


def parse_settings(value: dict[str, Any], path: tuple[Any, ...], report: Callable[[tuple[Any, ...], str], None]) -> SmsSettings:
    """The ``sms:`` block of a rule set's settings; problems reported at their path."""
    s = SmsSettings()
    kw: dict[str, Any] = {}
    if "send_between" in value:
        start, _, end = str(value["send_between"]).partition("-")
        try:
            kw["quiet_end"], kw["quiet_start"] = _clock(start), _clock(end)
        except ValueError:
            report(path + ("send_between",), f"send_between {value['send_between']!r}: write it as 09:00-20:00")
    if "time_zone" in value:
        try:
            ZoneInfo(str(value["time_zone"]))
            kw["time_zone"] = str(value["time_zone"])
        except (ZoneInfoNotFoundError, ValueError):
            report(path + ("time_zone",), f"time_zone {value['time_zone']!r} is not a time zone name (e.g. Asia/Jerusalem)")
    if "region" in value:
        kw["region"] = str(value["region"]).upper()
    if "price_per_segment" in value:
        amount, _, currency = str(value["price_per_segment"]).strip().partition(" ")
        try:
            kw["price_per_segment"] = Decimal(amount)
            if not kw["price_per_segment"].is_finite() or kw["price_per_segment"] < 0:
                raise InvalidOperation
        except InvalidOperation:
            report(path + ("price_per_segment",), f"price_per_segment {value['price_per_segment']!r}: write it as 0.0079 USD")
            kw.pop("price_per_segment", None)
        kw["price_currency"] = currency.strip().upper() or s.price_currency
    if "channels" in value:
        kw["channels"] = tuple(value["channels"])
    return SmsSettings(**{**{f: getattr(s, f) for f in s.__slots__}, **kw})


def e164(raw: str | None, region: str | None = None) -> str | None:
    """``raw`` as an E.164 number (+972525551234), read with ``region`` when it has no +country;
    None when it is not a valid number."""
    if not raw:
        return None
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def customer_zone(phone: str | None, settings: SmsSettings) -> ZoneInfo:
    """The customer's time zone: their number's, when it has exactly one (Israel, most countries,
    a US area code), else the shop's."""
    number = e164(phone, settings.region)
    if number is not None:
        zones = phone_zones.time_zones_for_number(phonenumbers.parse(number))
        if len(zones) == 1 and zones[0] != "Etc/Unknown":
            try:
                return ZoneInfo(zones[0])
            except ZoneInfoNotFoundError:
                pass
    return ZoneInfo(settings.time_zone)


def quiet_until(now: datetime, phone: str | None, settings: SmsSettings) -> datetime | None:
    """None when a text may go out at ``now``; else the moment (UTC-aware, as ``now``) it may:
    the end of the quiet hours in the customer's time zone."""
    zone = customer_zone(phone, settings)
    local = now.astimezone(zone)
    start, end = settings.quiet_start, settings.quiet_end
    t = local.time().replace(tzinfo=None)
    quiet = (start <= t or t < end) if start > end else (start <= t < end)
    if not quiet:
        return None
    day = local.date() if t < end else local.date() + timedelta(days=1)
    wake = datetime.combine(day, end, tzinfo=zone)
    return wake.astimezone(now.tzinfo)


def channel_open(state: Any, channel: str) -> bool:
    """Whether the customer may get marketing on ``channel`` (their consent for it)."""
    if channel == "sms":
        return bool(state.sms_consent)
    return bool(state.accepts_marketing)


__all__ = ["Segments", "SmsSettings", "segments", "parse_settings", "e164", "customer_zone", "quiet_until",
           "channel_open", "GSM7_BASIC", "GSM7_EXTENSION"]
