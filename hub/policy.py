"""Step 2b of a request: what this key may do — models, addresses, rate and budget.

A key's own limits win over its organisation's, which are its keys' defaults.
Forbidden model or address: 403. Over a rate or a budget: 429 with retry-after
and OpenAI's x-ratelimit-* headers. A key with no limits costs nothing here.

Counting: requests are counted when admitted; tokens and spend when the
request ends (hub.relay), so requests already in flight when a limit is
reached can pass it by what they use.
"""

import fnmatch
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Sum

from accounts import addresses
from billing.models import UsageRecord, UsageRollup, UsageRollupState
from billing.money import from_units, to_units

from . import db
from .errors import HubError, RateLimited
from .limits import counters


class Forbidden(HubError):
    status = 403
    type = "permission_error"


@dataclass(frozen=True)
class Policy:
    allowed_models: tuple = ()
    allowed_ips: tuple = ()  # ip_network objects
    rpm: int | None = None
    tpm: int | None = None
    budget: Decimal | None = None
    period: str = "monthly"
    empty: bool = field(init=False, default=True)

    def __post_init__(self):
        object.__setattr__(
            self,
            "empty",
            not (self.allowed_models or self.allowed_ips or self.rpm or self.tpm or self.budget is not None),
        )

    @classmethod
    def of(cls, key, organization) -> "Policy":
        """The key's limits, each defaulting to its organisation's."""

        def pick(name):
            own = getattr(key, name)
            return own if own not in (None, [], "") else getattr(organization, name)

        budget_from = key if key.budget is not None else organization
        return cls(
            allowed_models=tuple(pick("allowed_models") or ()),
            allowed_ips=addresses.networks_of(key, organization),
            rpm=pick("rpm_limit"),
            tpm=pick("tpm_limit"),
            budget=budget_from.budget,
            period=budget_from.budget_period,
        )


NO_POLICY = Policy()


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime | None]:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return day, day + timedelta(days=1)
    if period == "weekly":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period == "monthly":
        start = day.replace(day=1)
        return start, (start + timedelta(days=32)).replace(day=1)
    return datetime(2000, 1, 1, tzinfo=UTC), None


def _spent(key_id: int, since: datetime) -> Decimal:
    """What the key spent since `since` (a day's start): days that retention pruned are counted from
    their daily rollups, the rest from the raw records (billing/rollups.py)."""
    pruned = UsageRollupState.objects.filter(pk=1).values_list("pruned_through", flat=True).first()
    total = UsageRecord.objects.filter(api_key_id=key_id, created_at__gte=max(since, pruned or since)).aggregate(
        s=Sum("price")
    )["s"] or Decimal(0)
    if pruned is not None and pruned > since:
        total += UsageRollup.objects.filter(
            granularity=UsageRollup.Granularity.DAY,
            api_key_ref=key_id,
            period_start__gte=since,
            period_start__lt=pruned,
        ).aggregate(s=Sum("price"))["s"] or Decimal(0)
    return total


def _allowed_model(patterns, names) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns for name in names if name)


def may_use(policy: Policy, model, requested: str = "") -> bool:
    """May a key with this policy use this model (named `requested`, its public id or its alias)?
    The one check the gateway, /v1/models and /v1/status make."""
    return not policy.allowed_models or _allowed_model(policy.allowed_models, (requested, model.public_id, model.alias))


def address_check(policy: Policy, client_ip: str) -> None:
    """Refuse a key used from an address outside its (or its organisation's) allowed_ips."""
    if not addresses.address_allowed(policy.allowed_ips, client_ip):
        raise Forbidden("This API key may not be used from your address.", code="ip_not_allowed")


async def admit(key, model, requested: str, client_ip: str) -> dict:
    """Refuse what the key may not do; return the x-ratelimit-* headers for the answer."""
    policy = key.policy
    if policy.empty:
        return {}
    address_check(policy, client_ip)
    if not may_use(policy, model, requested):
        raise Forbidden(f"This API key may not use the model `{requested}`.", code="model_not_allowed", param="model")
    now = time.time()
    minute, reset_in = int(now // 60), math.ceil(60 - now % 60)
    store, headers = counters(), {}
    if policy.rpm:
        used = await store.incr(f"hub:limit:rpm:{key.key_id}:{minute}", 1, 120)
        headers.update(
            {
                "x-ratelimit-limit-requests": str(policy.rpm),
                "x-ratelimit-remaining-requests": str(max(policy.rpm - used, 0)),
                "x-ratelimit-reset-requests": f"{reset_in}s",
            }
        )
        if used > policy.rpm:
            raise RateLimited(
                f"Rate limit reached: {policy.rpm} requests per minute for this key.",
                headers=dict(headers, **{"retry-after": str(reset_in)}),
            )
    if policy.tpm:
        (tokens,) = await store.get_many([f"hub:limit:tpm:{key.key_id}:{minute}"])
        tokens = tokens or 0
        headers.update(
            {
                "x-ratelimit-limit-tokens": str(policy.tpm),
                "x-ratelimit-remaining-tokens": str(max(policy.tpm - tokens, 0)),
                "x-ratelimit-reset-tokens": f"{reset_in}s",
            }
        )
        if tokens >= policy.tpm:
            raise RateLimited(
                f"Rate limit reached: {policy.tpm} tokens per minute for this key.",
                code="tokens_rate_limit_exceeded",
                headers=dict(headers, **{"retry-after": str(reset_in)}),
            )
    if policy.budget is not None:
        start, end = period_bounds(policy.period, datetime.now(UTC))
        spend_key = _spend_key(key.key_id, start)
        (spent,) = await store.get_many([spend_key])
        if spent is None:
            # First use this period (or this process, without Redis): start from the records.
            spent = to_units(await db.read(_spent, key.key_id, start))
            await store.set_if_absent(spend_key, spent, _ttl(end))
        if from_units(spent) >= policy.budget:
            retry = {"retry-after": str(int((end - datetime.now(UTC)).total_seconds()))} if end else {}
            raise RateLimited(
                f"This API key has spent its {policy.period} budget of {policy.budget}.",
                code="budget_exceeded",
                headers=dict(headers, **retry),
            )
    return headers


def _spend_key(key_id: int, start: datetime) -> str:
    return f"hub:limit:spend:{key_id}:{int(start.timestamp())}"


def _ttl(end: datetime | None) -> int:
    if end is None:
        return 400 * 86400
    return max(int((end - datetime.now(UTC)).total_seconds()) + 3600, 60)


async def account(key, tokens: int, price: Decimal) -> None:
    """Count what a finished request used against the key's per-minute tokens and budget."""
    policy = key.policy
    store = counters()
    if policy.tpm and tokens:
        await store.incr(f"hub:limit:tpm:{key.key_id}:{int(time.time() // 60)}", tokens, 120)
    if policy.budget is not None and price:
        start, end = period_bounds(policy.period, datetime.now(UTC))
        spend_key = _spend_key(key.key_id, start)
        (spent,) = await store.get_many([spend_key])
        if spent is not None:  # else the next admit() loads it from the records, this one included
            await store.incr(spend_key, to_units(price), _ttl(end))
