"""Usage rollups (per organisation × key × model × provider × billing mode, per hour and day) and the pruning of
raw usage.

The model is the one that served (UsageRecord.served_model): a fallback's
usage, priced at its rate, is rolled up (and invoiced) under the fallback;
a record filed under a catalogue model's alias (a request refused before a
model was resolved, asked for as `demo`) is rolled up under the model's public
id (`demo/echo`), so that a model is one row in invoices and on the usage
page (billing/selectors.model_that_served). The provider that served is kept
too, for the usage page's provider-facing models (billing/analytics.py).

The billing mode is each record's own (the mode its request ran in), so the
postpaid rows of a month are exactly what its invoice bills (billing/invoices/issuing.py).

Why whole periods are recomputed, not added to incrementally from a watermark:
a usage record's `created_at` is when its request started, and it is written
later (the meter's batch, a retried flush), so records keep arriving for hours
already rolled up; and an id watermark is not safe either on PostgreSQL, where
ids are taken at insert time but become visible in commit order. So an hour is
*dirty* when the number of its raw records differs from the requests its
rollups count (raw records are only ever inserted, never changed, their mode
included, until their day is pruned, so an equal count means the same
records), and a dirty hour is rebuilt from all its raw records, then its day
from its 24 hours. Rebuilding is idempotent:
running twice, or late, gives the same rows.

Every rebuild and every prune runs in a transaction holding the lock of the
one UsageRollupState row, and looks again for dirty hours once it holds it; two
runs at once therefore take turns, and the second finds the work done. Days
are done one transaction each, so the lock is held briefly and the metering
writer (which never takes it) is never blocked.

Pruning: a day whose raw records are older than HUB_USAGE_RETENTION_DAYS is
rebuilt under the lock if dirty; then all its raw records, charged ones
included, are written to the usage archive (billing/archive.py) and, once
the archive's part is complete, exactly those records are deleted, in
batches. A record is deleted only if it is rolled up: the day's records are
counted against its rollups before and after, and any difference (a late
record) rolls the day's transaction back and discards its part. A charged
record's ledger entry keeps its request id, model and time on its own row
and its link becomes NULL (LedgerEntry.usage_record is SET_NULL), so the
ledger, the balance and every entry's amount never change. Pruned days are
sealed (UsageRollupState.pruned_through): their rollups are final and never
rebuilt from records arriving later (those are logged, and kept).

Route rollups (per provider × credential: requests, errors and latency histograms) are rebuilt with the usage
rollups, hour by hour from the same records; an hour is dirty when either counts other than its records.

Invoices read only the daily rollups (billing/invoices/issuing.py), never raw
records, and a day's rollups are final before its records go: an invoice is
the same whether its month was pruned before it was issued or after.
"""

import logging
from datetime import UTC, datetime, timedelta
from itertools import zip_longest

from django.conf import settings
from django.db import transaction
from django.db.models import Case, Count, F, IntegerField, Max, Min, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce, TruncHour
from django.utils import timezone

from providers.models import CatalogModel

from . import archive
from .models import RouteRollup, UsageRecord, UsageRollup, UsageRollupState

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
HOURLY, DAILY = UsageRollup.Granularity.HOUR, UsageRollup.Granularity.DAY
DELETE_BATCH = 900  # under SQLite's oldest limit of 999 parameters a statement


def _bounds(first: int, last: int, ratio: float) -> tuple[int, ...]:
    out = [first]
    while out[-1] < last:
        out.append(max(out[-1] + 1, round(out[-1] * ratio)))
    return tuple(out)


# The upper bounds (inclusive, in ms) of the route rollups' latency buckets, from 1 ms to over an hour, each
# about a quarter wider than the last: a percentile read from them is the bound of the bucket it falls in, at
# most 25% above the observed value. Stored histograms count per these buckets: never change them.
LATENCY_BOUNDS_MS = _bounds(1, 3_600_000, 1.25)


def _bucket(field: str) -> Case:
    """The index of the latency bucket `field` falls in (len(LATENCY_BOUNDS_MS): slower than them all)."""
    whens = [When(**{f"{field}__lte": bound}, then=Value(i)) for i, bound in enumerate(LATENCY_BOUNDS_MS)]
    return Case(*whens, default=Value(len(LATENCY_BOUNDS_MS)), output_field=IntegerField())


def bucket_of(ms: int) -> int:
    """The latency bucket of `ms`, as _bucket computes it in SQL."""
    return next((i for i, bound in enumerate(LATENCY_BOUNDS_MS) if ms <= bound), len(LATENCY_BOUNDS_MS))


def add_histograms(a: list[int], b: list[int]) -> list[int]:
    return [x + y for x, y in zip_longest(a, b, fillvalue=0)]


def percentile(histogram: list[int], percent: int) -> int | None:
    """The nearest-rank `percent` percentile of a latency histogram: its bucket's upper bound (ms), None if empty."""
    n = sum(histogram)
    if not n:
        return None
    rank, seen = max(1, (percent * n + 99) // 100), 0
    for i, count in enumerate(histogram):
        seen += count
        if seen >= rank:
            return LATENCY_BOUNDS_MS[min(i, len(LATENCY_BOUNDS_MS) - 1)]
    return LATENCY_BOUNDS_MS[-1]


class PruneRaced(Exception):
    """Records arrived for a day while it was being pruned; its transaction is rolled back."""


def start_of_day(moment: datetime) -> datetime:
    # Days are UTC days, like TIME_ZONE.
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def start_of_month(moment: datetime) -> datetime:
    return start_of_day(moment).replace(day=1)


def next_month(month: datetime) -> datetime:
    return (month.replace(day=1) + timedelta(days=32)).replace(day=1)


def lock() -> UsageRollupState:
    """Hold the lock every roll-up and prune takes, until the caller's transaction ends: rollups
    read meanwhile cannot change (billing/invoices/issuing.py)."""
    return _locked_state()


def _locked_state() -> UsageRollupState:
    UsageRollupState.objects.bulk_create([UsageRollupState(pk=1)], ignore_conflicts=True)
    return UsageRollupState.objects.select_for_update().get(pk=1)


def _horizon() -> datetime | None:
    return UsageRollupState.objects.filter(pk=1).values_list("pruned_through", flat=True).first()


def _between(field: str, since: datetime | None, until: datetime | None) -> Q:
    q = Q()
    if since is not None:
        q &= Q(**{f"{field}__gte": since})
    if until is not None:
        q &= Q(**{f"{field}__lt": until})
    return q


def dirty_hours(since: datetime | None = None, until: datetime | None = None) -> list[datetime]:
    """Hours in [since, until) whose raw records are not exactly what their rollups count."""
    raw = dict(
        UsageRecord.objects.filter(_between("created_at", since, until))
        .order_by()
        .annotate(hour=TruncHour("created_at"))
        .values("hour")
        .annotate(n=Count("id"))
        .values_list("hour", "n")
    )
    rolled, routed = (
        dict(
            model.objects.filter(_between("period_start", since, until), granularity=HOURLY)
            .order_by()
            .values("period_start")
            .annotate(n=Sum("requests"))
            .values_list("period_start", "n")
        )
        for model in (UsageRollup, RouteRollup)
    )
    return sorted(
        h
        for h in raw.keys() | rolled.keys() | routed.keys()
        if not raw.get(h, 0) == rolled.get(h, 0) == routed.get(h, 0)
    )


def _rebuild_hours(hours: list[datetime]) -> None:
    UsageRollup.objects.filter(granularity=HOURLY, period_start__in=hours).delete()
    in_hours = Q()
    for hour in hours:
        in_hours |= Q(created_at__gte=hour, created_at__lt=hour + HOUR)
    alias_of = CatalogModel.objects.filter(alias=OuterRef("served_model")).exclude(alias="").values("public_id")[:1]
    groups = (
        UsageRecord.objects.filter(in_hours)
        .order_by()
        .annotate(hour=TruncHour("created_at"), filed=Coalesce(Subquery(alias_of), F("served_model")))
        .values("organization_id", "api_key_id", "filed", "provider_id", "billing_mode", "hour")
        .annotate(
            n=Count("id"),
            p=Sum("prompt_tokens"),
            c=Sum("completion_tokens"),
            cr=Sum("cache_read_tokens"),
            cw=Sum("cache_write_tokens"),
            im=Sum("images"),
            sec=Sum("audio_seconds"),
            cost_sum=Sum("cost"),
            price_sum=Sum("price"),
            model_max=Max("model"),
        )
    )
    UsageRollup.objects.bulk_create(
        [
            UsageRollup(
                organization_id=g["organization_id"],
                api_key_id=g["api_key_id"],
                api_key_ref=g["api_key_id"] or 0,
                model_name=g["filed"],
                model_id=g["model_max"],
                provider_id=g["provider_id"],
                provider_ref=g["provider_id"] or 0,
                billing_mode=g["billing_mode"],
                granularity=HOURLY,
                period_start=g["hour"],
                requests=g["n"],
                prompt_tokens=g["p"],
                completion_tokens=g["c"],
                cache_read_tokens=g["cr"],
                cache_write_tokens=g["cw"],
                images=g["im"],
                audio_seconds=g["sec"],
                cost=g["cost_sum"],
                price=g["price_sum"],
            )
            for g in groups
        ]
    )
    _rebuild_route_hours(hours, in_hours)


def _rebuild_route_hours(hours: list[datetime], in_hours: Q) -> None:
    RouteRollup.objects.filter(granularity=HOURLY, period_start__in=hours).delete()
    records = UsageRecord.objects.filter(in_hours).order_by().annotate(hour=TruncHour("created_at"))
    rows: dict[tuple, RouteRollup] = {}

    def row(g) -> RouteRollup:
        key = (g["provider_id"], g["credential_id"], g["hour"])
        if key not in rows:
            rows[key] = RouteRollup(
                provider_id=g["provider_id"],
                provider_ref=g["provider_id"] or 0,
                credential_id=g["credential_id"],
                credential_ref=g["credential_id"] or 0,
                granularity=HOURLY,
                period_start=g["hour"],
            )
        return rows[key]

    def count(histogram: list[int], bucket: int, n: int) -> list[int]:
        return add_histograms(histogram, [0] * bucket + [n])

    latency = (
        records.annotate(b=_bucket("latency_ms"))
        .values("provider_id", "credential_id", "hour", "b")
        .annotate(n=Count("id"), errors=Count("id", filter=~Q(status=UsageRecord.Status.OK)))
    )
    for g in latency:
        r = row(g)
        r.requests += g["n"]
        r.errors += g["errors"]
        r.latency = count(r.latency, g["b"], g["n"])
    first_token = (
        records.filter(first_token_ms__isnull=False)
        .annotate(b=_bucket("first_token_ms"))
        .values("provider_id", "credential_id", "hour", "b")
        .annotate(n=Count("id"))
    )
    for g in first_token:
        r = row(g)
        r.first_token = count(r.first_token, g["b"], g["n"])
    RouteRollup.objects.bulk_create(rows.values())


def _rebuild_route_day(day: datetime) -> None:
    RouteRollup.objects.filter(granularity=DAILY, period_start=day).delete()
    rows: dict[tuple, RouteRollup] = {}
    hours = RouteRollup.objects.filter(granularity=HOURLY, period_start__gte=day, period_start__lt=day + DAY)
    for hour in hours.order_by("period_start"):
        key = (hour.provider_ref, hour.credential_ref)
        r = rows.get(key)
        if r is None:
            r = rows[key] = RouteRollup(
                provider_ref=hour.provider_ref,
                credential_ref=hour.credential_ref,
                granularity=DAILY,
                period_start=day,
            )
        # The latest hour's links (NULL once its provider or credential is deleted, as UsageRollup's Max()).
        r.provider_id, r.credential_id = hour.provider_id or r.provider_id, hour.credential_id or r.credential_id
        r.requests += hour.requests
        r.errors += hour.errors
        r.latency = add_histograms(r.latency, hour.latency)
        r.first_token = add_histograms(r.first_token, hour.first_token)
    RouteRollup.objects.bulk_create(rows.values())


def _rebuild_day(day: datetime) -> None:
    """A day is the sum of its hours (not of raw records, which a sealed day no longer has all of)."""
    UsageRollup.objects.filter(granularity=DAILY, period_start=day).delete()
    groups = (
        UsageRollup.objects.filter(granularity=HOURLY, period_start__gte=day, period_start__lt=day + DAY)
        .order_by()
        .values("organization_id", "api_key_ref", "model_name", "provider_ref", "billing_mode")
        .annotate(
            n=Sum("requests"),
            p=Sum("prompt_tokens"),
            c=Sum("completion_tokens"),
            cr=Sum("cache_read_tokens"),
            cw=Sum("cache_write_tokens"),
            im=Sum("images"),
            sec=Sum("audio_seconds"),
            cost_sum=Sum("cost"),
            price_sum=Sum("price"),
            key_max=Max("api_key"),
            model_max=Max("model"),
            provider_max=Max("provider"),
        )
    )
    UsageRollup.objects.bulk_create(
        [
            UsageRollup(
                organization_id=g["organization_id"],
                api_key_id=g["key_max"],
                api_key_ref=g["api_key_ref"],
                model_name=g["model_name"],
                model_id=g["model_max"],
                provider_id=g["provider_max"],
                provider_ref=g["provider_ref"],
                billing_mode=g["billing_mode"],
                granularity=DAILY,
                period_start=day,
                requests=g["n"],
                prompt_tokens=g["p"],
                completion_tokens=g["c"],
                cache_read_tokens=g["cr"],
                cache_write_tokens=g["cw"],
                images=g["im"],
                audio_seconds=g["sec"],
                cost=g["cost_sum"],
                price=g["price_sum"],
            )
            for g in groups
        ]
    )
    _rebuild_route_day(day)


def _roll_up_day(day: datetime) -> int:
    """Rebuild the dirty hours of one day, and the day; call holding the state lock."""
    hours = dirty_hours(day, day + DAY)
    if hours:
        _rebuild_hours(hours)
        _rebuild_day(day)
    return len(hours)


def roll_up(*, now: datetime | None = None, lookback_hours: float | None = None) -> int:
    """Bring every rollup of unsealed days in line with the raw records; returns the hours rebuilt.

    With `lookback_hours`, only hours that recent are looked at (cheaper on a
    big table); a run without it (prune_usage makes one) catches the rest.
    """
    now = now or timezone.now()
    since = _horizon()
    if lookback_hours:
        recent = now - timedelta(hours=lookback_hours)
        since = recent if since is None else max(since, recent)
    rebuilt = 0
    for day in sorted({start_of_day(h) for h in dirty_hours(since)}):
        with transaction.atomic():
            state = _locked_state()
            if state.pruned_through is not None and day < state.pruned_through:
                continue  # sealed by a prune that ran meanwhile
            rebuilt += _roll_up_day(day)
            state.rolled_up_at = now
            state.save(update_fields=["rolled_up_at"])
    return rebuilt


def _archive_and_delete(day: datetime, records, suffix: str = "") -> int:
    """Write `records` (of one day) to the archive, then delete exactly those; call holding the lock."""
    ids = archive.write_day(day, records.order_by("pk"), suffix)
    deleted = 0
    for start in range(0, len(ids), DELETE_BATCH):
        # The collector sets the charged records' ledger links to NULL.
        _, per_model = UsageRecord.objects.filter(pk__in=ids[start : start + DELETE_BATCH]).delete()
        deleted += per_model.get(UsageRecord._meta.label, 0)
    if deleted != len(ids):
        raise PruneRaced(f"{len(ids)} usage records of {day:%Y-%m-%d} archived, {deleted} deleted")
    return deleted


def _prune_day(day: datetime, now: datetime) -> int:
    """Archive, then delete, the raw records of one day, and seal it; returns how many."""
    try:
        with transaction.atomic():
            state = _locked_state()
            if state.pruned_through is not None and day < state.pruned_through:
                return 0  # a concurrent prune did it
            _roll_up_day(day)
            in_day = UsageRecord.objects.filter(created_at__gte=day, created_at__lt=day + DAY)
            expected = (
                UsageRollup.objects.filter(
                    granularity=HOURLY, period_start__gte=day, period_start__lt=day + DAY
                ).aggregate(n=Sum("requests"))["n"]
                or 0
            )
            if in_day.count() != expected:
                raise PruneRaced(f"usage records arrived for {day:%Y-%m-%d} while it was rolled up")
            # Records are only ever inserted, and only pruning (which holds the
            # lock) deletes them: as many as the rollups count are the ones
            # counted. Any arriving meanwhile are left, and roll the day back.
            deleted = _archive_and_delete(day, in_day)
            if deleted != expected or in_day.exists():
                raise PruneRaced(f"usage records arrived for {day:%Y-%m-%d} while it was pruned")
            state.pruned_through, state.pruned_at = day + DAY, now
            state.save(update_fields=["pruned_through", "pruned_at"])
            return deleted
    except Exception:
        # Rolled back: every record is still in the table, so its part must go
        # (the next run writes it again).
        archive.discard_day(day)
        raise


# Before retention archived charged records, a prune kept those a ledger entry
# pointed at, in days it sealed. They are rolled up, and go now; records that
# arrived after their day was sealed are not, and stay. The two are told apart
# by when the entry was written: a day is sealed at the earliest two days
# after it starts (its end plus at least a day of retention), so an entry
# written within KEPT_WRITTEN_WITHIN of its request's start was written before
# its day was sealed, and counted.
KEPT_WRITTEN_WITHIN = timedelta(hours=12)
KEPT = "-kept"


def _kept_by_the_ledger(horizon: datetime):
    return UsageRecord.objects.filter(
        created_at__lt=horizon, ledger_entry__created_at__lt=F("created_at") + KEPT_WRITTEN_WITHIN
    )


def _archive_kept(horizon: datetime | None) -> int:
    """Archive, then delete, the records of sealed days that the older rule kept for the ledger."""
    deleted = 0
    while horizon is not None:
        oldest = _kept_by_the_ledger(horizon).order_by().aggregate(t=Min("created_at"))["t"]
        if oldest is None:
            break
        day = start_of_day(oldest)
        try:
            with transaction.atomic():
                _locked_state()
                kept = _kept_by_the_ledger(horizon).filter(created_at__gte=day, created_at__lt=day + DAY)
                if not kept.exists():
                    continue  # a concurrent run archived them; its part stays as it wrote it
                deleted += _archive_and_delete(day, kept, KEPT)
        except Exception:
            archive.discard_day(day, KEPT)
            raise
    return deleted


def prune(*, now: datetime | None = None, retention_days: int | None = None) -> int:
    """Archive, then delete, the raw usage records of whole days older than the retention, once rolled up;
    returns how many."""
    now = now or timezone.now()
    if retention_days is None:
        retention_days = int(getattr(settings, "HUB_USAGE_RETENTION_DAYS", 90))
    if retention_days <= 0:
        return 0  # 0 keeps raw usage forever
    cutoff = start_of_day(now - timedelta(days=retention_days))
    roll_up(now=now)
    deleted = 0
    horizon = _horizon()
    while True:
        oldest = (
            UsageRecord.objects.filter(_between("created_at", horizon, cutoff))
            .order_by()
            .aggregate(t=Min("created_at"))["t"]
        )
        if oldest is None:
            break
        day = start_of_day(oldest)
        try:
            deleted += _prune_day(day, now)
        except PruneRaced as exc:
            logger.warning("usage pruning stopped: %s; the next run tries again", exc)
            return deleted
        horizon = day + DAY
    with transaction.atomic():
        state = _locked_state()
        if state.pruned_through is None or state.pruned_through < cutoff:
            # Days up to the cutoff with nothing left to delete are sealed too.
            if dirty_hours(state.pruned_through, cutoff):
                logger.warning("usage pruning: days before %s changed meanwhile; not sealed", cutoff)
            else:
                state.pruned_through, state.pruned_at = cutoff, now
                state.save(update_fields=["pruned_through", "pruned_at"])
    deleted += _archive_kept(_horizon())
    late = UsageRecord.objects.filter(created_at__lt=_horizon() or cutoff).count()
    if late:
        logger.error("%s usage records arrived for days already pruned; they are not in the rollups", late)
    return deleted
