"""The request log's reads (billing/views/requests.py, billing/export.py and the management API's export):
an organisation's usage records, newest first, filtered by key, model, status, endpoint and a range of days.

Pages go by keyset on (created_at, id), never OFFSET, and nothing counts the whole range: page 1 and page 50
cost the same, an index range scan of the composite indexes of billing migration 0021 (organisation, the
filtered column, created_at, id), read backwards. The cursor is opaque and signed, so a tampered one is refused
rather than run. No prompt or answer content is stored, so none is read.

What a tenant sees as spend is the price (what the organisation is charged); an organisation in internal mode
is charged nothing and sees what its requests cost the operator instead, as on the overview (billing/overview.py).
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import cast

from django import forms
from django.core import signing
from django.db.models import Count, Q, QuerySet, Sum
from django.utils.translation import gettext_lazy as _

from accounts import selectors as account_selectors
from accounts.models import ApiKey

from .models import BillingMode, UsageRecord
from .modes import effective_mode
from .selectors import balance_of

PAGE_SIZE = 50
MAX_DAYS = 366  # the management API's longest range (accounts.serializers.DateRangeSerializer)
_CURSOR_SALT = "billing.requestlog.cursor"

# What a page of the log reads of each record (and of its key and the key's team): nothing else is loaded.
LIST_COLUMNS = (
    "id",
    "request_id",
    "created_at",
    "model_name",
    "served_model",
    "endpoint",
    "stream",
    "cache_hit",
    "status",
    "http_status",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "price",
    "cost",
    "latency_ms",
    "first_token_ms",
    "error",
    "api_key__name",
    "api_key__prefix",
    "api_key__purpose",
    "api_key__team__name",
)


class InvalidCursor(ValueError):
    """A cursor the hub did not sign (tampered, truncated, or of another filter's page)."""


STATUS_LABELS = {
    UsageRecord.Status.OK: _("Completed"),
    UsageRecord.Status.CLIENT_ERROR: _("Refused (client error)"),
    UsageRecord.Status.RATE_LIMITED: _("Rate limited"),
    UsageRecord.Status.UNAVAILABLE: _("No route available"),
    UsageRecord.Status.UPSTREAM_ERROR: _("Upstream error"),
    UsageRecord.Status.CANCELLED: _("Client disconnected"),
    UsageRecord.Status.SERVER_ERROR: _("Hub error"),
}


class LogFilter(forms.Form):
    """The log's filters, from a query string: the page's and both CSV exports'. Every field is optional."""

    key = forms.ModelChoiceField(
        queryset=ApiKey.objects.none(), required=False, label=_("Key"), empty_label=_("Any key")
    )
    model = forms.CharField(required=False, max_length=200, label=_("Model"))
    status = forms.ChoiceField(
        required=False, label=_("Status"), choices=[("", _("Any status")), *STATUS_LABELS.items()]
    )
    endpoint = forms.CharField(required=False, max_length=50, label=_("Endpoint"))
    start = forms.DateField(required=False, label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, data, *, organization):
        super().__init__(data)
        key = cast(forms.ModelChoiceField, self.fields["key"])
        # Only the organisation's keys (revoked ones too: their requests stay in the log).
        key.queryset = account_selectors.keys_of(organization=organization).order_by("name", "pk")

    def clean(self):
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            self.add_error("start", _("The first day must not be after the last."))
        elif start and end and (end - start).days > MAX_DAYS:
            self.add_error("start", _("A range covers at most %(days)s days.") % {"days": MAX_DAYS})
        return data


def status_label(status: str) -> str:
    return str(STATUS_LABELS.get(status, status))  # type: ignore[call-overload]


@dataclass(frozen=True)
class Filters:
    """Validated filters: the range is [since, until) of whole days of the active time zone."""

    since: datetime
    until: datetime
    key: int | None = None
    model: str = ""
    status: str = ""
    endpoint: str = ""


def filters_of(form: LogFilter) -> Filters:
    """A valid LogFilter's filters (the range defaults to the last 30 days, as the management API's)."""
    data = form.cleaned_data
    since, until = account_selectors.day_range(data.get("start"), data.get("end"))
    key = data.get("key")
    return Filters(
        since=since,
        until=until,
        key=key.pk if key is not None else None,
        model=data.get("model", ""),
        status=data.get("status", ""),
        endpoint=data.get("endpoint", ""),
    )


def records_of(*, organization, filters: Filters) -> QuerySet[UsageRecord]:
    """The organisation's records matching the filters, newest first (ties by id, so every order is total)."""
    records = UsageRecord.objects.filter(
        organization=organization, created_at__gte=filters.since, created_at__lt=filters.until
    )
    if filters.key is not None:
        records = records.filter(api_key_id=filters.key)
    if filters.model:
        # The model that served is what the usage is filed under (invoices, rollups); asking for a model
        # by the name a fallback answered for finds it too.
        records = records.filter(served_model=filters.model)
    if filters.status:
        records = records.filter(status=filters.status)
    if filters.endpoint:
        records = records.filter(endpoint=filters.endpoint)
    return records.order_by("-created_at", "-id")


# The cursor: (created_at in microseconds since the epoch, id) of the last row shown, signed.


def cursor_of(record: UsageRecord) -> str:
    return signing.Signer(salt=_CURSOR_SALT).sign_object([_micros(record.created_at), record.pk])


def _micros(when: datetime) -> int:
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def cursor_position(cursor: str) -> tuple[datetime, int]:
    try:
        micros, pk = signing.Signer(salt=_CURSOR_SALT).unsign_object(cursor)
        if not (isinstance(micros, int) and isinstance(pk, int)) or isinstance(micros, bool) or isinstance(pk, bool):
            raise InvalidCursor(cursor)
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros), pk
    except (signing.BadSignature, ValueError, TypeError, OverflowError) as error:
        raise InvalidCursor(cursor) from error


@dataclass(frozen=True)
class Page:
    records: list[UsageRecord]
    next_cursor: str | None  # the older page's, None on the last


def page_of(*, organization, filters: Filters, cursor: str = "", size: int = PAGE_SIZE) -> Page:
    """One page of the log after `cursor` (the first without): one query, with the key and its team joined."""
    records = records_of(organization=organization, filters=filters)
    if cursor:
        created_at, pk = cursor_position(cursor)
        # The redundant `created_at <= c` is the index's range condition; the OR only drops ties already shown.
        records = records.filter(created_at__lte=created_at).filter(
            Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=pk)
        )
    rows = list(records.select_related("api_key__team").only(*LIST_COLUMNS)[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    for row in rows:
        row.status_label = status_label(row.status)  # type: ignore[attr-defined]
    return Page(records=rows, next_cursor=cursor_of(rows[-1]) if more else None)


def record_of(*, organization, pk: int) -> UsageRecord | None:
    """One record of the organisation, with its key, team, provider and catalogue model; None if not its."""
    record = (
        UsageRecord.objects.filter(organization=organization, pk=pk)
        .select_related("api_key__team", "provider", "model")
        .first()
    )
    if record is not None:
        record.status_label = status_label(record.status)  # type: ignore[attr-defined]
    return record


def shows_cost(organization) -> bool:
    """Internal organisations are charged nothing: they see what their requests cost the operator."""
    return effective_mode(balance_of(organization=organization)) == BillingMode.INTERNAL


@dataclass(frozen=True)
class Totals:
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    spend: Decimal


def totals_of(records: QuerySet[UsageRecord], *, cost: bool) -> Totals:
    """Requests, tokens and spend of the records: one aggregate. Spend is the overview's: in internal mode
    the cost of every record, otherwise the price of those charged (run in any mode but internal)."""
    spend = Sum("cost") if cost else Sum("price", filter=~Q(billing_mode=BillingMode.INTERNAL))
    sums = records.order_by().aggregate(
        requests=Count("id"),
        prompt_tokens=Sum("prompt_tokens"),
        completion_tokens=Sum("completion_tokens"),
        total_tokens=Sum("total_tokens"),
        spend=spend,
    )
    return Totals(
        requests=sums["requests"],
        prompt_tokens=sums["prompt_tokens"] or 0,
        completion_tokens=sums["completion_tokens"] or 0,
        total_tokens=sums["total_tokens"] or 0,
        spend=sums["spend"] or Decimal(0),
    )
