"""Where a caller is, and whether a key may be used from there: one rule for the gateway
(hub/policy.py), the management API (accounts/api/base.py) and the login lockout (django-axes)."""

import functools
import ipaddress
from collections.abc import Sequence

from django.conf import settings


def client_address(request) -> str:
    """The caller's address, one answer for everything that asks: a key's allowed_ips on the gateway and the
    management API, the audit log, and the login lockout (AXES_CLIENT_IP_CALLABLE).

    REMOTE_ADDR, unless it is one of HUB_TRUSTED_PROXIES: then X-Forwarded-For is read from the right, each
    trusted proxy's entry skipped, and the first entry no trusted proxy added is the client (entries left of it
    are whatever the client itself sent, so never believed). gunicorn's uvicorn workers apply the same rule to
    the same list (hub/gunicorn.conf.py) and may have rewritten REMOTE_ADDR already; applying it again gives
    the same answer. Not an IP address (a proxy that wrote "unknown"): "", which no allowed_ips matches.
    """
    peer = request.META.get("REMOTE_ADDR") or ""
    trusted = _networks(tuple(settings.HUB_TRUSTED_PROXIES))
    if trusted and _within(peer, trusted):
        hops = [_host_of(hop) for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        untrusted = [hop for hop in hops if not _within(hop, trusted)]
        if untrusted:
            peer = untrusted[-1]
        elif hops:
            peer = hops[0]  # a chain of trusted proxies only: the first of them is the client
    return peer if _is_address(peer) else ""


@functools.lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple:
    """HUB_TRUSTED_PROXIES parsed once, not on every request that asks where its caller is."""
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


def _host_of(hop: str) -> str:
    """An X-Forwarded-For entry without the port some proxies add ("192.0.2.1:5123", "[2001:db8::1]:443")."""
    hop = hop.strip()
    if hop.startswith("["):
        return hop[1:].partition("]")[0]
    if hop.count(":") == 1:
        return hop.partition(":")[0]
    return hop


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _within(text: str, networks: Sequence) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return any(address in network for network in networks)


def networks_of(key, organization) -> tuple:
    """The networks a key may be used from: its own allowed_ips, else its organisation's; empty: anywhere."""
    cidrs = key.allowed_ips or organization.allowed_ips or ()
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def address_allowed(networks: tuple, client_ip: str) -> bool:
    if not networks:
        return True
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address in network for network in networks)
