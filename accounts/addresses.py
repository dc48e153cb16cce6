"""Where a caller is, and whether a key may be used from there: one rule for the gateway
(hub/policy.py) and the management API (accounts/api/base.py)."""

import ipaddress


def client_address(request) -> str:
    """The caller's address as a key's allowed_ips see it, on the gateway and the management API alike:
    REMOTE_ADDR as the server sets it (uvicorn takes X-Forwarded-For instead only from a proxy it trusts,
    FORWARDED_ALLOW_IPS, 127.0.0.1 by default), never a header read here."""
    return request.META.get("REMOTE_ADDR") or ""


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
