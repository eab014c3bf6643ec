"""Platform connectors: one package per platform, found through ``connectors.registry``."""
from __future__ import annotations

from connectors.registry import Platform, get, platforms, register, unregister

__all__ = ["Platform", "get", "platforms", "register", "unregister"]
