"""Platform connectors. Each package exposes the same small interface (see ``base``)."""
from __future__ import annotations

import importlib

PLATFORMS = ("shopify", "woocommerce")


def get(platform: str):
    """The connector object of ``platform`` (a package under connectors/ exporting ``connector``)."""
    if platform not in PLATFORMS:
        raise KeyError(f"unknown platform {platform!r}")
    return importlib.import_module(f"connectors.{platform}").connector
