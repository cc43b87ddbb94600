"""The SSRF guard: outbound HTTP connects only to public addresses, checked on the socket it opens.

The host is resolved once, where the socket is opened; every address of the answer is checked and
the socket connects to a checked address. Resolving beforehand and connecting later would let a
DNS answer that changes in between (rebinding) slip past. Non-public targets an operator wants
(the demo sandbox on loopback, a platform on the LAN) are allowed by `VIGIE_ALLOW_PRIVATE_TARGETS`.
"""
from __future__ import annotations

import contextvars
import functools
import ipaddress
import socket
import sys
import threading
import weakref
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Union

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
import urllib3.util.connection
from urllib3.util.connection import _set_socket_options, allowed_gai_family
from urllib3.util.timeout import _DEFAULT_TIMEOUT

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Allowance = Callable[[], tuple[Network, ...]]
LOOPBACK = "loopback"
LOOPBACK_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
EVERYWHERE = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
METADATA = ipaddress.ip_address("169.254.169.254")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d


class TargetRefused(Exception):
    """A connection the guard would not open. Not an OSError, so urllib3 neither wraps nor retries it."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        self.host, self.address, self.reason = host, address, reason
        where = address if host.strip("[]") == address else f"{host} resolves to {address}, which"
        super().__init__(f"{where} is not a public address ({reason})")


def parse_allowance(entries: Iterable[str]) -> tuple[Network, ...]:
    """`loopback` or CIDRs (`10.1.0.0/16`, `fd00::/8`); a bare address is a /32 or /128. ValueError if wrong."""
    networks: list[Network] = []
    for entry in entries:
        entry = entry.strip()
        if entry.lower() == LOOPBACK:
            networks.extend(LOOPBACK_NETWORKS)
        elif entry:
            networks.append(ipaddress.ip_network(entry, strict=False))
    return tuple(networks)


@functools.lru_cache(maxsize=8)
def _parsed(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return parse_allowance(entries)


def settings_allowance() -> tuple[Network, ...]:
    """What `VIGIE_ALLOW_PRIVATE_TARGETS` allows, read at connect time (tests change it)."""
    from django.conf import settings

    return _parsed(tuple(getattr(settings, "VIGIE_ALLOW_PRIVATE_TARGETS", ())))


def no_allowance() -> tuple[Network, ...]:
    return ()


def refusal(address: str, allowed: tuple[Network, ...] = ()) -> str | None:
    """Why the guard refuses this address, or None if it may be connected to."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if any(ip.version == net.version and ip in net for net in allowed):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (
            ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in NAT64 or ip in IPV4_COMPATIBLE else None)
        if embedded is not None and not ip.is_unspecified and not ip.is_loopback:
            return refusal(str(embedded), allowed)
    if ip == METADATA:
        return "link-local: the cloud metadata service"
    for reason, hit in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                        ("unspecified", ip.is_unspecified), ("multicast", ip.is_multicast),
                        ("private", ip.is_private)):
        if hit:
            return reason
    return None if ip.is_global else "reserved"


def url_refusal(url: str, allowed: tuple[Network, ...] = ()) -> str | None:
    """Why the guard would refuse every connection to `url` (resolved now), or None. A name that
    does not resolve now is not refused here: the guard checks again at connect time."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "not a URL"
    if parts.scheme not in ("http", "https") or not host:
        return "not an http(s) URL"
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    for *_, sockaddr in infos:
        reason = refusal(sockaddr[0], allowed)
        if reason:
            return reason
    return None


def guarded_connect(host: str, port: int, timeout: object = _DEFAULT_TIMEOUT, *, allowed: tuple[Network, ...],
                    source_address: tuple[str, int] | None = None, socket_options=None) -> socket.socket:
    """urllib3's create_connection, with every resolved address checked before any is connected to."""
    host = host.strip("[]")
    infos = socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"{host} resolves to no address")
    # One refused address refuses the host: a hostile DNS server may answer a public and a private one.
    for *_, sockaddr in infos:
        reason = refusal(sockaddr[0], allowed)
        if reason:
            raise TargetRefused(host, sockaddr[0], reason)
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in infos:
        sock = None
        try:
            sock = socket.socket(family, kind, proto)
            _set_socket_options(sock, socket_options)
            if timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            error = exc
            if sock is not None:
                sock.close()
    raise error  # type: ignore[misc]


# The SocketWatch of the request being made in this thread (HttpSeam sets it): it is told of the
# socket the request uses, a new one or one kept from an earlier request of a shared session.
_watching: contextvars.ContextVar["SocketWatch | None"] = contextvars.ContextVar("vigie_socket_watch", default=None)


@contextmanager
def watching(watch: "SocketWatch") -> Iterator[None]:
    """Within this block, every socket a guarded session connects or reuses is added to `watch`."""
    token = _watching.set(watch)
    try:
        yield
    finally:
        _watching.reset(token)


def _socket_seen(sock: socket.socket) -> None:
    watch = _watching.get()
    if watch is not None:
        watch.add(sock)


class _Guarded:
    """Mixin for urllib3 connections: `_new_conn` goes through the guard; `on_socket` sees each socket."""

    allowed: Allowance
    on_socket: Callable[[socket.socket], None] | None = None

    def _new_conn(self) -> socket.socket:
        try:
            sock = guarded_connect(self._dns_host, self.port, self.timeout, allowed=self.allowed(),
                                   source_address=self.source_address, socket_options=self.socket_options)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out. "
                                            f"(connect timeout={self.timeout})") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock

    def connect(self) -> None:
        super().connect()
        # After TLS: the socket that reads the response.
        if self.on_socket is not None:
            self.on_socket(self.sock)
        _socket_seen(self.sock)


class _WatchedPool:
    """Mixin for urllib3 pools: a connection kept from an earlier request is watched too."""

    def _get_conn(self, timeout=None):
        conn = super()._get_conn(timeout)
        if conn.sock is not None:  # None: it connects (and is seen) when the request is sent
            _socket_seen(conn.sock)
        return conn


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose connections are opened by the guard. Proxies are refused: through
    a proxy the guard would check the proxy, not the target."""

    def __init__(self, *, allowed: Allowance = settings_allowance,
                 on_socket: Callable[[socket.socket], None] | None = None, **kwargs) -> None:
        attrs = {"allowed": staticmethod(allowed), "on_socket": staticmethod(on_socket) if on_socket else None}
        http = type("GuardedHTTPConnection", (_Guarded, HTTPConnection), attrs)
        https = type("GuardedHTTPSConnection", (_Guarded, HTTPSConnection), attrs)
        self._pool_classes = {
            "http": type("GuardedHTTPConnectionPool", (_WatchedPool, HTTPConnectionPool), {"ConnectionCls": http}),
            "https": type("GuardedHTTPSConnectionPool", (_WatchedPool, HTTPSConnectionPool), {"ConnectionCls": https}),
        }
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(self._pool_classes)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        raise requests.exceptions.InvalidProxyURL("outbound requests through a proxy would bypass the SSRF guard")


def guarded_session(*, allowed: Allowance = settings_allowance,
                    on_socket: Callable[[socket.socket], None] | None = None, **adapter_options) -> requests.Session:
    """A session that connects only where the guard allows; proxy variables from the environment
    are ignored. `adapter_options` go to requests' HTTPAdapter (pool sizes)."""
    session = requests.Session()
    session.trust_env = False
    adapter = GuardedAdapter(allowed=allowed, on_socket=on_socket, **adapter_options)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class SocketWatch:
    """The sockets a session opened, so that a total deadline can cut them from another thread."""

    def __init__(self) -> None:
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()

    def add(self, sock: socket.socket) -> None:
        self._sockets.add(sock)

    def clear(self) -> None:
        """Forget the sockets seen so far: a shared session's socket goes on to serve other runs."""
        self._sockets = weakref.WeakSet()

    def cut(self) -> None:
        # socket.socket.shutdown, not SSLSocket.shutdown: that one also drops the TLS state under
        # the thread still reading. A blocked recv returns at once and the reader sees the end.
        for sock in list(self._sockets):
            try:
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass


# --- libraries that make their own requests calls (Apprise) ------------------------------------
# A context variable, not a thread-local: Apprise runs a service with a deadline on its own pool,
# and submits it with a copy of the caller's context, so the guard goes along.
class GuardScope:
    """What a guarded_context allows, and the refusals it made (a library may swallow them)."""

    def __init__(self, allowed: Allowance) -> None:
        self.allowed = allowed
        self.refused: list[TargetRefused] = []


_guard_scope: contextvars.ContextVar[GuardScope | None] = contextvars.ContextVar("vigie_guard", default=None)
_install_lock = threading.Lock()
_installed = False


@contextmanager
def guarded_context(allowed: Allowance = settings_allowance) -> Iterator[GuardScope]:
    """Within this block (and in work submitted from it with a copy of its context), every plain
    urllib3 connection goes through the guard, at connect time like `guarded_session`. For
    libraries that build their own sessions: Apprise's plugins call `requests.request`."""
    _install_context_guard()
    scope = GuardScope(allowed)
    token = _guard_scope.set(scope)
    try:
        yield scope
    finally:
        _guard_scope.reset(token)


def _install_context_guard() -> None:
    """Wrap urllib3's create_connection once; outside a guarded_context it is unchanged."""
    global _installed
    with _install_lock:
        if _installed:
            return
        original = urllib3.util.connection.create_connection

        def create_connection(address, timeout=_DEFAULT_TIMEOUT, source_address=None, socket_options=None):
            scope = _guard_scope.get()
            if scope is None:
                return original(address, timeout, source_address, socket_options)
            host, port = address
            try:
                return guarded_connect(host, port, timeout, allowed=scope.allowed(), source_address=source_address,
                                       socket_options=socket_options)
            except TargetRefused as exc:
                scope.refused.append(exc)
                raise

        urllib3.util.connection.create_connection = create_connection

        # The other schemes Apprise speaks open their sockets with socket.create_connection
        # (smtplib for mailto://, and others): guarded the same way inside a guarded_context.
        original_socket = socket.create_connection

        def socket_create_connection(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None, **kwargs):
            scope = _guard_scope.get()
            if scope is None:
                return original_socket(address, timeout, source_address, **kwargs)
            host, port = address[0], address[1]
            try:
                return guarded_connect(host, port, _DEFAULT_TIMEOUT if timeout is socket._GLOBAL_DEFAULT_TIMEOUT
                                       else timeout, allowed=scope.allowed(), source_address=source_address)
            except TargetRefused as exc:
                scope.refused.append(exc)
                raise

        socket.create_connection = socket_create_connection
        _installed = True
