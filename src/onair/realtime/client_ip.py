"""Which IP a realtime socket counts toward (the per-IP connection cap).

Without trusted proxies the TCP peer is the client. Behind a reverse proxy every socket would then
count toward the proxy, so the operator lists the proxies (``realtime_trusted_proxies``): when
the peer is one of them, ``X-Forwarded-For`` is read from the right, skipping trusted hops, and
the first untrusted hop is the client. Hops left of it were written by the client and are never
believed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip())


def _trusted(ip: str, networks: tuple[Network, ...]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in networks)


def client_ip(peer: str | None, forwarded_for: str | None, networks: tuple[Network, ...]) -> str | None:
    """The key a socket is counted under: its client's IP, or for IPv6 the client's /64 (one
    subscriber usually holds a whole /64, so single addresses would cost an attacker nothing)."""
    return _bucket(_client(peer, forwarded_for, networks))


def _client(peer: str | None, forwarded_for: str | None, networks: tuple[Network, ...]) -> str | None:
    if peer is None or not networks or not forwarded_for or not _trusted(peer, networks):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",")[-32:] if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop if _parses(hop) else peer  # garbage from a proxy we trust: count the proxy
    return hops[0] if hops else peer


def _parses(ip: str) -> bool:
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return False
    return True


def _bucket(ip: str | None) -> str | None:
    if ip is None:
        return None
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)
