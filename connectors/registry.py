"""Which platforms Keepwell serves, and the package that owns each one.

A platform is one package under ``connectors/`` whose ``connector`` object implements the
interfaces of ``connectors.interfaces``; the enum below is the one list of them. A third
platform is its package plus one line in ``Platform``. ``register`` adds a platform whose
package lives elsewhere (an extension), under a name of its own.
"""
from __future__ import annotations

import importlib
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connectors.interfaces import Connector


class Platform(StrEnum):
    """Every platform Keepwell ships; the value names the shop's platform and its package."""

    SHOPIFY = "shopify"
    WOOCOMMERCE = "woocommerce"


_extra: dict[str, "Connector"] = {}  # registered at run time: name -> connector
_loaded: dict[str, "Connector"] = {}


def register(name: str, connector: "Connector") -> None:
    """Serve the platform ``name`` with ``connector`` (an object implementing the interfaces)."""
    if name in {p.value for p in Platform} or not name.isidentifier() or name != name.lower():
        raise ValueError(f"{name!r} cannot name another platform")
    _extra[name] = connector


def unregister(name: str) -> None:
    """Stop serving a platform added with ``register``."""
    _extra.pop(name, None)


def platforms() -> list[str]:
    """The names of every platform served, shipped ones first."""
    return [p.value for p in Platform] + list(_extra)


def get(platform: str) -> "Connector":
    """The connector of ``platform``; KeyError for a platform Keepwell does not serve."""
    if platform in _extra:
        return _extra[platform]
    found = _loaded.get(platform)
    if found is None:
        try:
            name = Platform(platform).value
        except ValueError:
            raise KeyError(f"unknown platform {platform!r}: use one of {', '.join(platforms())}") from None
        found = _loaded[name] = importlib.import_module(f"connectors.{name}").connector
    return found
