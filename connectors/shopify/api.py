"""Calls to the Shopify GraphQL Admin API, and the one place that decides what a failure means.

Calls are paced by the shop's cost bucket (``connectors.shopify.pacing``), which may wait a
moment for a refill; otherwise the connector never sleeps or retries: a retryable failure is
raised as a ``StoreError`` with ``retry_after`` seconds and the worker schedules the retry.
"""
from __future__ import annotations

import json

import requests

from connectors.base import Shop
from connectors.shopify import pacing
from plugin.errors import StoreError

#: The pinned Admin API version. Shopify serves a version for about a year; every document the
#: connector sends is validated against this version's schema in the tests.
API_VERSION = "2026-10"

#: (connect, read) seconds. Shopify answers in well under a second; a slow call is retried later.
TIMEOUT = (5, 30)

#: Wait suggested when Shopify throttles without saying how long (its own client waits 1 s).
DEFAULT_RETRY_AFTER = 1.0

#: GraphQL ``extensions.code`` values that mean "try again later" rather than "this will never work".
RETRYABLE_CODES = {"THROTTLED", "INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"}


def endpoint(shop: Shop) -> str:
    """The GraphQL endpoint of ``shop`` at the pinned version."""
    return f"{shop.api_url.rstrip('/')}/admin/api/{API_VERSION}/graphql.json"


def gid(kind: str, value) -> str:
    """A Shopify global id (``gid://shopify/Customer/123``) from a numeric id or an existing gid."""
    text = str(value).strip()
    if text.startswith("gid://"):
        return text
    if not text.isdigit():
        raise StoreError(f"{kind} id {value!r} is neither a number nor a gid://shopify/{kind}/ id",
                         retryable=False, code="BAD_ID")
    return f"gid://shopify/{kind}/{text}"


def numeric_id(value: str | None) -> str | None:
    """The numeric tail of a gid (``gid://shopify/Customer/123`` -> ``"123"``); None stays None."""
    if value is None:
        return None
    return str(value).rsplit("/", 1)[-1].split("?", 1)[0]


def execute(shop: Shop, query: str, variables: dict | None = None) -> dict:
    """Run one GraphQL document against the shop and return its ``data``; StoreError on failure.

    The access token comes from ``shop.tokens`` when the shop has a keeper: refreshed shortly
    before it expires, and once more (then the call repeated once) when Shopify answers 401.
    Every call is paced by the shop's cost bucket and every answer's cost is remembered.
    """
    op = pacing.operation(query)
    keeper = shop.tokens
    token = keeper.access_token(shop) if keeper is not None else shop.credentials.get("access_token", "")
    response = _post(shop, token, op, query, variables)
    if response.status_code == 401 and keeper is not None:
        fresh = keeper.after_unauthorized(shop, token)
        if fresh and fresh != token:
            response = _post(shop, fresh, op, query, variables)
    body = _json(response)
    pacing.after(shop, op, body)
    return classify(response, body)


def _post(shop: Shop, token: str, op: str, query: str, variables: dict | None) -> requests.Response:
    pacing.before(shop, op)
    try:
        return requests.post(
            endpoint(shop),
            json={"query": query, "variables": variables or {}},
            headers={"X-Shopify-Access-Token": token, "Accept": "application/json"},
            timeout=TIMEOUT,
            # A redirect means the shop moved or the URL is wrong; following it would turn the POST into a GET.
            allow_redirects=False,
        )
    except requests.Timeout as exc:
        raise StoreError(f"Shopify did not answer in time: {exc}", retryable=True, code="TIMEOUT") from exc
    except requests.RequestException as exc:
        raise StoreError(f"could not reach Shopify: {exc}", retryable=True, code="CONNECTION") from exc


def classify(response: requests.Response, body=None) -> dict:
    """The ``data`` of a successful response, else the StoreError that says whether to retry.

    429, 5xx and GraphQL THROTTLED (which Shopify sends with HTTP 200) are retryable, with
    ``retry_after`` from the Retry-After header or from the query-cost bucket; every other
    4xx and GraphQL error is final.
    """
    status = response.status_code
    if body is None:
        body = _json(response)
    if status == 429 or status >= 500:
        wait = _retry_after_header(response)
        if wait is None and status == 429:
            wait = throttle_wait(body)
        raise StoreError(f"Shopify answered {status}: {_message(body, response)}", retryable=True,
                         status=status, retry_after=wait, code=f"HTTP_{status}")
    if status >= 300:
        raise StoreError(f"Shopify answered {status}: {_message(body, response)}", retryable=False,
                         status=status, code=f"HTTP_{status}")
    if not isinstance(body, dict):
        raise StoreError("Shopify answered 200 with a body that is not a JSON object", retryable=True,
                         status=status, code="BAD_RESPONSE")
    errors = body.get("errors")
    if errors:
        codes = [((e.get("extensions") or {}).get("code") if isinstance(e, dict) else None)
                 for e in (errors if isinstance(errors, list) else [errors])]
        message = _message(body, response)
        if "THROTTLED" in codes:
            raise StoreError(f"Shopify throttled the request: {message}", retryable=True, status=status,
                             retry_after=throttle_wait(body), code="THROTTLED")
        code = next((c for c in codes if c), None)
        raise StoreError(f"Shopify GraphQL error: {message}", retryable=code in RETRYABLE_CODES,
                         status=status, code=code or "GRAPHQL_ERROR")
    data = body.get("data")
    if not isinstance(data, dict):
        raise StoreError("Shopify answered without data or errors", retryable=True, status=status,
                         code="BAD_RESPONSE")
    return data


def throttle_wait(body) -> float:
    """Seconds until the shop's cost bucket holds this query's cost again (from ``extensions.cost``)."""
    try:
        cost = body["extensions"]["cost"]
        status = cost["throttleStatus"]
        missing = float(cost["requestedQueryCost"]) - float(status["currentlyAvailable"])
        rate = float(status["restoreRate"])
    except (KeyError, TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
    if rate <= 0:
        return DEFAULT_RETRY_AFTER
    return round(max(missing, 0.0) / rate, 3) or DEFAULT_RETRY_AFTER


def user_errors(result: dict | None) -> list[dict]:
    """The ``userErrors`` of one mutation result (Shopify reports rejected input there, with HTTP 200)."""
    return list((result or {}).get("userErrors") or [])


def user_error_message(errors: list[dict]) -> str:
    """One readable line for a list of userErrors, naming the field each one is about."""
    parts = []
    for e in errors:
        field = ".".join(e.get("field") or [])
        parts.append(f"{field}: {e.get('message')}" if field else str(e.get("message")))
    return "; ".join(parts)


def _retry_after_header(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare enough to leave the wait to the worker's backoff


def _json(response: requests.Response):
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        return None


def _message(body, response: requests.Response) -> str:
    if isinstance(body, dict) and body.get("errors"):
        errors = body["errors"]
        if isinstance(errors, list):
            return "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors)
        return str(errors)
    return (response.text or response.reason or "").strip()[:300]
