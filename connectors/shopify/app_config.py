"""``shopify.app.toml`` for one deployment: the repository's file with its placeholders (the
client id and the example host) replaced by SHOPIFY_API_KEY and KEEPWELL_APP_URL, ready for
``shopify app deploy --config NAME``."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from plugin.config import Config

TEMPLATE = Path(__file__).resolve().parents[2] / "shopify.app.toml"
PLACEHOLDER_CLIENT_ID = 'client_id = "SHOPIFY_API_KEY"'
PLACEHOLDER_URL = "https://keepwell.example.com"


def render(config: Config, template: Path = TEMPLATE) -> str:
    """The deployment's app configuration; ValueError names a setting that is missing or unfit."""
    if not config.shopify_api_key:
        raise ValueError("SHOPIFY_API_KEY (the app's client id) is not set")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", config.shopify_api_key):
        raise ValueError(f"SHOPIFY_API_KEY {config.shopify_api_key!r} is not a client id (letters, digits, - and _)")
    if not re.fullmatch(r"https://[A-Za-z0-9.:\[\]_-]+(/[A-Za-z0-9._~/-]*)?", config.app_url):
        raise ValueError(f"KEEPWELL_APP_URL must be the public https URL of this deployment, not {config.app_url!r}")
    text = template.read_text(encoding="utf-8")
    if PLACEHOLDER_CLIENT_ID not in text:
        raise ValueError(f"{template} has no {PLACEHOLDER_CLIENT_ID} line to fill in")
    text = text.replace(PLACEHOLDER_CLIENT_ID, f'client_id = "{config.shopify_api_key}"')
    text = text.replace(PLACEHOLDER_URL, config.app_url.rstrip("/"))
    tomllib.loads(text)
    return text
