"""huoke's one outbound HTTP client (``request``): the SMS provider, the webhook channel and
webhook subscriptions all POST through it. For URLs that are data (webhook subscriptions) it is
given an ``OutboundPolicy`` and calls only public addresses: a URL is resolved, and refused when
any address it resolves to is loopback, private, link-local (the cloud metadata service at
169.254.169.254), multicast, reserved or otherwise not global — written as a name, a dotted or
decimal IPv4, or an IPv4-mapped IPv6 address alike — unless ``HUOKE_OUTBOUND_ALLOW`` names its
host or network. The check runs again at every request and the connection goes to the very
address checked (a name that resolves to a public address for the check and an internal one a
moment later — DNS rebinding — gets nowhere). Redirects are never followed: a 3xx is the answer."""

from __future__ import annotations

import http.client
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from engine.domain.shared.errors import HuokeError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class OutboundRefusedError(HuokeError):
    """Raised when a URL is not http(s), does not resolve, or points at an internal address."""


@dataclass(frozen=True)
class OutboundPolicy:
    """Which hosts and networks may be called although they are not public."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, text: str) -> OutboundPolicy:
        """``10.0.0.0/8, 192.168.1.20, crm.internal``: networks, addresses and host names."""
        hosts, networks = set(), []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                hosts.add(part.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def target(self, url: str) -> tuple[str, str, int, Address]:
        """(scheme, host, port, the address to connect to) of an allowed URL, or
        ``OutboundRefusedError`` saying why not."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OutboundRefusedError(f"{url!r} is not an http(s) URL with a host")
        host = parts.hostname.lower().rstrip(".")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise OutboundRefusedError(f"{url!r} has no valid port") from None
        addresses = resolve(host, port)
        if host in self.hosts:
            return parts.scheme, host, port, addresses[0]
        for address in addresses:
            why = self.refusal(address)
            if why:
                raise OutboundRefusedError(
                    f"{host} resolves to {address} ({why}): huoke calls only public addresses; "
                    "name it in HUOKE_OUTBOUND_ALLOW to allow it"
                )
        return parts.scheme, host, port, addresses[0]

    def refusal(self, address: Address) -> str:
        """Why huoke does not call ``address`` ('' when it may)."""
        plain: Address = address.ipv4_mapped or address if isinstance(address, ipaddress.IPv6Address) else address
        if any(plain in n for n in self.networks):
            return ""
        for kind in ("unspecified", "loopback", "link_local", "multicast", "private", "reserved"):
            if getattr(plain, f"is_{kind}"):
                return kind.replace("_", "-")
        return "" if plain.is_global else "not a public address"


def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to (a literal address is itself)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise OutboundRefusedError(f"{host} does not resolve ({e})") from None
    found: list[Address] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in found:
            found.append(address)
    if not found:
        raise OutboundRefusedError(f"{host} does not resolve")
    return found


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes


def request(
    url: str,
    body: bytes | None,
    headers: dict[str, str],
    timeout: float = 10.0,
    policy: OutboundPolicy | None = None,
) -> HttpResponse:
    """POST ``body`` to ``url`` (GET when there is no body): the status and body of the
    answer, whatever the status (no redirect is followed). With a ``policy`` (a URL that is data)
    only an address the policy allows now is called, and the connection goes to the very address
    checked; without one the URL is the lender's own configuration. Raises ``OutboundRefusedError``, or ``OSError`` when
    nothing answered (refused, unreachable, timed out)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundRefusedError(f"{url!r} is not an http(s) URL with a host")
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection: Any = cls(parts.hostname, parts.port, timeout=timeout)
    if policy is not None:
        _, _, port, address = policy.target(url)

        def pinned(_: Any, timeout: Any = None, source: Any = None) -> socket.socket:
            return socket.create_connection((str(address), port), timeout, source)

        connection._create_connection = pinned  # connect to the address checked; TLS still checks the host name
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        method = "GET" if body is None else "POST"
        connection.request(method, path, body=body, headers={"Host": parts.netloc.rpartition("@")[2], **headers})
        answer = connection.getresponse()
        return HttpResponse(int(answer.status), answer.read())
    except http.client.HTTPException as e:  # a garbled answer: as if nothing usable answered
        raise OSError(f"{type(e).__name__}: {e}") from None
    finally:
        connection.close()


@dataclass(frozen=True)
class GuardedPoster:
    """POSTs to URLs that are data (webhook subscriptions) under an ``OutboundPolicy``."""

    policy: OutboundPolicy = field(default_factory=OutboundPolicy)
    timeout: float = 10.0

    def check(self, url: str) -> None:
        self.policy.target(url)

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        return request(url, body, headers, self.timeout, self.policy).status
