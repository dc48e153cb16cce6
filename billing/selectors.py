"""Reads of an organisation's usage and credit, for the management API (billing/api.py) and the dashboard's
billing pages (billing/views/)."""

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from django.db import connection
from django.db.models import BigIntegerField, Case, Count, F, IntegerField, Q, Sum, Value, When, Window
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from providers.models import CatalogModel

from .models import AutoRecharge, LedgerEntry, LowBalanceAlert, Payment, UsageRecord
from .money import from_units
from .services import account_open


def usage_records_of(*, organization, since: datetime, until: datetime):
    return UsageRecord.objects.filter(organization=organization, created_at__gte=since, created_at__lt=until)


def model_names_by_alias() -> dict[str, str]:
    """Each catalogue model's alias, to its public id."""
    return dict(CatalogModel.objects.exclude(alias="").values_list("alias", "public_id"))


def model_that_served(served_model: str, aliases: dict[str, str]) -> str:
    """The one name usage is filed under: the model that served, as recorded, a catalogue model's alias (a
    request refused before its model was resolved) read as that model's public id (billing/rollups.py too)."""
    return aliases.get(served_model, served_model)


TOTALS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "price")


def usage_totals_of(*, organization, since: datetime, until: datetime) -> list[dict]:
    """Requests, tokens and price per model that served and UTC day: one row per catalogue model, however
    it was named (`demo` and `demo/echo` are one model)."""
    rows = (
        usage_records_of(organization=organization, since=since, until=until)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day", "served_model")
        .annotate(
            requests=Count("id"),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            total_tokens=Sum("total_tokens"),
            price=Sum("price"),
        )
        .order_by()
    )
    aliases = model_names_by_alias()
    totals: dict[tuple[date, str], dict] = {}
    for row in rows:
        model = model_that_served(row["served_model"], aliases)
        total = totals.setdefault(
            (row["day"], model), {"day": row["day"], "served_model": model, **dict.fromkeys(TOTALS, 0)}
        )
        for name in TOTALS:
            total[name] += row[name]
    return [totals[key] for key in sorted(totals)]


def balance_of(*, organization):
    return account_open(organization=organization)


# The dashboard's billing pages (billing/views/) -------------------------------


def payments_of(*, organization):
    """The organisation's Stripe payments (top-ups and auto-recharges), newest first."""
    return Payment.objects.filter(organization=organization).select_related("requested_by")


def payment_credited(payment: Payment) -> bool:
    """Whether the payment's credit is in the ledger: only Stripe's verified webhook writes it (billing/payments.py)."""
    return (
        bool(payment.stripe_payment_intent_id)
        and LedgerEntry.objects.filter(idempotency_key=f"stripe:payment:{payment.stripe_payment_intent_id}").exists()
    )


def auto_recharge_of(*, organization) -> AutoRecharge | None:
    return AutoRecharge.objects.filter(organization=organization).first()


def low_balance_alert_of(*, organization) -> LowBalanceAlert | None:
    return LowBalanceAlert.objects.filter(account__organization=organization).first()


@dataclass
class LedgerRow:
    """One line of the ledger as people read it: an entry, or one UTC day's usage charges in a row (a day's
    usage is split where another entry falls in it, so every line's balance is the one before plus its amount)."""

    kind: str  # top_up, grant, usage, refund, dispute, adjustment
    first_at: datetime
    last_at: datetime
    amount: Decimal
    entries: int
    description: str
    balance_after: Decimal
    payment_id: int | None = None


@dataclass
class LedgerPeriod:
    since: datetime
    until: datetime
    opening: Decimal  # the balance when the period starts: every entry before it
    rows: list[LedgerRow]  # newest first

    @property
    def closing(self) -> Decimal:
        return self.rows[0].balance_after if self.rows else self.opening

    @property
    def change(self) -> Decimal:
        return self.closing - self.opening


def _kind(kind: str, key: str) -> str:
    if kind == LedgerEntry.Kind.USAGE:
        return "usage"
    if key.startswith("stripe:payment:"):
        return "top_up"
    if key.startswith("stripe:refund:"):
        return "refund"
    if key.startswith("stripe:dispute:"):
        return "dispute"
    return "grant" if kind == LedgerEntry.Kind.GRANT else "adjustment"


def _when(value) -> datetime:
    # A raw cursor gives SQLite's text; PostgreSQL's driver an aware datetime already.
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None:
            raise ValueError(f"not a datetime: {value!r}")
        value = parsed
    return value if timezone.is_aware(value) else timezone.make_aware(value, UTC)


def ledger_of(*, organization, since: datetime, until: datetime) -> LedgerPeriod:
    """The ledger entries of [since, until) with the balance after each line, from the ledger alone.

    Usage is written one entry per request; it is summed per UTC day and per run between other entries, in
    SQL (window functions, on PostgreSQL and SQLite alike), so a busy month is a few dozen lines to read."""
    entries = LedgerEntry.objects.filter(account__organization=organization)
    opening = entries.filter(created_at__lt=since).aggregate(total=Sum("amount"))["total"] or Decimal(0)
    order = [F("created_at").asc(), F("id").asc()]
    inner = (
        entries.filter(created_at__gte=since, created_at__lt=until)
        .annotate(
            day=TruncDate("created_at", tzinfo=UTC),
            # How many entries that are not usage came so far: usage between the same two is one run.
            run=Window(
                Sum(Case(When(~Q(kind=LedgerEntry.Kind.USAGE), then=1), default=0, output_field=IntegerField())),
                order_by=order,
            ),
            alone=Case(
                When(kind=LedgerEntry.Kind.USAGE, then=Value(0)), default=F("id"), output_field=BigIntegerField()
            ),
        )
        .values("id", "kind", "amount", "description", "idempotency_key", "created_at", "day", "run", "alone")
        .order_by()
    )
    sql, params = inner.query.sql_with_params()
    # Each group is contiguous in (created_at, id) order, so the running sum over the groups in that order
    # is the balance after each one.
    # The only text put in is Django's own compiled query; its values go as parameters.
    grouped = f"""
        SELECT MIN(created_at), MAX(created_at), kind, SUM(amount), COUNT(*), MAX(description),
               MAX(idempotency_key), SUM(SUM(amount)) OVER (ORDER BY MIN(created_at), MIN(id))
        FROM ({sql}) AS entries
        GROUP BY alone, day, run, kind
        ORDER BY MIN(created_at) DESC, MIN(id) DESC
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(grouped, params)
        found = cursor.fetchall()
    rows = [
        LedgerRow(
            kind=_kind(kind, key or ""),
            first_at=_when(first),
            last_at=_when(last),
            amount=from_units(amount),
            entries=count,
            description="" if kind == LedgerEntry.Kind.USAGE else description,
            balance_after=opening + from_units(running),
        )
        for first, last, kind, amount, count, description, key, running in found
    ]
    _link_payments(organization, rows, [row[6] or "" for row in found])
    return LedgerPeriod(since=since, until=until, opening=opening, rows=rows)


def _link_payments(organization, rows: list[LedgerRow], keys: list[str]) -> None:
    intents = {key.removeprefix("stripe:payment:") for key in keys if key.startswith("stripe:payment:")}
    payments = dict(
        Payment.objects.filter(organization=organization, stripe_payment_intent_id__in=intents).values_list(
            "stripe_payment_intent_id", "pk"
        )
    )
    for row, key in zip(rows, keys, strict=True):
        if row.kind == "top_up":
            row.payment_id = payments.get(key.removeprefix("stripe:payment:"))


def month_of(day: date) -> tuple[datetime, datetime]:
    """The UTC calendar month that holds `day`, as [start, end)."""
    start = datetime(day.year, day.month, 1, tzinfo=UTC)
    end = datetime(day.year + (day.month == 12), day.month % 12 + 1, 1, tzinfo=UTC)
    return start, end
