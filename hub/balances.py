"""What this process last saw of each organisation's available credit, for HUB_BALANCE_CACHE_SECONDS.

Written by the metering writer (each batch returns the balances it left) and
by a new lease; read by credit.reserve to refuse a request known to be short
without a write. Its own module so that metering and credit, which both use
it, need not import each other.
"""

import time
from decimal import Decimal

from django.conf import settings

from accounts import caches

_available: dict[int, tuple[float, Decimal]] = {}


def remember(available: dict[int, Decimal]) -> None:
    expires = time.monotonic() + settings.HUB_BALANCE_CACHE_SECONDS
    for organization_id, value in available.items():
        _available[organization_id] = (expires, value)


def known(organization_id: int) -> Decimal | None:
    """The balance last seen, if it is recent enough to trust."""
    cached = _available.get(organization_id)
    if cached is None or cached[0] < time.monotonic():
        return None
    return cached[1]


def forget(organization_id: int | None = None) -> None:
    if organization_id is None:
        _available.clear()
    else:
        _available.pop(organization_id, None)


caches.register(forget, lambda: _available)
