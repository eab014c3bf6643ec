"""Finding customers by the number a text message came from.

A store keeps phone numbers as typed: E.164 (``+972541234567``), national (``054-123-4567``),
with spaces or Arabic-Indic digits. Twilio names the sender in E.164. The customers table keeps
the last digits of each customer's number (``phone_key``, indexed), which do not depend on how
the number was written; the few candidates that share them are confirmed by parsing their stored
number as a number of the sender's country (``phonenumbers``), so a national number matches too.
"""
from __future__ import annotations

from typing import Any, Mapping

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

#: Digits kept in the key: no country's subscriber numbers are shorter in practice, so a national
#: and an international form of one number share them.
KEY_DIGITS = 7


def phone_key(raw: str | None) -> str | None:
    """The index key of a stored number (its last KEY_DIGITS digits); None when it has fewer."""
    if not raw:
        return None
    digits = phonenumbers.normalize_digits_only(raw)
    return digits[-KEY_DIGITS:] if len(digits) >= KEY_DIGITS else None


def state_key(state: Mapping[str, Any] | None) -> str | None:
    """The key of a stored customer state (``state_to_dict``'s ``sms_phone``)."""
    return phone_key((state or {}).get("sms_phone"))


def e164(raw: str | None, region: str | None = None) -> str | None:
    """``raw`` in E.164 when it can be a number (national forms read as numbers of ``region``).
    A possible number, not a known-valid one: a number a customer texts from exists, whatever
    the library's range tables (which lag behind new allocations) say."""
    if not raw:
        return None
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException:
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164) if phonenumbers.is_possible_number(number) else None


def region_of(number: str) -> str | None:
    """The country (ISO 3166 alpha-2) of an E.164 number, or None."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number, None))
    except NumberParseException:
        return None


def same_number(stored: str | None, sender: str) -> bool:
    """Whether the number a store holds is the E.164 ``sender``."""
    wanted = e164(sender)
    return wanted is not None and e164(stored, region_of(wanted)) == wanted
