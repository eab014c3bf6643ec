"""The WooCommerce connect flow is unauthenticated and makes the server call the URL it is given:
it must not reach the server's own network (no SSRF), echo what an internal service answers, or
serve as an unlimited scanner. Host names are resolved by a stub resolver here: no test looks up
or connects to anything but loopback."""
from __future__ import annotations

import ipaddress
import json
import socket
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from werkzeug.serving import make_server

from connectors import safe_http
from connectors.base import Shop
from connectors.woocommerce import client
from live import start, stop
from plugin.errors import StoreError

PUBLIC = "93.184.216.34"
CK = "ck_8c3b0c5b84f4e1e7d0c5b2a6a4f1c2d3e4f5a6b7"
CS = "cs_1f2e3d4c5b6a79880716253443526170819a2b3c"
CANNOT_VIEW = {"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources.",
               "data": {"status": 401}}


class Resolver:
    """A stub for getaddrinfo: host -> addresses, switchable mid-test (DNS rebinding)."""

    def __init__(self):
        self.hosts: dict[str, list[str]] = {}
        self.asked = []

    def __call__(self, host, port, family=0, kind=0, *rest):
        self.asked.append(host)
        try:
            ips = [str(ipaddress.ip_address(host))]  # a literal resolves to itself
        except ValueError:
            if host not in self.hosts:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            ips = self.hosts[host]
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (ip, port, 0, 0) if ":" in ip else (ip, port)) for ip in ips]


class Recorder(socket.socket):
    """socket.socket that records every connect but the tests' own Redis (refusals must happen
    before any) and never lets one leave loopback, even if the code under test regressed."""

    attempts: list = []
    redis_port = None

    def connect(self, address):
        if address[1] != Recorder.redis_port:
            Recorder.attempts.append(address)
        if not ipaddress.ip_address(address[0].split("%", 1)[0]).is_loopback:
            raise ConnectionRefusedError(f"test guard: no connection to {address[0]} leaves this machine")
        return super().connect(address)


@pytest.fixture
def no_dev(monkeypatch):
    monkeypatch.delenv("KEEPWELL_ALLOW_PRIVATE_STORES", raising=False)


@pytest.fixture
def resolver(monkeypatch, no_dev, redis_server):
    stub = Resolver()
    monkeypatch.setattr(safe_http, "getaddrinfo", stub)
    Recorder.attempts, Recorder.redis_port = [], urlsplit(redis_server).port or 6379
    monkeypatch.setattr(socket, "socket", Recorder)
    return stub


@pytest.fixture
def live(redis_server, smtp, tmp_path, no_dev):
    live = start(redis_server, f"sqlite:///{tmp_path}/keepwell.db", smtp)  # production: no private stores
    yield live
    stop(live)


def connect(live, url, ip="127.0.0.1"):
    return live.client.get("/woocommerce/connect", query_string={"store_url": url}, environ_base={"REMOTE_ADDR": ip})


def callback(live, body, ip="127.0.0.1"):
    return live.client.post("/woocommerce/callback", data=json.dumps(body), content_type="application/json",
                            environ_base={"REMOTE_ADDR": ip})


def pending(live):
    return live.rt.redis.keys(f"{live.config.queue}:wc-connect:*")


# --- which addresses are public ----------------------------------------------------------------

@pytest.mark.parametrize("address", [
    "169.254.169.254", "10.1.2.3", "172.16.0.1", "192.168.1.20", "127.0.0.1", "127.8.9.10", "0.0.0.0",
    "100.64.0.1", "224.0.0.251", "240.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "fe80::1%eth0",
])
def test_non_public_addresses(address):
    assert not safe_http.is_public(address)


@pytest.mark.parametrize("address", [PUBLIC, "1.1.1.1", "2606:2800:220:1:248:1893:25c8:1946"])
def test_public_addresses(address):
    assert safe_http.is_public(address)


# --- GET /woocommerce/connect --------------------------------------------------------------------

@pytest.mark.parametrize("url,addresses", [
    ("https://169.254.169.254/latest/meta-data", None),
    ("https://10.0.0.5", None),
    ("https://[::ffff:127.0.0.1]:8443", None),
    ("https://localhost:8443/x", ["127.0.0.1", "::1"]),
    ("https://metadata.cloud.internal", ["169.254.169.254"]),
    ("https://intranet.corp.example", ["10.20.30.40"]),
    ("https://half-public.example", [PUBLIC, "192.168.0.10"]),  # any private answer refuses it
    ("https://no-such-host.example", []),
    ("http://localhost:6379/x", ["127.0.0.1"]),  # and plain http is refused before anything else
])
def test_connect_refuses_store_urls_that_are_not_on_the_public_internet(live, resolver, url, addresses):
    host = urlsplit(url).hostname
    if addresses:
        resolver.hosts[host] = addresses
    r = connect(live, url)
    assert r.status_code == 400 and b"<form" in r.data
    assert pending(live) == []
    assert Recorder.attempts == []


def test_connect_accepts_a_store_on_a_public_address(live, resolver):
    resolver.hosts["shop.example.com"] = [PUBLIC, "2606:2800:220:1:248:1893:25c8:1946"]
    r = connect(live, "https://shop.example.com")
    assert r.status_code == 302 and r.headers["Location"].startswith("https://shop.example.com/wc-auth/v1/authorize?")
    assert resolver.asked == ["shop.example.com"] and Recorder.attempts == []


# --- the callback: checked again when it connects; nothing of the answer echoed ---------------

def test_callback_to_a_host_rebound_to_loopback_connects_nowhere(live, resolver):
    resolver.hosts["rebind.example"] = [PUBLIC]
    user_id = parse_qs(urlsplit(connect(live, "https://rebind.example:8443").headers["Location"]).query)["user_id"][0]
    resolver.hosts["rebind.example"] = ["127.0.0.1"]  # the attacker's DNS answers differently now
    r = callback(live, {"key_id": 1, "user_id": user_id, "consumer_key": CK, "consumer_secret": CS,
                        "key_permissions": "read_write"})
    assert r.status_code == 400
    assert not [a for a in Recorder.attempts if a[1] == 8443]
    assert b"127.0.0.1" not in r.data


def test_the_store_answer_is_never_echoed_to_the_caller(live, resolver):
    resolver.hosts["store.example"] = [PUBLIC]
    user_id = parse_qs(urlsplit(connect(live, "https://store.example").headers["Location"]).query)["user_id"][0]
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, "https://store.example/wp-json/wc/v3/settings", status=401, json=CANNOT_VIEW)
        r = callback(live, {"key_id": 1, "user_id": user_id, "consumer_key": CK, "consumer_secret": CS,
                            "key_permissions": "read_write"})
    page = live.client.get("/woocommerce/connected", query_string={"success": "0", "user_id": user_id})
    assert r.status_code == 400 and page.status_code == 400
    for shown in (r.get_data(as_text=True), page.get_data(as_text=True)):
        for leaked in ("401", "woocommerce_rest_cannot_view", "Sorry"):
            assert leaked not in shown, (leaked, shown)


def test_connect_and_callback_are_rate_limited_per_client(live, resolver):
    resolver.hosts["store.example"] = [PUBLIC]
    for _ in range(20):
        assert connect(live, "https://store.example", ip="203.0.113.7").status_code == 302
    r = connect(live, "https://store.example", ip="203.0.113.7")
    assert r.status_code == 429 and 0 < int(r.headers["Retry-After"]) <= 600
    assert connect(live, "https://store.example", ip="203.0.113.8").status_code == 302  # someone else
    for _ in range(20):
        assert callback(live, {"user_id": "0" * 32}, ip="203.0.113.9").status_code == 400
    assert callback(live, {"user_id": "0" * 32}, ip="203.0.113.9").status_code == 429


# --- every store call: the session itself refuses, caps and never follows ---------------------

def test_store_calls_to_non_public_addresses_are_refused_before_connecting(resolver):
    resolver.hosts.update({"shop.example": ["10.0.0.9"], "meta.example": ["169.254.169.254"]})
    for url in ("https://shop.example", "http://meta.example", "https://127.0.0.1:9"):
        shop = Shop(id="wo_1", platform="woocommerce", domain=url, api_url=url, credentials={"consumer_key": CK, "consumer_secret": CS})
        with pytest.raises(StoreError) as caught:
            client.call(shop, "GET", "settings")
        assert not caught.value.retryable and caught.value.code == "keepwell_refused"
    assert Recorder.attempts == []


@pytest.fixture
def loopback_store():
    from flask import Flask

    app = Flask("store")

    @app.get("/wp-json/wc/v3/settings")
    def settings():
        return [{"id": "general"}]

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_a_loopback_store_needs_the_development_setting(loopback_store, monkeypatch, no_dev):
    shop = Shop(id="wo_1", platform="woocommerce", domain=loopback_store, api_url=loopback_store,
                credentials={"consumer_key": CK, "consumer_secret": CS})
    with pytest.raises(StoreError, match="refused"):
        client.call(shop, "GET", "settings")
    monkeypatch.setenv("KEEPWELL_ALLOW_PRIVATE_STORES", "1")
    assert client.call(shop, "GET", "settings") == [{"id": "general"}]


def test_answers_over_the_size_cap_are_refused(monkeypatch):
    monkeypatch.setattr(safe_http, "MAX_RESPONSE_BYTES", 1000)
    shop = Shop(id="wo_1", platform="woocommerce", domain="https://shop.example", api_url="https://shop.example",
                credentials={"consumer_key": CK, "consumer_secret": CS})
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, "https://shop.example/wp-json/wc/v3/settings", json=[{"id": "x" * 2000}])
        with pytest.raises(StoreError, match="larger than 1000 bytes"):
            client.call(shop, "GET", "settings")


def test_redirects_are_not_followed(monkeypatch):
    shop = Shop(id="wo_1", platform="woocommerce", domain="https://shop.example", api_url="https://shop.example",
                credentials={"consumer_key": CK, "consumer_secret": CS})
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, "https://shop.example/wp-json/wc/v3/settings", status=302,
                 headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        with pytest.raises(StoreError) as caught:
            client.call(shop, "GET", "settings")
        assert len(mock.calls) == 1 and caught.value.status == 302


def test_the_session_ignores_proxies_from_the_environment(monkeypatch, resolver):
    monkeypatch.setenv("HTTPS_PROXY", "http://10.0.0.1:3128")
    assert safe_http.session().trust_env is False
    with pytest.raises(safe_http.Refused):
        safe_http.session().get("https://shop.example", proxies={"https": "http://10.0.0.1:3128"})
    assert Recorder.attempts == []
