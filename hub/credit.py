"""Step 2 of a request: may this organisation spend?

The balance is read from the database at most every HUB_BALANCE_CACHE_SECONDS
per process, less what this process has charged but not yet written. Overspend
is therefore bounded by what requests admitted while the balance was still
positive go on to cost (see README, "Credits").
"""

import time
from decimal import Decimal

from django.conf import settings

from billing.services import balance_of

from . import db
from .errors import InsufficientQuota
from .metering import meter

_balances: dict[int, tuple[float, Decimal]] = {}


async def ensure_credit(organization_id: int) -> None:
    if settings.HUB_BILLING_MODE != "credits":
        return
    entry = _balances.get(organization_id)
    if entry is None or entry[0] < time.monotonic():
        balance = await db.read_shared(("balance", organization_id), balance_of, organization_id)
        _balances[organization_id] = (time.monotonic() + settings.HUB_BALANCE_CACHE_SECONDS, balance)
    else:
        balance = entry[1]
    if balance - meter.pending(organization_id) <= 0:
        raise InsufficientQuota(
            "You exceeded your current quota: this organization has no credit left. Top up to continue."
        )


def remember(balances: dict[int, Decimal]) -> None:
    expires = time.monotonic() + settings.HUB_BALANCE_CACHE_SECONDS
    for organization_id, balance in balances.items():
        _balances[organization_id] = (expires, balance)


def forget(organization_id: int | None = None) -> None:
    if organization_id is None:
        _balances.clear()
    else:
        _balances.pop(organization_id, None)
