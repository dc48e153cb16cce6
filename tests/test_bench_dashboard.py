"""bench/dashboard.py's fill, small, on the test database: the records it makes are what the gateway would write
(every status, prices 6/5 of costs, refusals free, 90 days), and the project's roll-up counts every one of them.
No timing here: the bench itself measures (bench/README.md)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Count, F, Max, Min, Sum

from bench import dashboard
from billing.models import UsageRecord, UsageRollup

pytestmark = [
    pytest.mark.django_db(transaction=True),  # the fill ends with VACUUM, which no transaction may hold
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the fill is PostgreSQL's generate_series"),
]


def test_the_fill_makes_gateway_like_records_and_the_roll_up_counts_them_all():
    now = datetime.now(UTC)
    world = dashboard.make_organisations(2)
    dashboard.fill(world, 2000, 300, now)
    main = world["orgs"][0]["id"]
    assert UsageRecord.objects.count() == 2600
    records = UsageRecord.objects.filter(organization_id=main)
    span = records.aggregate(first=Min("created_at"), last=Max("created_at"))
    assert span["last"] <= now and span["first"] >= now - timedelta(days=dashboard.DAYS)
    assert span["last"] - span["first"] > timedelta(days=dashboard.DAYS - 2)
    statuses = dict(records.values_list("status").annotate(n=Count("id")))
    assert set(statuses) == {status for status, *_ in dashboard.STATUSES}
    assert statuses["ok"] > 1700
    assert not records.exclude(status__in=["ok", "cancelled"]).exclude(price=0, cost=0, total_tokens=0).exists()
    assert not records.exclude(price=F("cost") * 6 / 5).exists()
    assert records.filter(stream=True).exists() and records.filter(stream=False).exists()
    assert records.values("api_key_id").distinct().count() == dashboard.KEYS
    rolled = dashboard.build_rollups(now)
    assert rolled["rollup_rows"] > 0
    daily = UsageRollup.objects.filter(granularity=UsageRollup.Granularity.DAY, organization_id=main)
    totals = daily.aggregate(n=Sum("requests"), price=Sum("price"))
    assert totals == {"n": 2000, "price": records.aggregate(p=Sum("price"))["p"]}
