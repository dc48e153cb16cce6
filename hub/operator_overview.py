"""The operator overview (the admin's index, hub/admin_overview.py): what the hub earned, what providers cost,
how providers and credentials behave, and what needs an operator's eye, over a range of UTC days.

Money and request counts are read from the daily usage rollups (billing/rollups.py), one row per organisation ×
key × model × provider × mode a day: a month is a few thousand rows however many requests it had. Revenue is
what organisations were charged (the price of every request not run in internal mode, as the usage page counts
spend, billing/analytics.py); cost is what the providers charge for every request; margin is the difference.

Requests, error rate and latency per provider and per credential are read from the daily route rollups (one row
per provider × credential a day, with latency and time-to-first-token histograms): a percentile is the upper
bound of the histogram bucket its nearest rank falls in (buckets about 25% wide, billing.rollups.LATENCY_BOUNDS_MS).
"""

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Organization
from billing import analytics, modes, pricing, rollups
from billing.models import BillingMode, CreditHold, RouteRollup, UsageRollup
from billing.rollups import DAILY
from billing.services import RECONCILE_RESULT
from providers.models import Credential, Provider

from . import route_health

ZERO = Decimal(0)
TOP_ORGANIZATIONS = 10
RUNWAY_DAYS = 7  # flagged when the credit lasts less than this at the last week's pace
PACE_DAYS = 7


@dataclass
class Money:
    requests: int = 0
    revenue: Decimal = ZERO
    cost: Decimal = ZERO

    @property
    def margin(self) -> Decimal:
        return self.revenue - self.cost

    def add(self, requests: int, revenue: Decimal, cost: Decimal) -> None:
        self.requests += requests
        self.revenue += revenue
        self.cost += cost


@dataclass
class Line:
    key: object
    label: str
    figures: Money = field(default_factory=Money)
    link: str = ""  # the query string of the usage records behind it


@dataclass
class Behaviour:
    """Requests, errors and latency of one provider or credential."""

    key: object
    label: str
    requests: int
    errors: int
    p50_ms: int | None
    p95_ms: int | None
    ttft_p50_ms: int | None
    ttft_p95_ms: int | None
    link: str = ""

    @property
    def error_rate(self) -> Decimal:
        return (Decimal(self.errors) * 100 / self.requests).quantize(Decimal("0.1")) if self.requests else ZERO


@dataclass
class Runway:
    organization: Organization
    available: Decimal
    per_day: Decimal
    days: Decimal


@dataclass
class OutOfRotation:
    credential: Credential
    reason: str
    until: datetime | None  # None: disabled, not cooling down


@dataclass
class Overview:
    first: date
    last: date
    since: datetime
    until: datetime
    total: Money
    by_day: list[Line]
    by_provider: list[Line]
    by_model: list[Line]
    by_organization: list[Line]
    chart: analytics.Chart
    providers: list[Behaviour]
    credentials: list[Behaviour]
    running_out: list[Runway]
    out_of_rotation: list[OutOfRotation]
    below_cost_rates: list[dict]
    below_cost_sold: list[Line]
    holds_count: int
    holds_amount: Decimal
    drift: list[dict] | None  # None: the reconcile task has not run (or its result expired)
    drift_checked_at: datetime | None

    @property
    def link(self) -> str:
        return _range_query(self.since, self.until)

    @property
    def top_organizations(self) -> list[Line]:
        return self.by_organization[:TOP_ORGANIZATIONS]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def _range_query(since: datetime, until: datetime, **filters) -> str:
    query = {
        "created_at__gte": since.strftime("%Y-%m-%d %H:%M:%S"),
        "created_at__lt": until.strftime("%Y-%m-%d %H:%M:%S"),
    }
    query |= {k: str(v) for k, v in filters.items()}
    return "&".join(f"{k}={v}".replace(" ", "+").replace(":", "%3A") for k, v in query.items())


def _lines(rows, key: str, label_of, since, until, filter_of) -> list[Line]:
    lines: dict[object, Line] = {}
    for row in rows:
        k = row[key]
        line = lines.get(k)
        if line is None:
            line = lines[k] = Line(key=k, label=label_of(k), link=_range_query(since, until, **filter_of(k)))
        line.figures.add(row["n"], row["revenue"] or ZERO, row["cost_sum"] or ZERO)
    return sorted(lines.values(), key=lambda line: (-line.figures.revenue, -line.figures.cost, line.label))


def _chart(first: date, last: date, rows, providers: dict[int, str]) -> analytics.Chart:
    """Revenue per day stacked by provider, drawn by the usage page's chart (billing/analytics.py)."""
    days = (last - first).days + 1
    periods = [
        analytics.Period(start=_midnight(first + timedelta(d)), local=_midnight(first + timedelta(d)))
        for d in range(days)
    ]
    groups: dict[object, analytics.Group] = {}
    total = analytics.Figures()
    for row in rows:
        ref = row["provider_ref"]
        group = groups.get(ref)
        if group is None:
            label = providers.get(ref) or _("No provider")
            group = groups[ref] = analytics.Group(key=ref, label=label, cells=[analytics.Figures() for _ in periods])
        figures = analytics.Figures(requests=row["n"], spend=row["revenue"] or ZERO)
        index = (row["period_start"].date() - first).days
        group.cells[index].add(figures)
        group.total.add(figures)
        periods[index].total.add(figures)
        total.add(figures)
    usage = analytics.Usage(
        first=first,
        last=last,
        bucket="day",
        grouping="provider",
        mode=BillingMode.CREDITS,
        since=_midnight(first),
        until=_midnight(last) + timedelta(days=1),
        exact=True,
        periods=periods,
        groups=analytics._largest(list(groups.values()), "spend", days),
        total=total,
    )
    return analytics.chart_of(usage, "spend")


def _behaviour(
    routes: Sequence[Mapping[str, Any]], column: str, labels: dict[int, str], since, until
) -> list[Behaviour]:
    """Requests, errors and latency percentiles per provider or credential (`column`), from the route rollups."""
    sums: dict[int, list] = {}
    for route in routes:
        ref = route[f"{column}_ref"]
        if not ref:
            continue  # refused before a route was chosen
        s = sums.setdefault(ref, [0, 0, [], []])
        s[0] += route["requests"]
        s[1] += route["errors"]
        s[2] = rollups.add_histograms(s[2], route["latency"])
        s[3] = rollups.add_histograms(s[3], route["first_token"])
    out = [
        Behaviour(
            key=ref,
            label=labels.get(ref, str(ref)),
            requests=n,
            errors=errors,
            p50_ms=rollups.percentile(latency, 50),
            p95_ms=rollups.percentile(latency, 95),
            ttft_p50_ms=rollups.percentile(first_token, 50),
            ttft_p95_ms=rollups.percentile(first_token, 95),
            link=_range_query(since, until, **{f"{column}__id__exact": ref}),
        )
        for ref, (n, errors, latency, first_token) in sums.items()
    ]
    return sorted(out, key=lambda b: (-b.requests, b.label))


def running_out(*, now: datetime | None = None) -> list[Runway]:
    """Credit-mode organisations whose available credit lasts under RUNWAY_DAYS at the last PACE_DAYS' spend."""
    now = now or timezone.now()
    today = _midnight(now.astimezone(UTC).date())
    spent = dict(
        UsageRollup.objects.filter(granularity=DAILY, period_start__gte=today - timedelta(days=PACE_DAYS - 1))
        .exclude(billing_mode=BillingMode.INTERNAL)
        .order_by()
        .values("organization_id")
        .annotate(s=Sum("price"))
        .values_list("organization_id", "s")
    )
    out = []
    accounts = modes.accounts_in_mode(BillingMode.CREDITS).filter(organization_id__in=spent)
    for account in accounts.select_related("organization"):
        per_day = (spent[account.organization_id] or ZERO) / PACE_DAYS
        if per_day <= 0:
            continue
        available = account.balance - account.held
        days = (available / per_day).quantize(Decimal("0.1"))
        if days < RUNWAY_DAYS:
            out.append(Runway(organization=account.organization, available=available, per_day=per_day, days=days))
    return sorted(out, key=lambda r: (r.days, r.organization.name))


def out_of_rotation(*, now: float | None = None) -> list[OutOfRotation]:
    """Disabled credentials, and those cooling down after failures (route_health's record), with why."""
    now = now or time.time()
    out = []
    store = route_health.store()
    for credential in Credential.objects.select_related("provider").order_by("provider__name", "name"):
        if not credential.enabled:
            out.append(OutOfRotation(credential=credential, reason=_("Disabled"), until=None))
            continue
        health = store.read(credential.pk)
        if health.cooling(now):
            reason = health.reason or (_("Rate limited") if health.rate_limited else _("Failing"))
            until = datetime.fromtimestamp(health.cooldown_until, tz=UTC)
            out.append(OutOfRotation(credential=credential, reason=reason, until=until))
    return out


def overview_of(*, first: date, last: date, now: datetime | None = None) -> Overview:
    """The operator overview of UTC days [first, last]."""
    since, until = _midnight(first), _midnight(last) + timedelta(days=1)
    rollups = UsageRollup.objects.filter(granularity=DAILY, period_start__gte=since, period_start__lt=until).order_by()
    revenue = Sum("price", filter=~Q(billing_mode=BillingMode.INTERNAL))
    sums = {"n": Sum("requests"), "revenue": revenue, "cost_sum": Sum("cost")}
    providers = dict(Provider.objects.values_list("pk", "name"))
    credentials = {c.pk: str(c) for c in Credential.objects.select_related("provider")}
    organizations = dict(Organization.objects.values_list("pk", "name"))

    def provider_filter(ref):
        return {"provider__id__exact": ref} if ref else {"provider__isnull": "True"}

    by_day = _lines(
        rollups.values("period_start").annotate(**sums),
        "period_start",
        lambda d: d.strftime("%Y-%m-%d"),
        since,
        until,
        lambda d: {},
    )
    for line in by_day:
        day = datetime.fromisoformat(line.label).replace(tzinfo=UTC)
        line.link = _range_query(day, day + timedelta(days=1))
    by_day.sort(key=lambda line: line.label)
    by_model = _lines(
        rollups.values("model_name").annotate(**sums), "model_name", str, since, until, lambda m: {"served_model": m}
    )
    total = Money()
    for line in by_day:
        total.add(line.figures.requests, line.figures.revenue, line.figures.cost)
    holds = CreditHold.objects.filter(expires_at__gt=now or timezone.now()).aggregate(n=Count("id"), s=Sum("amount"))
    reconciled = cache.get(RECONCILE_RESULT)
    routes = list(
        RouteRollup.objects.filter(granularity=DAILY, period_start__gte=since, period_start__lt=until).values(
            "provider_ref", "credential_ref", "requests", "errors", "latency", "first_token"
        )
    )
    return Overview(
        first=first,
        last=last,
        since=since,
        until=until,
        total=total,
        by_day=by_day,
        by_provider=_lines(
            rollups.values("provider_ref").annotate(**sums),
            "provider_ref",
            lambda ref: providers.get(ref) or _("No provider"),
            since,
            until,
            provider_filter,
        ),
        by_model=by_model,
        by_organization=_lines(
            rollups.values("organization_id").annotate(**sums),
            "organization_id",
            lambda pk: organizations.get(pk, str(pk)),
            since,
            until,
            lambda pk: {"organization__id__exact": pk},
        ),
        chart=_chart(first, last, rollups.values("period_start", "provider_ref").annotate(**sums), providers),
        providers=_behaviour(routes, "provider", providers, since, until),
        credentials=_behaviour(routes, "credential", credentials, since, until),
        running_out=running_out(now=now),
        out_of_rotation=out_of_rotation(),
        below_cost_rates=pricing.prices_below_cost(log=False),
        below_cost_sold=[line for line in by_model if line.figures.margin < 0],
        holds_count=holds["n"],
        holds_amount=holds["s"] or ZERO,
        drift=None if reconciled is None else reconciled["drift"],
        drift_checked_at=None if reconciled is None else reconciled["at"],
    )
