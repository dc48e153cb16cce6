"""The usage shape: a finished call's `UsageEvent` (built by `UsageEvent.of_call` from the adapter's `Usage`),
made storable, then its `UsageRecord` (`record_of`). billing/services.py writes the records and their charges."""

import functools
import re
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import CharField, PositiveIntegerField
from django.utils import timezone

from .models import UsageRecord
from .ratecard import Plan, RateCard, price_usage


@dataclass
class UsageEvent:
    """A finished request, as the gateway hands it over for recording."""

    request_id: str
    organization_id: int
    model_name: str
    status: str
    api_key_id: int | None = None
    served_model: str = ""  # the public id of the model that served; empty: the model asked for
    model_id: int | None = None
    provider_id: int | None = None
    credential_id: int | None = None
    endpoint: str = "chat.completions"
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    image_input_tokens: int = 0
    usage_estimated: bool = False
    cache_hit: bool = False  # answered from the hub's response cache (hub/response_cache.py)
    lease: str = ""  # the credit hold its price was reserved under (hub/credit.py)
    billing_mode: str = ""  # the organisation's; empty: HUB_BILLING_MODE
    unit: str = "tokens"
    images: int = 0
    image_tier: str = ""
    audio_seconds: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    price: Decimal = Decimal(0)
    latency_ms: int = 0
    first_token_ms: int | None = None
    http_status: int = 200
    error: str = ""
    created_at: datetime = field(default_factory=timezone.now)

    @classmethod
    def of_call(cls, usage, *, rate: RateCard | None = None, plan: Plan | None = None, **call) -> "UsageEvent":
        """A finished call's event: `usage` (an adapter's Usage) under the event's names, priced at the
        card of the route that served (none served: free) under the organisation's plan; `call` the rest."""
        names = _usage_names(type(usage))  # type: ignore[arg-type]  # a type is hashable; the stubs say Any
        event = cls(**{ours: getattr(usage, theirs) for theirs, ours in names}, **call)
        if rate is not None:
            event.cost, event.price = price_usage(
                rate,
                prompt_tokens=event.prompt_tokens,
                completion_tokens=event.completion_tokens,
                cached_tokens=event.cache_read_tokens,
                image_input_tokens=event.image_input_tokens,
                images=event.images,
                image_tier=event.image_tier,
                seconds=event.audio_seconds,
                plan=plan,
            )
        return event

    @property
    def served_name(self) -> str:
        """The public id of the model that served: the one asked for unless another (a fallback) did."""
        return self.served_model or self.model_name

    @property
    def mode(self) -> str:
        return self.billing_mode or settings.HUB_BILLING_MODE

    @property
    def charged(self) -> bool:
        return self.price > 0 and self.mode == "credits"


# NUL (PostgreSQL refuses it in text) and lone surrogates (no encoding can write them).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value, limit: int | None = None) -> str:
    """`value` as text any database column takes: unstorable characters replaced, cut to `limit`."""
    text = _UNSTORABLE.sub("\ufffd", value if isinstance(value, str) else str(value or ""))
    return text[:limit] if limit else text


def storable(event: UsageEvent) -> UsageEvent:
    """The event as its record can hold it.

    Its texts come from clients (the model name) and providers (error
    messages): each is cleaned and cut to its column. Its counts were checked
    where the provider's usage was read; here they are only kept in their
    columns' range, the last line before the database refuses the batch.
    """
    if _plainly_storable(event):
        return event  # what the gateway hands over almost always is: nothing to copy
    texts = {name: storable_text(getattr(event, name), _LIMITS.get(name)) for name in _TEXTS}
    numbers = {name: min(max(int(getattr(event, name) or 0), 0), _LARGEST) for name in _COUNTS}
    if event.first_token_ms is not None:
        numbers["first_token_ms"] = min(max(int(event.first_token_ms), 0), _LARGEST)
    numbers["http_status"] = min(max(int(event.http_status), 0), _LARGEST_STATUS)
    # total_tokens is their sum: each count is kept to half the column so that it fits too.
    for name in ("prompt_tokens", "completion_tokens"):
        numbers[name] = min(numbers[name], _LARGEST // 2)
    changes: dict[str, Any] = {**texts, **numbers}  # each column by its name, text or count
    return replace(event, **changes)


def _plainly_storable(event: UsageEvent) -> bool:
    """Every text a str its column holds, with nothing to replace; every count an int in its range."""
    for name in _TEXTS:
        value = getattr(event, name)
        limit = _LIMITS[name]
        if type(value) is not str or (limit is not None and len(value) > limit) or _UNSTORABLE.search(value):
            return False
    for name in _COUNTS:
        value = getattr(event, name)
        if type(value) is not int or not 0 <= value <= _LARGEST // 2:
            return False
    first = event.first_token_ms
    return (first is None or (type(first) is int and 0 <= first <= _LARGEST)) and (
        type(event.http_status) is int and 0 <= event.http_status <= _LARGEST_STATUS
    )


# The event's fields by their record's columns: each text cut to its column, each count kept in its range.
_COLUMNS = {f.attname: f for f in UsageRecord._meta.concrete_fields}
_STORED = tuple(f.name for f in fields(UsageEvent) if f.name in _COLUMNS)
_TEXTS = tuple(name for name in _STORED if isinstance(_COLUMNS[name], CharField))
_LIMITS = {name: _COLUMNS[name].max_length for name in _TEXTS}
_COUNTS = tuple(
    name for name in _STORED if isinstance(_COLUMNS[name], PositiveIntegerField) and not _COLUMNS[name].null
)
_LARGEST = 2**31 - 1  # PositiveIntegerField on every backend
_LARGEST_STATUS = 32767  # PositiveSmallIntegerField


# A Usage's fields the event names otherwise; its others of the same name are the event's.
_FROM_USAGE = {"estimated": "usage_estimated", "seconds": "audio_seconds"}


@functools.cache
def _usage_names(usage_type: Any) -> tuple[tuple[str, str], ...]:
    """(usage's name, event's name) of every field of a usage type the event keeps (once per type)."""
    event_fields = {f.name for f in fields(UsageEvent)}
    names = ((f.name, _FROM_USAGE.get(f.name, f.name)) for f in fields(usage_type))
    return tuple((theirs, ours) for theirs, ours in names if ours in event_fields)


# The event's fields its record stores as they are; the record's others are worked out in record_of.
_RECORDED = tuple(name for name in _STORED if name not in ("served_model", "billing_mode"))


def record_of(event: UsageEvent) -> UsageRecord:
    # The mode is stored as it is now: HUB_BILLING_MODE or the organisation's
    # may change later, and invoices bill exactly the postpaid records.
    return UsageRecord(
        **{name: getattr(event, name) for name in _RECORDED},
        served_model=event.served_name,
        billing_mode=event.mode,
        total_tokens=event.prompt_tokens + event.completion_tokens,
    )


# A record as a row for billing.inserts: these columns, in this order (record_of's, without a model instance).
RECORD_FIELDS = (*_RECORDED, "served_model", "billing_mode", "total_tokens")


def record_row(event: UsageEvent) -> tuple:
    return (
        *(getattr(event, name) for name in _RECORDED),
        event.served_name,
        event.mode,
        event.prompt_tokens + event.completion_tokens,
    )
