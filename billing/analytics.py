"""The usage page's figures (billing/views/usage.py): spend, requests and tokens over a range of the user's days,
per hour or per day, split by model, API key, team or provider-facing model.

Read from the hourly usage rollups only (billing/rollups.py), never the raw records: a day of the active time
zone is its 24 (or 23, or 25, where clocks change) UTC hours. The rollups are per UTC hour, so in a zone whose
offset is not a whole number of hours (Asia/Kolkata, +05:30) every boundary is taken back to the start of its
UTC hour: its days and hours begin 30 (or 45) minutes early, and `Usage.exact` says so.

Every figure adds up: each period's total is the sum of its groups, the range's total the sum of its periods,
and the same rows are summed however they are grouped. "Spend" is what the overview calls spent
(billing/overview.py): the price of every request that did not run in internal mode, or, for an organisation
in internal mode, what the requests cost. Refused and free requests count as requests, at their price: zero.

A model is the model that served, an alias read as its model (billing/selectors.model_that_served);
a key's team is its team now (billing/teams.py); the provider-facing model is the upstream name of the model's
route at the provider that served (its names, when it has several routes there).
"""

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import F, Q, Sum
from django.db.models.functions import TruncDay
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from providers.models import ModelRoute

from .models import BillingMode, UsageRollup
from .modes import effective_mode
from .money import for_people as money
from .rollups import DAILY, HOUR, HOURLY
from .selectors import balance_of, model_names_by_alias, model_that_served

GROUPINGS = ("model", "key", "team", "upstream")
METRICS = ("spend", "requests", "tokens")
MOST_GROUPS = 8  # a chart's colours; beyond, the smallest are one group, "Other"
OTHER = "other"
ZERO = Decimal(0)


@dataclass
class Figures:
    requests: int = 0
    tokens: int = 0
    spend: Decimal = ZERO

    def add(self, other: "Figures") -> None:
        self.requests += other.requests
        self.tokens += other.tokens
        self.spend += other.spend

    def of(self, metric: str) -> int | Decimal:
        return getattr(self, metric)


@dataclass
class Period:
    start: datetime  # UTC, the first rollup hour it counts
    local: datetime  # when it starts in the active zone (before taking it back to the hour)
    total: Figures = field(default_factory=Figures)


@dataclass
class Group:
    key: object
    label: str
    cells: list[Figures]  # one per period
    total: Figures = field(default_factory=Figures)


@dataclass
class Usage:
    first: date
    last: date
    bucket: str  # hour or day
    grouping: str
    mode: str
    since: datetime  # UTC: [since, until) is what is counted
    until: datetime
    exact: bool  # every boundary fell on a UTC hour
    periods: list[Period]
    groups: list[Group]
    total: Figures

    @property
    def spend_is_cost(self) -> bool:
        return self.mode == BillingMode.INTERNAL


def _midnight(day: date) -> datetime:
    # Midnight of the active zone, in UTC (a day is not always 24 hours where clocks change).
    return timezone.make_aware(datetime.combine(day, time.min)).astimezone(UTC)


def _to_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _boundaries(first: date, last: date, bucket: str) -> list[datetime]:
    """Each period's start in UTC, unrounded, then the range's end."""
    since, until = _midnight(first), _midnight(last + timedelta(days=1))
    if bucket == "day":
        return [_midnight(first + timedelta(days=n)) for n in range((last - first).days + 2)]
    # In UTC, so that an hour is an hour on the day clocks change.
    hours = []
    moment = since
    while moment < until:
        hours.append(moment)
        moment += HOUR
    return [*hours, until]


def _spend(mode: str) -> tuple[str, Q]:
    # As the overview (billing/overview.py): internal organisations spend what their requests cost.
    if mode == BillingMode.INTERNAL:
        return "cost", Q()
    return "price", ~Q(billing_mode=BillingMode.INTERNAL)


# How rollup rows are grouped: the columns read, and each row's (key, label).
Grouper = Callable[[dict], tuple[object, str]]


def _by_model(rows: list[dict]) -> Grouper:
    aliases = model_names_by_alias()

    def group(row):
        name = model_that_served(row["model_name"], aliases)
        return name, name

    return group


def _by_key(rows: list[dict]) -> Grouper:
    def group(row):
        ref = row["api_key_ref"]
        if not ref:
            return 0, _("No key")
        if row["api_key__name"] is None:
            return ref, _("Deleted key #%(id)s") % {"id": ref}
        return ref, f"{row['api_key__name']} (#{ref})"

    return group


def _by_team(rows: list[dict]) -> Grouper:
    def group(row):
        team = row["api_key__team_id"]
        return (team or 0), (row["api_key__team__name"] if team else _("No team"))

    return group


def _by_upstream(rows: list[dict]) -> Grouper:
    aliases = model_names_by_alias()
    pairs = {(r["model_id"], r["provider_ref"]) for r in rows if r["provider_ref"]}
    routes: dict[tuple[int, int], list[str]] = {}
    for model_id, provider_id, name in ModelRoute.objects.filter(
        model_id__in={pair[0] for pair in pairs}, provider_id__in={pair[1] for pair in pairs}
    ).values_list("model_id", "provider_id", "upstream_name"):
        routes.setdefault((model_id, provider_id), []).append(name)

    def group(row):
        if not row["provider_ref"]:
            return 0, _("Not served by a provider")
        names = routes.get((row["model_id"], row["provider_ref"]))
        upstream = " | ".join(sorted(set(names))) if names else model_that_served(row["model_name"], aliases)
        provider = row["provider__name"] or _("deleted provider")
        label = f"{upstream} ({provider})"
        return (row["provider_ref"], upstream), label

    return group


GROUPERS: dict[str, tuple[tuple[str, ...], Callable[[list[dict]], Grouper]]] = {
    "model": (("model_name",), _by_model),
    "key": (("api_key_ref", "api_key__name"), _by_key),
    "team": (("api_key__team_id", "api_key__team__name"), _by_team),
    "upstream": (("provider_ref", "provider__name", "model_id", "model_name"), _by_upstream),
}


def usage_of(*, organization, first: date, last: date, bucket: str, grouping: str, metric: str = "spend") -> Usage:
    """The organisation's usage over the active zone's days [first, last], per `bucket` and per group;
    groups ordered by `metric`, largest first, the smallest beyond MOST_GROUPS summed as "Other"."""
    mode = effective_mode(balance_of(organization=organization))
    starts = _boundaries(first, last, bucket)
    rounded = [_to_hour(moment) for moment in starts]
    spent, charged = _spend(mode)
    columns, grouper_of = GROUPERS[grouping]
    zone = timezone.get_current_timezone()
    # Days of a zone whose midnights are whole UTC hours are summed by the database (its hours truncated to the
    # zone's day): 90 days are 90 rows per group, not 2,160. Other zones' periods start at a rounded hour, which
    # only the bisection below follows.
    # Where the zone's midnights are UTC's (UTC itself, or a zone at +00:00 over the range), the daily rollups
    # are those days already: a 90-day chart reads 90 rows per group. (A day's rollup is rebuilt from its hours
    # in the same run as they are, so both always agree.)
    daily = bucket == "day" and all(moment.hour == 0 for moment in starts)
    by_day = bucket == "day" and rounded == starts and not daily
    period = TruncDay("period_start", tzinfo=zone) if by_day else F("period_start")
    rows = list(
        UsageRollup.objects.filter(
            organization=organization,
            granularity=DAILY if daily else HOURLY,
            period_start__gte=rounded[0],
            period_start__lt=rounded[-1],
        )
        .order_by()
        .annotate(period=period)
        .values("period", *columns)
        .annotate(
            requests_sum=Sum("requests"),
            prompt_sum=Sum("prompt_tokens"),
            completion_sum=Sum("completion_tokens"),
            spend_sum=Sum(spent, filter=charged or None),
        )
    )
    grouper = grouper_of(rows)
    periods = [Period(start=r, local=s.astimezone(zone)) for r, s in zip(rounded[:-1], starts[:-1], strict=True)]
    groups: dict[object, Group] = {}
    total = Figures()
    for row in rows:
        if by_day:
            index = (timezone.localtime(row["period"], zone).date() - first).days
        else:
            index = bisect_right(rounded, row["period"]) - 1
        figures = Figures(
            requests=row["requests_sum"],
            tokens=row["prompt_sum"] + row["completion_sum"],
            spend=row["spend_sum"] or ZERO,
        )
        key, label = grouper(row)
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(key=key, label=label, cells=[Figures() for _ in periods])
        group.cells[index].add(figures)
        group.total.add(figures)
        periods[index].total.add(figures)
        total.add(figures)
    return Usage(
        first=first,
        last=last,
        bucket=bucket,
        grouping=grouping,
        mode=mode,
        since=rounded[0],
        until=rounded[-1],
        exact=rounded == starts,
        periods=periods,
        groups=_largest(list(groups.values()), metric, len(periods)),
        total=total,
    )


def _largest(groups: list[Group], metric: str, periods: int) -> list[Group]:
    groups.sort(key=lambda g: (-g.total.of(metric), g.label))
    if len(groups) <= MOST_GROUPS:
        return groups
    kept, rest = groups[: MOST_GROUPS - 1], groups[MOST_GROUPS - 1 :]
    other = Group(key=OTHER, label=_("Other"), cells=[Figures() for _ in range(periods)])
    for group in rest:
        for cell, figures in zip(other.cells, group.cells, strict=True):
            cell.add(figures)
        other.total.add(group.total)
    return [*kept, other]


# The chart: stacked bars drawn as inline SVG by the template, from these numbers.

CHART_HEIGHT = 180  # the plot's, in SVG units (pixels)
PLOT_WIDTH, LEAST_STEP, MOST_STEP, LABEL_WIDTH = 880, 12, 56, 44
LEFT, TOP, BOTTOM = 64, 8, 28
COLOURS = ("#0b57d0", "#e8710a", "#188038", "#a142f4", "#d93025", "#12b5cb", "#9e6a03", "#5f6368")


@dataclass
class Segment:
    y: float
    height: float
    colour: str
    label: str
    value: int | Decimal
    title: str = ""  # its tooltip: "<period>, <label>: <value>"


@dataclass
class Bar:
    x: float
    width: float
    period: Period
    value: int | Decimal
    segments: list[Segment]
    tick: bool  # its period is labelled under the axis
    title: str = ""  # its tooltip: "<period>: <value>"
    tick_label: str = ""


@dataclass
class Tick:
    y: float
    label: str


@dataclass
class Chart:
    width: int
    height: int
    left: int
    top: int
    bottom: float  # the axis's y
    bars: list[Bar]
    ticks: list[Tick]
    legend: list[tuple[str, str]]  # (colour, label)

    @property
    def label_y(self) -> int:
        return self.height - 8

    def bars_markup(self) -> SafeString:
        """The bars as SVG, one <g> a period with a <rect> a segment, each with its tooltip: built here, as a
        template loop over 540 segments (90 days × 6 groups) was most of the usage page's time."""
        out = []
        for bar in self.bars:
            out.append(f'<g class="usage-bar"><title>{escape(bar.title)}</title>')
            out.extend(
                f'<rect x="{bar.x}" y="{segment.y}" width="{bar.width}" height="{segment.height}"'
                f' fill="{escape(segment.colour)}"><title>{escape(segment.title)}</title></rect>'
                for segment in bar.segments
            )
            if bar.tick:
                label = escape(bar.tick_label)
                out.append(f'<text x="{bar.x}" y="{self.label_y}" font-size="11" fill="#5b616b">{label}</text>')
            out.append("</g>")
        return mark_safe("".join(out))  # noqa: S308  # every text in it is escaped above


def _nice_top(largest: Decimal) -> Decimal:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above `largest` (1 when nothing)."""
    if largest <= 0:
        return Decimal(1)
    power = Decimal(10) ** (largest.adjusted())
    for step in (1, 2, Decimal("2.5"), 5, 10):
        if largest <= power * step:
            return power * step
    return power * 10


def chart_of(usage: Usage, metric: str) -> Chart:
    # Bars as wide as fit about PLOT_WIDTH, within limits; wider charts scroll sideways in their wrapper.
    step = min(MOST_STEP, max(LEAST_STEP, PLOT_WIDTH // max(1, len(usage.periods))))
    top = _nice_top(Decimal(max((p.total.of(metric) for p in usage.periods), default=0)))
    if metric != "spend":
        top = max(Decimal(4), -(-top // 4) * 4)  # counts: each of the four gridlines a whole number
    scale = CHART_HEIGHT / float(top)
    every = -(-LABEL_WIDTH // step)  # a label under every few bars, so that they never overlap
    colours = {group.key: COLOURS[n % len(COLOURS)] for n, group in enumerate(usage.groups)}
    # Tooltips and labels are made here, not by the template: 90 bars of 6 segments are 540 of each, and the
    # template's filters on each were most of the usage page's time at 90 days (bench/dashboard.py).
    hourly = usage.bucket == "hour"
    unit = f" {settings.STRIPE_CURRENCY.upper()}" if metric == "spend" else ""

    def text(value) -> str:
        return f"{money(value)}{unit}" if metric == "spend" else str(value)

    bars = []
    for index, period in enumerate(usage.periods):
        y = float(TOP + CHART_HEIGHT)
        when = period.local.strftime("%Y-%m-%d %H:%M" if hourly else "%Y-%m-%d")
        segments = []
        for group in usage.groups:
            value = group.cells[index].of(metric)
            if not value:
                continue
            height = float(value) * scale
            y -= height
            segments.append(
                Segment(
                    y=round(y, 2),
                    height=round(height, 2),
                    colour=colours[group.key],
                    label=group.label,
                    value=value,
                    title=f"{when}, {group.label}: {text(value)}",
                )
            )
        total = period.total.of(metric)
        bars.append(
            Bar(
                x=LEFT + index * step + 2,
                width=step - 4,
                period=period,
                value=total,
                segments=segments,
                tick=index % every == 0,
                title=f"{when}: {text(total)}",
                tick_label=period.local.strftime("%H:%M" if hourly else "%m-%d"),
            )
        )
    ticks = [
        Tick(y=TOP + CHART_HEIGHT - CHART_HEIGHT * n / 4, label=f"{(top * n / 4).normalize():f}") for n in range(5)
    ]
    # Room for the longest gridline label (about 7 px a digit at 11 px), so that "0.0001875" is not cut off.
    left = max(LEFT, 7 * max(len(tick.label) for tick in ticks) + 10)
    for bar in bars:
        bar.x += left - LEFT
    return Chart(
        width=left + step * len(usage.periods) + 8,
        height=TOP + CHART_HEIGHT + BOTTOM,
        left=left,
        top=TOP,
        bottom=TOP + CHART_HEIGHT,
        bars=bars,
        ticks=ticks,
        legend=[(colours[g.key], g.label) for g in usage.groups],
    )


@dataclass
class Row:
    period: Period
    values: list[int | Decimal]  # one per group
    total: int | Decimal
    texts: list[str] = field(default_factory=list)  # the values as shown (made here, as the chart's tooltips)
    total_text: str = ""


@dataclass
class Table:
    """The chart's figures, one row per period and one column per group, then the totals."""

    rows: list[Row]
    totals: list[int | Decimal]  # one per group
    total: int | Decimal
    total_texts: list[str] = field(default_factory=list)
    total_text: str = ""


def table_of(usage: Usage, metric: str) -> Table:
    text: Callable[[int | Decimal], str] = money if metric == "spend" else str
    rows = []
    for n, period in enumerate(usage.periods):
        values = [g.cells[n].of(metric) for g in usage.groups]
        total = period.total.of(metric)
        rows.append(
            Row(period=period, values=values, total=total, texts=[text(v) for v in values], total_text=text(total))
        )
    totals = [g.total.of(metric) for g in usage.groups]
    return Table(
        rows=rows,
        totals=totals,
        total=usage.total.of(metric),
        total_texts=[text(v) for v in totals],
        total_text=text(usage.total.of(metric)),
    )
