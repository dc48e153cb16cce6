"""Route rollups (billing/rollups.py): requests, errors and latency histograms per provider × credential equal the
raw records, hour and day, bucketed in SQL exactly as billing.rollups.bucket_of does; they are rebuilt where
missing, survive the pruning of raw records, and the operator overview reads them."""

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from billing import rollups, services
from billing.models import RouteRollup, UsageRecord
from billing.rollups import LATENCY_BOUNDS_MS, bucket_of, percentile
from hub import operator_overview
from tests import factories

pytestmark = pytest.mark.django_db

# Every edge of the buckets the SQL CASE has to agree with Python on, the extremes included.
EDGES = sorted(
    {0, 1, 2, 3, 10, 11, 99, 100, 101, 2**31 - 1}
    | {b + d for b in LATENCY_BOUNDS_MS[::7] for d in (0, 1)}
    | {LATENCY_BOUNDS_MS[-1], LATENCY_BOUNDS_MS[-1] + 1}
)


def histogram(values) -> list[int]:
    counts = Counter(bucket_of(v) for v in values)
    return [counts.get(i, 0) for i in range(max(counts) + 1)] if counts else []


@pytest.fixture
def routes(organization):
    openai = factories.provider("openai", secret="sk-route-1", credential_name="main")
    spare = factories.credential(openai, "sk-route-2", name="spare")
    main = openai.credentials.get(name="main")
    return openai, main, spare


def start() -> datetime:
    return (datetime.now(UTC) - timedelta(days=3)).replace(hour=5, minute=0, second=0, microsecond=0)


def traffic(organization, routes, at: datetime) -> list:
    openai, main, spare = routes
    events = []
    for i, ms in enumerate(EDGES):
        credential = main if i % 3 else spare
        events.append(
            factories.usage_event(
                organization,
                provider_id=openai.pk,
                credential_id=credential.pk,
                latency_ms=ms,
                first_token_ms=ms // 2 if i % 2 else None,
                status="ok" if i % 5 else "upstream_error",
                created_at=at + timedelta(minutes=i % 50, hours=i % 2),
            )
        )
    # Refused before a route was chosen: counted apart, under neither provider nor credential.
    events.append(factories.usage_event(organization, status="client_error", latency_ms=3, created_at=at))
    services.record_usage(events)
    return events


def rolled(granularity: str) -> dict:
    return {
        (r.provider_ref, r.credential_ref, r.period_start): r
        for r in RouteRollup.objects.filter(granularity=granularity)
    }


def assert_routes_match_raw():
    records = list(UsageRecord.objects.all())
    for granularity in ("hour", "day"):
        groups: dict = defaultdict(list)
        for r in records:
            moment = r.created_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            if granularity == "day":
                moment = moment.replace(hour=0)
            groups[(r.provider_id or 0, r.credential_id or 0, moment)].append(r)
        got = rolled(granularity)
        assert set(got) == set(groups)
        for key, mine in groups.items():
            row = got[key]
            assert row.requests == len(mine)
            assert row.errors == sum(r.status != "ok" for r in mine)
            assert row.latency == histogram(r.latency_ms for r in mine)
            assert row.first_token == histogram(r.first_token_ms for r in mine if r.first_token_ms is not None)


def test_route_rollups_equal_the_records_bucketed_as_python_buckets_them(organization, routes):
    traffic(organization, routes, start())
    assert rollups.roll_up() > 0
    assert_routes_match_raw()
    ids = sorted(RouteRollup.objects.values_list("pk", flat=True))
    assert rollups.roll_up() == 0  # nothing dirty: nothing rebuilt
    assert sorted(RouteRollup.objects.values_list("pk", flat=True)) == ids
    # A late record makes its hour dirty; the hour and its day are rebuilt with it.
    openai, main, _ = routes
    late = factories.usage_event(
        organization, provider_id=openai.pk, credential_id=main.pk, latency_ms=12345, created_at=start()
    )
    services.record_usage([late])
    assert rollups.roll_up() == 1
    assert_routes_match_raw()


def test_hours_rolled_up_before_route_rollups_existed_are_rebuilt(organization, routes):
    traffic(organization, routes, start())
    rollups.roll_up()
    RouteRollup.objects.all().delete()  # as a database migrated with usage rollups and no route rollups
    assert rollups.roll_up() == 2
    assert_routes_match_raw()


def test_route_rollups_outlive_pruned_records_and_the_overview_reads_them(organization, routes, settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "usage_archive": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    old = start() - timedelta(days=10)
    traffic(organization, routes, old)
    records = list(UsageRecord.objects.all())
    rollups.roll_up()
    assert rollups.prune(retention_days=5) == len(records)
    assert not UsageRecord.objects.exists()
    day = old.date()
    o = operator_overview.overview_of(first=day, last=day + timedelta(days=1))
    _, main, spare = routes
    by_credential = {b.key: b for b in o.credentials}
    for credential in (main, spare):
        mine = [r for r in records if r.credential_id == credential.pk]
        row = by_credential[credential.pk]
        assert row.requests == len(mine) and row.errors == sum(r.status != "ok" for r in mine)
        assert row.p95_ms == percentile(histogram(r.latency_ms for r in mine), 95)
    assert [b.requests for b in o.providers] == [len(records) - 1]  # the refused request has no provider


def test_percentile_is_the_bound_of_the_nearest_rank_bucket():
    assert percentile([], 50) is None
    assert percentile([0, 0], 95) is None
    assert percentile([1], 50) == LATENCY_BOUNDS_MS[0]
    # 20 requests: p95 is the 19th, p50 the 10th.
    h = [0] * 10 + [10] + [0] * 5 + [9, 1]
    assert percentile(h, 50) == LATENCY_BOUNDS_MS[10]
    assert percentile(h, 95) == LATENCY_BOUNDS_MS[16]
    assert percentile(h, 100) == LATENCY_BOUNDS_MS[17]
    # Slower than every bound: reported as the last bound.
    assert percentile([0] * len(LATENCY_BOUNDS_MS) + [3], 50) == LATENCY_BOUNDS_MS[-1]
    assert bucket_of(2**31 - 1) == len(LATENCY_BOUNDS_MS)
    assert all(b - a >= 1 for a, b in pairwise(LATENCY_BOUNDS_MS))
