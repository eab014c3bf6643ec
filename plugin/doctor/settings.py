"""Checks on the configuration alone: the secret key, the Shopify app, the public URL."""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from plugin.config import DEV_SECRET_KEY, Config
from plugin.doctor.check import FAIL, MIN_SECRET_KEY_LENGTH, OK, WARN, Check


def check_secret_key(config: Config) -> Check:
    name = "secret key"
    generate = "set KEEPWELL_SECRET_KEY to a long random value, e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
    if config.secret_key == DEV_SECRET_KEY:
        return Check(name, FAIL, "KEEPWELL_SECRET_KEY is not set (the public development key is in use)", generate)
    if DEV_SECRET_KEY in config.secret_keys:
        return Check(name, WARN, "the public development key is still accepted as an old KEEPWELL_SECRET_KEY",
                     "remove it from KEEPWELL_SECRET_KEY once every shop's credentials were saved again with the new key")
    if len(config.secret_key) < MIN_SECRET_KEY_LENGTH:
        return Check(name, WARN, f"KEEPWELL_SECRET_KEY is short ({len(config.secret_key)} of at least {MIN_SECRET_KEY_LENGTH} characters)", generate)
    return Check(name, OK, "KEEPWELL_SECRET_KEY is set")


def check_shopify(config: Config) -> Check:
    name = "shopify app"
    missing = [v for v, value in (("SHOPIFY_API_KEY", config.shopify_api_key),
                                  ("SHOPIFY_API_SECRET", config.shopify_api_secrets)) if not value]
    if missing:
        return Check(name, WARN, f"{' and '.join(missing)} not set",
                     "only needed to install from the Shopify App Store: copy the app's client id and secret "
                     "from the Partner Dashboard (custom-app shops added with `keepwell shop add` work without)")
    return Check(name, OK, "SHOPIFY_API_KEY and SHOPIFY_API_SECRET are set")


def _local_host(host: str) -> str | None:
    """Why stores cannot reach ``host``, or None."""
    if host == "localhost" or host.endswith(".localhost"):
        return "is this machine (localhost)"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.is_loopback or ip.is_unspecified:
        return "is this machine (a loopback address)"
    if ip.is_private or ip.is_link_local:
        return "is a private address"
    return None


def app_url_problem(url: str, platform: str | None = None) -> str | None:
    """Why stores of ``platform`` (any platform when None) cannot deliver to ``url``, or None.
    Shopify calls only https URLs; WooCommerce delivers to http too."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return f"KEEPWELL_APP_URL={url!r} is not a URL"
    if parts.scheme not in ("http", "https"):
        return f"KEEPWELL_APP_URL={url} is not an http(s) URL"
    if parts.scheme != "https" and platform != "woocommerce":
        return f"KEEPWELL_APP_URL={url} is not https (Shopify only calls https URLs)"
    if not host:
        return f"KEEPWELL_APP_URL={url} has no host name"
    why = _local_host(host)
    if why:
        return f"KEEPWELL_APP_URL={url}: {host} {why}, which stores cannot reach"
    return None


def check_app_url(config: Config) -> Check:
    """A public https URL is OK. Plain http is a warning while no Shopify app is configured
    (WooCommerce stores deliver over http) and a failure once one is."""
    name = "app url"
    url = config.app_url
    fix = "set KEEPWELL_APP_URL to this app's public https URL, e.g. https://keepwell.example.com"
    plain = url.lower().startswith("http://")
    problem = app_url_problem(url, None if config.shopify_api_key or not plain else "woocommerce")
    if problem:
        return Check(name, FAIL, problem, fix)
    if plain:
        return Check(name, WARN, f"KEEPWELL_APP_URL={url} is plain http: WooCommerce stores can deliver webhooks "
                                 "to it, but Shopify and WooCommerce's connect page need https", fix)
    return Check(name, OK, f"KEEPWELL_APP_URL={url}")
