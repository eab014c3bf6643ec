"""Shopify app installation: the signed install/callback query, the authorization URL, and the
App Bridge session tokens the embedded admin sends (the token endpoint is ``grants.py``).

Everything here is a pure check; the web flow that strings them together is
``connectors/shopify/install.py``. Each check raises a typed ``OAuthError`` whose ``status`` is the
HTTP status to answer with and whose ``reason`` says what was wrong.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from typing import Iterable
from urllib.parse import quote, urlencode

import jwt

from plugin.errors import InstallRefused

#: Where a shop's admin, and the embedded app inside it, is served from (besides the shop's own domain).
SHOPIFY_ADMIN = "https://admin.shopify.com"
#: What Keepwell asks the merchant for: orders and customers to react to, tags and email
#: consent written back to customers, personal discount codes, and products with their
#: collections (order webhooks carry neither collections nor product tags; coupons name
#: collections by handle). A write scope includes its read.
SCOPES = ("read_orders", "read_customers", "write_customers", "write_discounts", "read_products")

#: Shopify's own libraries refuse a signed query whose timestamp is further than this from now.
QUERY_MAX_AGE_S = 90
#: Clock skew tolerated on a session token's exp and nbf (Shopify's libraries allow 10 s).
SESSION_TOKEN_LEEWAY_S = 10

#: A shop's permanent domain. Only myshopify.com: the other suffixes Shopify's libraries accept
#: (shopify.com, myshopify.io, shop.dev) are Shopify's internal and development hosts.
_SHOP_DOMAIN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}\.myshopify\.com")


class OAuthError(InstallRefused):
    """An install request, OAuth callback or session token was refused."""


class InvalidShopDomain(OAuthError):
    status = 400


class InvalidHmac(OAuthError):
    status = 401


class StaleRequest(InvalidHmac):
    """The signed query is older (or newer) than QUERY_MAX_AGE_S: possibly a replay."""


class SessionTokenError(OAuthError):
    status = 401


class SessionTokenExpired(SessionTokenError):
    pass


# --- shop domains ------------------------------------------------------------------------------

def valid_shop_domain(shop: str | None) -> str | None:
    """``shop`` lower-cased if it is a bare ``NAME.myshopify.com`` domain, else None.

    Nothing else passes: no scheme, port, path, user info or trailing dot, so a URL built as
    ``https://{shop}/...`` always points at Shopify.
    """
    if not isinstance(shop, str):
        return None
    domain = shop.lower()
    return domain if _SHOP_DOMAIN.fullmatch(domain) else None


def require_shop_domain(shop: str | None) -> str:
    """``valid_shop_domain`` or InvalidShopDomain."""
    domain = valid_shop_domain(shop)
    if domain is None:
        raise InvalidShopDomain(f"{shop!r} is not a shop domain of the form NAME.myshopify.com")
    return domain


# --- the signed query of install requests and OAuth callbacks ---------------------------------

def _form_encode(value: str) -> str:
    # What a browser's URLSearchParams writes (Shopify signs that form): space as %20, and only
    # letters, digits and * - . _ left as they are.
    return quote(value, safe="*").replace("~", "%7E")


def query_message(params) -> str:
    """The string Shopify signs: every parameter but ``hmac`` and ``signature``, sorted by name,
    percent-encoded, joined as ``k=v&...``. A repeated parameter's values are joined by commas."""
    if hasattr(params, "getlist"):  # a MultiDict (Flask's request.args)
        items = {k: ",".join(params.getlist(k)) for k in params.keys()}
    else:
        items = {k: v if isinstance(v, str) else ",".join(v) for k, v in dict(params).items()}
    pairs = sorted((k, v) for k, v in items.items() if k not in ("hmac", "signature"))
    return "&".join(f"{_form_encode(k)}={_form_encode(v)}" for k, v in pairs)


def query_hmac(params, secret: str) -> str:
    """The hex HMAC-SHA256 of ``params`` with ``secret``, as Shopify computes it."""
    return hmac.new(secret.encode(), query_message(params).encode(), hashlib.sha256).hexdigest()


def verify_query_hmac(params, secrets: Iterable[str], now: float) -> None:
    """Raise InvalidHmac unless ``params`` carry Shopify's ``hmac`` made with one of ``secrets``
    (the current client secret and, during a rotation, the old one), and StaleRequest unless
    their ``timestamp`` is within QUERY_MAX_AGE_S of ``now`` (Unix seconds)."""
    given = params.get("hmac")
    if not given:
        raise InvalidHmac("the request carries no hmac parameter")
    keys = [s for s in secrets if s]
    if not keys:
        raise InvalidHmac("no Shopify client secret is configured (SHOPIFY_API_SECRET)")
    given_bytes = given.strip().lower().encode()
    matched = False
    for secret in keys:  # no early exit: the time taken says nothing about which secret matched
        matched |= hmac.compare_digest(query_hmac(params, secret).encode(), given_bytes)
    if not matched:
        raise InvalidHmac("the hmac parameter does not match the query signed with the app's client secret")
    try:
        timestamp = int(params.get("timestamp") or "")
    except ValueError:
        raise StaleRequest("the request carries no valid timestamp parameter") from None
    if abs(now - timestamp) > QUERY_MAX_AGE_S:
        raise StaleRequest(f"the request's timestamp is {int(now - timestamp)} s from now "
                           f"(at most {QUERY_MAX_AGE_S} s allowed): start the installation again")


# --- the authorization-code grant --------------------------------------------------------------

def authorize_url(shop: str, api_key: str, scopes: Iterable[str], redirect_uri: str, state: str) -> str:
    """Where to send the merchant to approve the app. No ``grant_options[]``: an offline token,
    which the worker needs because it calls the shop with nobody logged in."""
    shop = require_shop_domain(shop)
    query = urlencode({"client_id": api_key, "scope": ",".join(scopes), "redirect_uri": redirect_uri,
                       "state": state})
    return f"https://{shop}/admin/oauth/authorize?{query}"


# --- App Bridge session tokens -----------------------------------------------------------------

def decode_session_token(token: str, api_key: str, secrets: Iterable[str], now: float) -> str:
    """The shop domain an App Bridge session token was issued for; SessionTokenError otherwise.

    HS256 only, signed with one of ``secrets``; ``aud`` must be ``api_key``; ``exp`` and ``nbf``
    hold at ``now`` (Unix seconds) within SESSION_TOKEN_LEEWAY_S; ``dest`` must be
    ``https://NAME.myshopify.com`` and ``iss`` that URL plus ``/admin``.
    """
    if not api_key:
        raise SessionTokenError("no Shopify API key is configured (SHOPIFY_API_KEY)")
    try:
        alg = jwt.get_unverified_header(token).get("alg")
    except jwt.PyJWTError as exc:
        raise SessionTokenError(f"the session token is not a JWT: {exc}") from None
    if alg != "HS256":
        raise SessionTokenError(f"session tokens are signed with HS256, not {alg!r}")
    claims = None
    for secret in (s for s in secrets if s):
        try:
            # The clock checks are ours (below), against the injected ``now``.
            claims = jwt.decode(token, secret, algorithms=["HS256"], options={
                "verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False,
                "verify_iss": False, "verify_sub": False, "verify_jti": False})
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise SessionTokenError(f"the session token cannot be read: {exc}") from None
    if claims is None:
        raise SessionTokenError("the session token is not signed with the app's client secret")
    if claims.get("aud") != api_key:
        raise SessionTokenError(f"the session token is for another app (aud {claims.get('aud')!r})")
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not _number(exp) or not _number(nbf):
        raise SessionTokenError("the session token has no numeric exp and nbf")
    if now > exp + SESSION_TOKEN_LEEWAY_S:
        raise SessionTokenExpired(f"the session token expired {int(now - exp)} s ago: fetch a fresh one")
    if now < nbf - SESSION_TOKEN_LEEWAY_S:
        raise SessionTokenError(f"the session token is not valid for another {int(nbf - now)} s")
    dest, iss = claims.get("dest"), claims.get("iss")
    shop = valid_shop_domain(dest.removeprefix("https://")) if isinstance(dest, str) and dest.startswith("https://") else None
    if shop is None or dest != f"https://{shop}":
        raise SessionTokenError(f"the session token's dest {dest!r} is not https://NAME.myshopify.com")
    if iss != f"{dest}/admin":
        raise SessionTokenError(f"the session token's iss {iss!r} is not {dest}/admin")
    return shop


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
