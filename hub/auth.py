"""Step 1 of a request: who is calling. A hub API key, resolved to its organisation.

Keys are cached in-process for HUB_AUTH_CACHE_SECONDS so the hot path does not
touch the database; a revocation is seen at once by the process that made it
and by every other process within that time.
"""

import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from accounts import caches
from accounts.models import ApiKey
from accounts.services import hash_api_key
from billing.ratecard import Plan

from . import db
from .errors import AuthenticationFailed
from .policy import NO_POLICY, Policy

_MAX_ENTRIES = 50_000
_cache: dict[str, tuple[float, "KeyInfo | None"]] = {}


@dataclass(frozen=True)
class KeyInfo:
    key_id: int
    organization_id: int
    expires_at: datetime | None
    policy: Policy = NO_POLICY
    plan: Plan | None = None  # the organisation's price plan
    billing_mode: str = ""  # the organisation's (credits, postpaid, internal); empty: HUB_BILLING_MODE
    prefix: str = ""  # the key's visible prefix, for the request log (never the key itself)
    cache_seconds: int = 0  # the response cache's TTL for this key's answers (hub/response_cache.py); 0: off
    cache_sampled: bool = False  # answers sampled above temperature 0 are cached too


def plan_of(account) -> Plan | None:
    """The price plan of an organisation's CreditAccount (None: none, list prices), as the gateway carries it."""
    deal = account.price_plan if account is not None else None
    return Plan(discount=deal.discount, margin=deal.margin) if deal is not None else None


def raw_key_from(request) -> str:
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.headers.get("x-api-key", "").strip()


def _load(hashed: str) -> KeyInfo | None:
    key = (
        ApiKey.objects.filter(hashed_key=hashed, revoked_at__isnull=True, organization__is_active=True)
        .select_related("organization", "organization__credit__price_plan")
        .first()
    )
    if key is None:
        return None
    account = getattr(key.organization, "credit", None)
    return KeyInfo(
        key.pk,
        key.organization_id,
        key.expires_at,
        Policy.of(key, key.organization),
        plan_of(account),
        account.billing_mode if account is not None else "",
        key.prefix,
        _cache_seconds(key, key.organization),
        key.organization.response_cache_sampled,
    )


def _cache_seconds(key, organization) -> int:
    """The key's own response cache TTL (0 turns it off), else its organisation's; none: off."""
    own = key.response_cache_seconds
    return (own if own is not None else organization.response_cache_seconds) or 0


async def authenticate(request) -> KeyInfo:
    raw = raw_key_from(request)
    if not raw:
        raise AuthenticationFailed(
            "You didn't provide an API key. Send it as 'Authorization: Bearer sk-hub-…' or 'x-api-key'.", code=None
        )
    hashed = hash_api_key(raw)
    now = time.monotonic()
    cached = _cache.get(hashed)
    if cached is None or cached[0] < now:
        info = await db.read_shared(("key", hashed), _load, hashed)
        if len(_cache) >= _MAX_ENTRIES:
            _cache.clear()
        _cache[hashed] = (now + settings.HUB_AUTH_CACHE_SECONDS, info)
    else:
        info = cached[1]
    if info is None:
        raise AuthenticationFailed("Incorrect API key provided. Check the key, or create a new one.")
    if info.expires_at is not None and info.expires_at <= timezone.now():
        raise AuthenticationFailed("This API key has expired.", code="expired_api_key")
    return info


def forget_key(hashed: str) -> None:
    _cache.pop(hashed, None)


def forget_all() -> None:
    _cache.clear()


caches.register(forget_all, lambda: _cache)
