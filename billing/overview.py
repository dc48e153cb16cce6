"""The dashboard's overview of an organisation (billing/views/overview.py): its credit, what it spent, how many
requests it made and how many failed.

Days and months are those of the active time zone (django.utils.timezone), not UTC: "today" is the user's
today. Every number is one aggregate query over usage, beside its credit account and its low-balance
threshold: over the raw records of today (and yesterday, just after midnight) and the rollups of the days
before (billing/rollups.py) once the rollups are known to hold them; over the raw records only otherwise
(usage_summary_of). At a million records a month that is what keeps the page fast: bench/dashboard.py.

What is "spent" follows the organisation's mode (billing/modes.py): in credits and postpaid mode the price of
the requests that were charged (every mode but internal; a record keeps the mode its request ran in), in
internal mode what the requests cost the operator. Postpaid's headline, this month's charges so far, is the
price of the month's postpaid requests only, what the month's invoice will bill (invoices go by UTC month).

Balance is the credit account's, as the management API shows it; available is balance less the holds of
requests in flight, the number requests are refused against, so days left and the low-balance banner read it,
as the low-balance email does (billing/notifications.py).
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import (
    Count,
    ExpressionWrapper,
    F,
    Func,
    Q,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import BillingMode, LowBalanceAlert, UsageRecord, UsageRollup, UsageRollupState
from .modes import effective_mode
from .money import MoneyField
from .notifications import default_threshold
from .rollups import DAY, start_of_day
from .selectors import balance_of

WEEK = 7  # days of spend that days-left averages over: the last whole ones, today left out
ZERO = Decimal(0)
# How late after its request started a usage record may be written and still be in the rollups the overview
# reads: the roll-up (every 5 minutes) rebuilds every hour whose records changed.
LATE = timedelta(hours=1)


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


def _rollups_of(period: tuple[datetime, datetime]) -> Q:
    """The rollups that sum to a period of whole UTC hours: the daily ones of the whole UTC days in it, the
    hourly ones of the hours before and after them."""
    start, end = period
    first_day = start_of_day(start) if start_of_day(start) == start else start_of_day(start) + DAY
    last_day = start_of_day(end)
    if first_day >= last_day:
        return Q(granularity=UsageRollup.Granularity.HOUR, period_start__gte=start, period_start__lt=end)
    return (
        Q(granularity=UsageRollup.Granularity.DAY, period_start__gte=first_day, period_start__lt=last_day)
        | Q(granularity=UsageRollup.Granularity.HOUR, period_start__gte=start, period_start__lt=first_day)
        | Q(granularity=UsageRollup.Granularity.HOUR, period_start__gte=last_day, period_start__lt=end)
    )


def _whole_hour(moment: datetime) -> bool:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0) == moment


def _sum_of(queryset, function: str, field: str, output_field=None):
    """SUM or COUNT of `field` over `queryset`, as a scalar subquery: no GROUP BY, so one row, 0 when empty."""
    values = queryset.order_by().annotate(v=Func(F(field), function=function, output_field=output_field)).values("v")
    return Coalesce(Subquery(values, output_field=output_field), Value(0), output_field=output_field)


def _charged_by(mode: str) -> tuple[str, Q]:
    """What the organisation's spend sums, and of which requests."""
    # Internal organisations are charged nothing: their spend is what their requests cost.
    return ("cost", Q()) if mode == BillingMode.INTERNAL else ("price", ~Q(billing_mode=BillingMode.INTERNAL))


def _boundary(state: UsageRollupState | None, since: datetime, today_start: datetime) -> datetime:
    """Where the raw records take over from the rollups: today's start when the last roll-up ran LATE after it,
    else yesterday's when it ran LATE after that; `since` (no rollups read) otherwise, or when a day since
    `since` was pruned."""
    if state is None or state.rolled_up_at is None or (state.pruned_through and state.pruned_through > since):
        return since
    for boundary in (today_start, today_start - timedelta(days=1)):
        if state.rolled_up_at >= boundary + LATE:
            return max(boundary, since)
    return since


def usage_summary_of(
    *, organization, mode: str, today: date | None = None, rollup_state: UsageRollupState | None = None
) -> dict:
    """Spend (today, this month, the last WEEK whole days), this month's postpaid charges, and today's
    requests and failures: one aggregate query over usage.

    Given the rollups' state (UsageRollupState, as overview_of reads it), the days before today are read from
    the rollups (billing/rollups.py) when the last roll-up ran at least LATE after today began (yesterday too
    from the raw records when it ran LATE after yesterday began) and no day in range was pruned: the rollups
    then hold every record written within LATE of its request's start (each roll-up, every 5 minutes,
    rebuilds every hour whose records changed). Otherwise, or in a zone whose midnight is not a whole UTC
    hour, every figure is read from the raw records.
    """
    periods = _periods(today or timezone.localdate())
    spent, charged = _charged_by(mode)
    postpaid = Q(billing_mode=BillingMode.POSTPAID)
    since = min(start for start, _ in periods.values())
    until = max(end for _, end in periods.values())
    boundary = _boundary(rollup_state, since, periods["today"][0])
    if not all(_whole_hour(moment) for moment in (since, boundary, periods["month"][0])):
        boundary = since
    rollups = UsageRollup.objects.filter(organization=organization)

    def total(field: str, period: tuple[datetime, datetime], condition: Q):
        """`field` summed over `period`: the raw records' part from boundary on, the rollups' before it."""
        raw = Coalesce(Sum(field, filter=_within(period) & condition), Value(0), output_field=MoneyField())
        start, end = period[0], min(period[1], boundary)
        if start >= end:
            return raw
        rolled = _sum_of(rollups.filter(_rollups_of((start, end)) & condition), "SUM", field, MoneyField())
        return ExpressionWrapper(raw + rolled, MoneyField())

    totals = UsageRecord.objects.filter(
        organization=organization, created_at__gte=boundary, created_at__lt=until
    ).aggregate(
        spend_today=total(spent, periods["today"], charged),
        spend_month=total(spent, periods["month"], charged),
        spend_week=total(spent, periods["week"], charged),
        charges_month=total("price", periods["month"], postpaid),
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
        **usage_summary_of(
            organization=organization,
            mode=mode,
            today=today,
            rollup_state=UsageRollupState.objects.filter(pk=1).first(),
        ),
    )
