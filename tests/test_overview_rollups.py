"""The overview's figures before today come from the usage rollups once the last roll-up ran LATE after today
began (billing/overview.py), and are then what the raw records say; yesterday's from the raw records too when
it ran only LATE after yesterday began; every figure from the raw records when the roll-up is older, a day in
range was pruned, or the zone's midnight is not a whole UTC hour. A rollup row altered by hand shows which was
read."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import overview
from billing.models import UsageRollup, UsageRollupState
from billing.rollups import roll_up
from billing.services import record_usage
from tests import factories

pytestmark = pytest.mark.django_db

TODAY = date(2026, 3, 4)
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
MODES = ("credits", "postpaid", "internal")


def raw_summary(organization, mode: str) -> dict:
    """Every figure from the raw records: without the rollups' state, the overview reads no rollups."""
    return overview.usage_summary_of(organization=organization, mode=mode, today=TODAY)


@pytest.fixture
def usage():
    """An organisation with usage in every mode, every few hours from 20 February to 4 March 11:00."""
    org = factories.organization("Acme")
    other = factories.organization("Other")
    events = []
    moment = datetime(2026, 2, 20, 0, 30, tzinfo=UTC)
    n = 0
    while moment < NOW - timedelta(hours=1):
        for who in (org, other):
            events.append(
                factories.usage_event(
                    who,
                    price=Decimal(n % 7) / 4,
                    cost=Decimal(n % 5) / 8,
                    billing_mode=MODES[n % 3],
                    status="ok" if n % 4 else "upstream_error",
                    created_at=moment,
                )
            )
        n += 1
        moment += timedelta(hours=5, minutes=17)
    record_usage(events)
    return org


def summary(organization, mode: str) -> dict:
    state = UsageRollupState.objects.filter(pk=1).first()
    return overview.usage_summary_of(organization=organization, mode=mode, today=TODAY, rollup_state=state)


@pytest.mark.parametrize("zone", ["UTC", "Asia/Tokyo", "America/New_York", "Asia/Kolkata"])
@pytest.mark.parametrize("mode", MODES)
def test_rolled_up_the_figures_are_the_raw_records(usage, settings, zone, mode):
    settings.TIME_ZONE = zone
    with timezone.override(zone):
        before = summary(usage, mode)
        roll_up(now=NOW)
        assert summary(usage, mode) == before == raw_summary(usage, mode)
        assert before["spend_month"] > 0 and before["spend_week"] > 0 and before["requests_today"] > 0


@pytest.mark.parametrize("zone", ["UTC", "Asia/Tokyo"])
def test_exact_rollups_are_read(usage, settings, zone):
    settings.TIME_ZONE = zone
    roll_up(now=NOW)
    before = summary(usage, "credits")
    # 1 March, a whole UTC day in this month and in the week in both zones: its daily rollups are read.
    UsageRollup.objects.filter(
        organization=usage, granularity=UsageRollup.Granularity.DAY, period_start=datetime(2026, 3, 1, tzinfo=UTC)
    ).exclude(billing_mode="internal").update(price=0)
    after = summary(usage, "credits")
    assert after["spend_month"] < before["spend_month"] and after["spend_week"] < before["spend_week"]
    assert after["spend_today"] == before["spend_today"]


def test_just_after_midnight_yesterday_is_read_from_the_raw_records(usage):
    roll_up(now=NOW)
    UsageRollupState.objects.filter(pk=1).update(rolled_up_at=datetime(2026, 3, 4, 0, 30, tzinfo=UTC))
    UsageRollup.objects.filter(organization=usage).update(price=0)  # read before yesterday: the month shows it
    late = datetime(2026, 3, 3, 23, 55, tzinfo=UTC)  # yesterday's, not yet rolled up
    record_usage([factories.usage_event(usage, price="2.50", billing_mode="credits", created_at=late)])
    figures, raw = summary(usage, "credits"), raw_summary(usage, "credits")
    # Of the week and of the month before today, only yesterday's raw records count, the late one included.
    assert figures["spend_week"] == figures["spend_month"] - figures["spend_today"] >= Decimal("2.50")
    assert figures["spend_today"] == raw["spend_today"] and figures["spend_month"] < raw["spend_month"]


def test_an_old_roll_up_makes_the_raw_records_read(usage):
    roll_up(now=NOW)
    UsageRollupState.objects.filter(pk=1).update(rolled_up_at=datetime(2026, 3, 3, 0, 30, tzinfo=UTC))
    UsageRollup.objects.filter(organization=usage).update(price=0)
    assert summary(usage, "credits") == raw_summary(usage, "credits")


def test_a_pruned_day_in_range_makes_the_raw_records_read(usage):
    roll_up(now=NOW)
    UsageRollup.objects.filter(organization=usage).update(price=0)
    UsageRollupState.objects.filter(pk=1).update(pruned_through=datetime(2026, 2, 26, tzinfo=UTC))
    assert summary(usage, "credits") == raw_summary(usage, "credits")


def test_another_organisations_records_do_not_count(usage):
    roll_up(now=NOW)
    other = factories.organization("Third")
    record_usage([factories.usage_event(other, price="9", created_at=datetime(2026, 3, 2, tzinfo=UTC))])
    UsageRollup.objects.filter(organization=usage).update(price=0)
    assert summary(usage, "credits")["spend_week"] == 0  # its rollups still read: only its own records count
