"""A small client for the WooCommerce REST API v3: auth by scheme, one error classifier, paging.

No retries and no sleeping here: a retryable StoreError goes back to the worker, which owns
backoff.
"""
from __future__ import annotations

from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Iterator
from urllib.parse import quote, urlencode, urlsplit

import requests

from connectors import safe_http
from connectors.base import Shop
from connectors.woocommerce import oauth
from plugin.errors import StoreError

TIMEOUT = (5, 30)  # connect, read (seconds)
PER_PAGE = 100  # the REST API's maximum
_RETRYABLE = {408, 425, 429}
_session = safe_http.session()  # store URLs are typed in by merchants: public addresses only


def url(shop: Shop, path: str) -> str:
    """The full REST v3 URL of ``path`` (e.g. ``coupons`` or ``customers/25``)."""
    return f"{shop.api_url.rstrip('/')}/wp-json/wc/v3/{path.lstrip('/')}"


def call(shop: Shop, method: str, path: str, *, params: dict | None = None, json: Any = None) -> Any:
    """One request; the decoded JSON body on 2xx, StoreError otherwise."""
    return _send(shop, method, path, params, json)[0]


def pages(shop: Shop, path: str, params: dict | None = None) -> Iterator[dict]:
    """Every item of a paged list endpoint, page by page (``per_page`` 100)."""
    for items, _ in page_lists(shop, path, params):
        yield from items


def page_lists(shop: Shop, path: str, params: dict | None = None) -> Iterator[tuple[list, Any]]:
    """(items, response headers) of each page of a paged list endpoint (``per_page`` 100)."""
    number = 1
    while True:
        items, headers = _list(shop, path, params or {}, number)
        yield items, headers
        total = headers.get("X-WP-TotalPages")
        done = number >= int(total) if total and total.isdigit() else len(items) < PER_PAGE
        if done or not items:
            return
        number += 1


def page(shop: Shop, path: str, params: dict, number: int) -> tuple[list, int | None]:
    """One page (``per_page`` 100) of a list endpoint and the total count the store announces
    (``X-WP-Total``), when it does."""
    items, headers = _list(shop, path, params, number)
    total = headers.get("X-WP-Total")
    return items, int(total) if total and total.isdigit() else None


def _list(shop: Shop, path: str, params: dict, number: int):
    items, headers = _send(shop, "GET", path, {**params, "per_page": PER_PAGE, "page": number}, None)
    if not isinstance(items, list):
        raise StoreError(f"WooCommerce GET {path}: expected a list, got {type(items).__name__}",
                         retryable=False, code="keepwell_unexpected_response")
    return items, headers


def _send(shop: Shop, method: str, path: str, params: dict | None, body: Any):
    target = url(shop, path)
    query = [(k, _param(v)) for k, v in (params or {}).items()]
    auth = None
    if urlsplit(target).scheme == "https":
        auth = (shop.credentials.get("consumer_key", ""), shop.credentials.get("consumer_secret", ""))
    else:  # a real store refuses Basic auth over plain HTTP
        query = oauth.signed_params(method, target, query, shop.credentials.get("consumer_key", ""),
                                    shop.credentials.get("consumer_secret", ""))
    if query:
        # encoded exactly as signed, so the store re-derives the same base string
        target += "?" + urlencode(query, quote_via=quote, safe="")
    try:
        resp = _session.request(method, target, json=body, auth=auth, timeout=TIMEOUT, stream=True,
                                allow_redirects=False, headers={"Accept": "application/json"})
        safe_http.read_capped(resp)
    except safe_http.Refused as exc:
        raise StoreError(f"WooCommerce {method} {path}: refused: {exc}", retryable=False,
                         code="keepwell_refused") from None
    except requests.RequestException as exc:
        raise store_error(method, path, exc=exc) from None  # the exception's URL carries the OAuth signature
    if not 200 <= resp.status_code < 300:
        raise store_error(method, path, resp=resp)
    try:
        return resp.json(), resp.headers
    except ValueError:
        raise StoreError(f"WooCommerce {method} {path}: {resp.status_code} with a body that is not JSON "
                         "(are pretty permalinks on, so /wp-json/ reaches the REST API?)",
                         retryable=False, status=resp.status_code, code="keepwell_not_json") from None


def _param(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def store_error(method: str, path: str, *, resp: requests.Response | None = None,
                exc: Exception | None = None) -> StoreError:
    """The one place that decides whether a failed store call is worth retrying.

    Retry: timeouts, connection errors, 408/425/429 and 5xx (honouring Retry-After).
    Never retry other 4xx: the store said no and will say it again. A redirect is not
    followed (it would turn a POST into a GET) and is reported so the URL can be fixed.
    """
    what = f"WooCommerce {method} {path}"
    if resp is None:
        if isinstance(exc, (requests.Timeout, requests.ConnectionError)):
            return StoreError(f"{what}: {type(exc).__name__}: {exc}", retryable=True)
        return StoreError(f"{what}: {type(exc).__name__}: {exc}", retryable=False)
    status = resp.status_code
    code, message, body_status = _error_body(resp)
    if 300 <= status < 400:
        return StoreError(f"{what}: redirected ({status}) to {resp.headers.get('Location', '?')}; "
                          "set the store URL to the address it redirects to", retryable=False, status=status,
                          code=code or "keepwell_redirect")
    retryable = status in _RETRYABLE or status >= 500
    said = f"{code}: {message}" if code else message
    return StoreError(f"{what}: {status} {said}", retryable=retryable,
                      status=body_status or status, code=code,
                      retry_after=_retry_after(resp.headers.get("Retry-After")) if retryable else None)


def _error_body(resp: requests.Response) -> tuple[str | None, str, int | None]:
    """(code, message, data.status) of WooCommerce's ``{"code","message","data":{"status"}}``."""
    try:
        body = resp.json()
    except ValueError:
        return None, (resp.text or resp.reason or "")[:200].strip(), None
    if not isinstance(body, dict):
        return None, str(body)[:200], None
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    status = data.get("status")
    return body.get("code"), str(body.get("message", "")), status if isinstance(status, int) else None


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
