"""Platform connectors: one package per platform, found through ``connectors.registry``."""
from __future__ import annotations

from connectors.registry import Platform, get, platforms, register

__all__ = ["Platform", "get", "platforms", "register"]
