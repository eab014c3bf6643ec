"""A Shopify store's token endpoint and Admin API, mocked at the HTTP layer with ``responses``,
that keeps token state the way shopify.dev documents it:

- every grant asked with ``expiring=1`` answers ``access_token``, ``scope``, ``expires_in``
  (3600), ``refresh_token`` and ``refresh_token_expires_in`` (90 days);
- a refresh (``grant_type=refresh_token``) issues a new pair; the refresh token it used stays
  valid until the new access token is first used, then it is retired; an unknown or retired
  refresh token gets 400 ``{"error": "invalid_grant", ...}``;
- only the newest access token works; any other gets the Admin API's 401;
- a token migration (``subject_token_type`` offline-access-token) repeated with the same old
  token returns the same pair.
"""
from __future__ import annotations

import itertools
import json
import threading
import time

import requests
import responses

from connectors.shopify import API_VERSION

SCOPE = "write_customers,read_orders,write_discounts,read_products"
UNAUTHORIZED = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
INVALID_GRANT = {"error": "invalid_grant", "error_description": "The refresh token is invalid or expired"}


class FakeShopify:
    def __init__(self, rsps: responses.RequestsMock, shop: str, api_key: str, secret: str):
        self.shop, self.api_key, self.secret = shop, api_key, secret
        self.lock = threading.Lock()
        self.serial = itertools.count(1)
        self.access = ""  # the one access token that works
        self.refresh_tokens: set[str] = set()  # refresh tokens Shopify accepts now
        self.retire_on_use: set[str] = set()  # accepted until the newest access token is used
        self.migrated: dict[str, dict] = {}  # old non-expiring token -> the pair it became
        self.refresh_delay = 0.0
        self.lose_next_refresh = False
        self.refreshes: list[str] = []  # refresh tokens presented, in order
        self.graphql_tokens: list[str] = []
        rsps.add_callback(responses.POST, f"https://{shop}/admin/oauth/access_token", callback=self._token,
                          content_type="application/json")
        rsps.add_callback(responses.POST, f"https://{shop}/admin/api/{API_VERSION}/graphql.json",
                          callback=self._graphql, content_type="application/json")

    def non_expiring(self, token: str) -> str:
        """Make ``token`` the shop's valid non-expiring token (an install from before expiry)."""
        self.access = token
        return token

    def issue(self) -> dict:
        n = next(self.serial)
        answer = {"access_token": f"shpat_fake{n:04d}", "scope": SCOPE, "expires_in": 3600,
                  "refresh_token": f"shprt_fake{n:04d}", "refresh_token_expires_in": 7776000}
        self.access = answer["access_token"]
        self.refresh_tokens.add(answer["refresh_token"])
        return answer

    def revoke_access(self) -> None:
        """The current access token stops working (expired on Shopify's clock, or revoked)."""
        self.access = "revoked"

    def _token(self, request):
        body = json.loads(request.body)
        assert (body["client_id"], body["client_secret"]) == (self.api_key, self.secret)
        if body.get("grant_type") == "refresh_token":
            return self._refresh(body["refresh_token"])
        assert body.get("expiring") == "1", "every grant asks for an expiring token"
        with self.lock:
            if body.get("subject_token_type") == "urn:shopify:params:oauth:token-type:offline-access-token":
                old = body["subject_token"]
                if old not in self.migrated:
                    if old != self.access:
                        return 400, {}, json.dumps({"error": "invalid_subject_token"})
                    self.migrated[old] = self.issue()
                return 200, {}, json.dumps(self.migrated[old])
            return 200, {}, json.dumps(self.issue())

    def _refresh(self, refresh_token: str):
        time.sleep(self.refresh_delay)  # widens the window two workers could both refresh in
        with self.lock:
            self.refreshes.append(refresh_token)
            if refresh_token not in self.refresh_tokens:
                return 400, {}, json.dumps(INVALID_GRANT)
            self.refresh_tokens.discard(refresh_token)
            self.retire_on_use.add(refresh_token)  # still accepted until the new access token is used
            self.refresh_tokens.add(refresh_token)
            answer = self.issue()
            if self.lose_next_refresh:
                self.lose_next_refresh = False
                raise requests.ConnectionError("connection reset by peer")  # processed, answer lost
            return 200, {}, json.dumps(answer)

    def _graphql(self, request):
        token = request.headers.get("X-Shopify-Access-Token")
        with self.lock:
            self.graphql_tokens.append(token)
            if token != self.access:
                return 401, {}, json.dumps(UNAUTHORIZED)
            self.refresh_tokens -= self.retire_on_use  # the replacement is in use: retire the old ones
            self.retire_on_use.clear()
        return 200, {}, json.dumps({"data": {"shop": {"name": "Keepwell Demo"}}})
