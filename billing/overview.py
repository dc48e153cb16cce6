"""The dashboard's overview of an organisation (billing/views/overview.py): its credit, what it spent, how many
requests it made and how many failed.

Days and months are those of the active time zone (django.utils.timezone), not UTC: "today" is the user's
today. Every number is one aggregate over the organisation's usage records (one query), beside its credit
account and its low-balance threshold.

What is "spent" follows the organisation's mode (billing/modes.py): in credits and postpaid mode the price of
the requests that were charged (every mode but internal; a record keeps the mode its request ran in), in
internal mode what the requests cost the operator. Postpaid's headline, this month's charges so far, is the
price of the month's postpaid requests only, what the month's invoice will bill (invoices go by UTC month).

Balance is the credit account's, as the management API shows it; available is balance less the holds of
requests in flight, the number requests are refused against, so days left and the low-balance banner read it,
as the low-balance email does (billing/notifications.py).
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone

from .models import BillingMode, LowBalanceAlert, UsageRecord
from .modes import effective_mode
from .notifications import default_threshold
from .selectors import balance_of

WEEK = 7  # days of spend that days-left averages over: the last whole ones, today left out
ZERO = Decimal(0)


@dataclass(frozen=True)
class Overview:
    mode: str
    balance: Decimal
    held: Decimal
    available: Decimal
    threshold: Decimal
    spend_today: Decimal
    spend_month: Decimal
    spend_week: Decimal  # the last WEEK whole days
    charges_month: Decimal  # postpaid requests of this month
    requests_today: int
    failed_today: int

    @property
    def low_balance(self) -> bool:
        """Only credits organisations run out: postpaid and internal ones are never refused."""
        return self.mode == BillingMode.CREDITS and self.available < self.threshold

    @property
    def days_left(self) -> int | None:
        """Whole days the available credit lasts at the last week's average daily spend; None without spend."""
        if self.mode != BillingMode.CREDITS or self.spend_week <= 0:
            return None
        return int(max(self.available, ZERO) * WEEK // self.spend_week)

    @property
    def error_percent(self) -> Decimal | None:
        """Today's failed requests (any status but ok) as a percentage of today's requests; None without any."""
        if not self.requests_today:
            return None
        return Decimal(self.failed_today) * 100 / Decimal(self.requests_today)


def _start_of(day: date) -> datetime:
    # Midnight of the active zone, made aware there (a day is not always 24 hours where clocks change).
    return timezone.make_aware(datetime.combine(day, time.min))


def _periods(today: date) -> dict[str, tuple[datetime, datetime]]:
    month = today.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    return {
        "today": (_start_of(today), _start_of(today + timedelta(days=1))),
        "month": (_start_of(month), _start_of(next_month)),
        "week": (_start_of(today - timedelta(days=WEEK)), _start_of(today)),
    }


def _within(period: tuple[datetime, datetime]) -> Q:
    return Q(created_at__gte=period[0], created_at__lt=period[1])


def usage_summary_of(*, organization, mode: str, today: date | None = None) -> dict:
    """Spend (today, this month, the last WEEK whole days), this month's postpaid charges, and today's
    requests and failures: one aggregate query."""
    periods = _periods(today or timezone.localdate())
    # Internal organisations are charged nothing: their spend is what their requests cost.
    spent, charged = ("cost", Q()) if mode == BillingMode.INTERNAL else ("price", ~Q(billing_mode=BillingMode.INTERNAL))
    since = min(start for start, _ in periods.values())
    until = max(end for _, end in periods.values())
    totals = UsageRecord.objects.filter(
        organization=organization, created_at__gte=since, created_at__lt=until
    ).aggregate(
        spend_today=Sum(spent, filter=_within(periods["today"]) & charged),
        spend_month=Sum(spent, filter=_within(periods["month"]) & charged),
        spend_week=Sum(spent, filter=_within(periods["week"]) & charged),
        charges_month=Sum("price", filter=_within(periods["month"]) & Q(billing_mode=BillingMode.POSTPAID)),
        requests_today=Count("id", filter=_within(periods["today"])),
        failed_today=Count("id", filter=_within(periods["today"]) & ~Q(status=UsageRecord.Status.OK)),
    )
    return {name: ZERO if value is None else value for name, value in totals.items()}


def threshold_of(account) -> Decimal:
    """The account's low-balance threshold: its alert's, else HUB_LOW_BALANCE_THRESHOLD."""
    threshold = LowBalanceAlert.objects.filter(account=account).values_list("threshold", flat=True).first()
    return default_threshold() if threshold is None else threshold


def overview_of(*, organization, today: date | None = None) -> Overview:
    account = balance_of(organization=organization)
    mode = effective_mode(account)
    return Overview(
        mode=mode,
        balance=account.balance,
        held=account.held,
        available=account.available,
        threshold=threshold_of(account),
        **usage_summary_of(organization=organization, mode=mode, today=today),
    )
