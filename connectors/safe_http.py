"""HTTP to addresses a merchant (or anyone who can start a connection) typed in: public addresses only.

A store URL is whatever someone entered, so a request to it could reach the app's own network
(a database port, a cloud metadata service at 169.254.169.254). Every connection resolves the
host, refuses it unless every address is on the public internet, and connects to the address it
checked, so DNS cannot answer differently between the check and the connection (rebinding).
Redirects are never followed, proxies from the environment are not used, and answers are read
under a size cap and an overall deadline.

KEEPWELL_ALLOW_PRIVATE_STORES=1 (a development setting) turns the address check off, for stores
and sandboxes on a developer's own machine or network.
"""
from __future__ import annotations

import ipaddress
import socket
import time
from typing import Callable

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import connection as connection_util

from plugin.errors import KeepwellError

MAX_RESPONSE_BYTES = 32 * 1024 * 1024
DEADLINE_S = 60.0  # for a whole answer: a read timeout alone restarts with every byte that trickles in

#: How host names are resolved; a test swaps in a stub resolver, so no real lookup or connection happens.
getaddrinfo = socket.getaddrinfo


class Refused(KeepwellError):
    """Refused before or while talking to the store: an address not on the public internet, a
    proxy, or an answer over the size cap."""


def allow_private() -> bool:
    from plugin.config import Config

    return Config.from_env().allow_private_stores


def is_public(address: str) -> bool:
    """True for a globally routable unicast address; loopback, private, link-local, multicast,
    reserved, unspecified and shared ranges (IPv4-mapped IPv6 judged as the IPv4 inside) are not."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_loopback or ip.is_private or ip.is_link_local
                                 or ip.is_reserved or ip.is_unspecified)


def public_addresses(host: str, port: int) -> list[tuple]:
    """getaddrinfo's TCP entries for ``host``; Refused unless it resolves and all are public."""
    try:
        found = getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"{host!r} does not resolve: {exc}") from None
    if not found:
        raise Refused(f"{host!r} does not resolve")
    private = sorted({entry[4][0] for entry in found if not is_public(entry[4][0])})
    if private:
        raise Refused(f"{host!r} resolves to {', '.join(private)}, which is not a public internet address "
                             "(KEEPWELL_ALLOW_PRIVATE_STORES=1 allows it during development)")
    return found


def check_host(host: str, port: int) -> None:
    """Refused unless development allows private stores or ``host`` resolves to public addresses only."""
    if not allow_private():
        public_addresses(host, port)


def _connect(conn) -> socket.socket:
    """A socket to one of the checked addresses (the hostname still names the TLS server)."""
    if allow_private():
        return connection_util.create_connection((conn._dns_host, conn.port), conn.timeout,
                                                 source_address=conn.source_address,
                                                 socket_options=conn.socket_options)
    error: OSError | None = None
    for family, kind, proto, _, address in public_addresses(conn._dns_host, conn.port):
        sock = socket.socket(family, kind, proto)
        try:
            for option in conn.socket_options or ():
                sock.setsockopt(*option)
            if isinstance(conn.timeout, (int, float)):
                sock.settimeout(conn.timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            error = exc
            sock.close()
    raise error or OSError(f"could not connect to {conn._dns_host}")


class _HTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _connect(self)


class _HTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _connect(self)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def proxy_manager_for(self, proxy, **kwargs):
        raise Refused("store calls do not go through a proxy")


def session() -> requests.Session:
    """A requests Session whose every connection goes through the address check."""
    s = requests.Session()
    s.trust_env = False  # no HTTP(S)_PROXY: a proxy would make the request for us, to any address
    adapter = _GuardedAdapter()
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def read_capped(resp: requests.Response, limit: int | None = None, deadline_s: float = DEADLINE_S,
                clock: Callable[[], float] = time.monotonic) -> bytes:
    """The body of a streamed response, refused beyond ``limit`` bytes (MAX_RESPONSE_BYTES) or
    ``deadline_s`` seconds."""
    limit = MAX_RESPONSE_BYTES if limit is None else limit
    started, body = clock(), bytearray()
    for chunk in resp.iter_content(64 * 1024):
        body += chunk
        if len(body) > limit:
            resp.close()
            raise Refused(f"the answer is larger than {limit} bytes")
        if clock() - started > deadline_s:
            resp.close()
            raise requests.Timeout(f"the answer took longer than {deadline_s:.0f} s")
    resp._content = bytes(body)  # so .json() and .text work as on an unstreamed response
    return resp._content
