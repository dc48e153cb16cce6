"""Usage rollups equal the raw records exactly, however often and however late they run; pruning
archives and deletes only rolled-up records, and the balance stays the sum of the ledger."""

import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum

from billing import rollups, services
from billing.models import (
    CreditAccount,
    LedgerEntry,
    UsageRecord,
    UsageRollup,
    UsageRollupState,
)
from billing.tasks import prune_usage, reconcile_balances, roll_up_usage
from tests import factories
from tests.concurrency import at_once

FIELDS = ("requests", "prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens", "cost", "price")
NOW = datetime.now(UTC)


@pytest.fixture(autouse=True)
def _clock():
    """The clock read at each test's start, not when the module was collected: a run that crosses midnight UTC
    would otherwise put "today's" records in yesterday."""
    global NOW
    NOW = datetime.now(UTC)


postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")


@pytest.fixture
def globex(transactional_db):
    return factories.organization("Globex", credit="10")


@pytest.fixture
def keys(organization):
    return [factories.api_key(organization, f"key {i}")[0] for i in range(2)]


_counter = iter(range(1, 10**9))


def usage(
    org,
    when,
    *,
    key=None,
    model="openai/gpt-4o-mini",
    prompt=100,
    completion=20,
    price="0.0000123456",
    cost="0.0000100001",
    cache_read=3,
    mode="",
):
    n = next(_counter)
    return factories.usage_event(
        org,
        key=key,
        model_name=model,
        prompt_tokens=prompt + n % 7,
        completion_tokens=completion + n % 5,
        cache_read_tokens=cache_read,
        cache_write_tokens=n % 2,
        cost=cost,
        price=price,
        created_at=when,
        billing_mode=mode,
    )


def spread(organization, globex, keys, *, start):
    """Usage over three hours of two days, two organisations, keys and no key, two models, charged and free."""
    events = []
    for hour in (0, 1, 25):
        at = start + timedelta(hours=hour, minutes=7)
        events += [
            usage(organization, at, key=keys[0]),
            usage(organization, at + timedelta(minutes=50), key=keys[0], model="deepseek/chat"),
            usage(organization, at, key=keys[1], price="0"),
            usage(organization, at, key=None, price="0.5"),
            usage(globex, at + timedelta(seconds=1), key=None, model="deepseek/chat"),
        ]
    return events


def floor(moment: datetime, granularity: str) -> datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if granularity == "day" else moment


def expected_from_raw(granularity: str, records=None) -> dict:
    sums = defaultdict(lambda: dict.fromkeys(FIELDS, 0))
    for r in records if records is not None else UsageRecord.objects.all():
        row = sums[
            (r.organization_id, r.api_key_id or 0, r.model_name, r.billing_mode, floor(r.created_at, granularity))
        ]
        row["requests"] += 1
        for name in FIELDS[1:]:
            row[name] += getattr(r, name)
    return dict(sums)


def rolled(granularity: str) -> dict:
    return {
        (r.organization_id, r.api_key_ref, r.model_name, r.billing_mode, r.period_start): {
            name: getattr(r, name) for name in FIELDS
        }
        for r in UsageRollup.objects.filter(granularity=granularity)
    }


def assert_rollups_match_raw():
    for granularity in ("hour", "day"):
        assert rolled(granularity) == expected_from_raw(granularity)


def ledger_intact():
    for account in CreditAccount.objects.all():
        total = account.entries.aggregate(s=Sum("amount"))["s"] or Decimal(0)
        assert account.balance == total
    assert reconcile_balances.delay().get() == 0


@pytest.fixture
def start():
    return floor(NOW - timedelta(days=3), "day") + timedelta(hours=5)


def test_rollups_equal_the_raw_sums_and_a_second_run_changes_nothing(organization, globex, keys, start):
    services.record_usage(spread(organization, globex, keys, start=start))

    assert roll_up_usage.delay().get() == 3
    assert_rollups_match_raw()
    ids = sorted(UsageRollup.objects.values_list("pk", flat=True))
    assert roll_up_usage.delay().get() == 0
    assert sorted(UsageRollup.objects.values_list("pk", flat=True)) == ids
    assert_rollups_match_raw()
    assert UsageRollup.objects.filter(granularity="hour").count() == 15
    assert UsageRollup.objects.filter(granularity="day").count() == 10
    charged = UsageRollup.objects.filter(granularity="day", period_start=floor(start, "day"))
    assert charged.aggregate(p=Sum("price"))["p"] == 2 * (Decimal("0.0000123456") * 3 + Decimal("0.5"))


def test_usage_in_each_billing_mode_is_rolled_up_apart(organization, keys, start, settings):
    """The invoices bill the postpaid rollups: a key's requests in one hour, in three modes, stay three rows."""
    at = start + timedelta(minutes=5)
    services.record_usage(
        [
            usage(organization, at, key=keys[0], mode="postpaid"),
            usage(organization, at + timedelta(minutes=1), key=keys[0], mode="internal", price="2"),
            usage(organization, at + timedelta(minutes=2), key=keys[0], mode="postpaid", price="1"),
            usage(organization, at + timedelta(minutes=3), key=keys[0]),
        ]
    )  # HUB_BILLING_MODE: credits
    settings.HUB_BILLING_MODE = "internal"  # what a record ran in is kept, not what the setting says later

    roll_up_usage.delay()

    assert_rollups_match_raw()
    for granularity in ("hour", "day"):
        rows = UsageRollup.objects.filter(granularity=granularity)
        assert dict(rows.values_list("billing_mode", "requests")) == {"postpaid": 2, "internal": 1, "credits": 1}
    assert UsageRollup.objects.get(granularity="day", billing_mode="postpaid").price == Decimal("1.0000123456")
    assert roll_up_usage.delay().get() == 0


def test_records_arriving_late_for_a_rolled_up_hour_are_counted(organization, globex, keys, start):
    services.record_usage(spread(organization, globex, keys, start=start))
    roll_up_usage.delay()

    # A batch the meter retried: written now, for requests that started hours ago.
    services.record_usage(
        [
            usage(organization, start + timedelta(minutes=59), key=keys[0]),
            usage(globex, start + timedelta(hours=25, minutes=1), model="deepseek/chat", price="0.25"),
        ]
    )
    assert roll_up_usage.delay().get() == 2
    assert roll_up_usage.delay().get() == 0
    assert_rollups_match_raw()
    day = UsageRollup.objects.get(
        granularity="day", organization=globex, period_start=floor(start, "day") + timedelta(days=1)
    )
    assert day.requests == 2 and day.price == Decimal("0.25") + Decimal("0.0000123456")


def test_one_rollup_row_per_period_and_mode_even_without_a_key(organization):
    row = {
        "organization": organization,
        "api_key": None,
        "model_name": "m",
        "granularity": "hour",
        "period_start": floor(NOW, "hour"),
        "billing_mode": "postpaid",
    }
    UsageRollup.objects.create(**row)
    UsageRollup.objects.create(**(row | {"billing_mode": "internal"}))
    with pytest.raises(IntegrityError), transaction.atomic():
        UsageRollup.objects.create(**row)


def test_a_deleted_key_keeps_its_rollups_apart(organization, globex, keys, start):
    services.record_usage(spread(organization, globex, keys, start=start))
    roll_up_usage.delay()
    keys[0].delete()
    keys[1].delete()

    assert UsageRollup.objects.filter(api_key__isnull=True, api_key_ref__gt=0).count() == 15
    assert roll_up_usage.delay().get() == 0


def test_the_lookback_setting_limits_the_frequent_run(organization, globex, keys, start, settings):
    services.record_usage(spread(organization, globex, keys, start=start))
    settings.HUB_USAGE_ROLLUP_LOOKBACK_HOURS = 1
    assert roll_up_usage.delay().get() == 0
    del settings.HUB_USAGE_ROLLUP_LOOKBACK_HOURS
    assert roll_up_usage.delay().get() == 3
    assert_rollups_match_raw()


@pytest.fixture
def old_start():
    return floor(NOW - timedelta(days=100), "day") + timedelta(hours=5)


def test_pruning_deletes_old_records_charged_or_not_and_keeps_the_rollups(organization, globex, keys, old_start, start):
    services.record_usage(spread(organization, globex, keys, start=old_start))
    services.record_usage(spread(organization, globex, keys, start=start))
    before = {g: expected_from_raw(g) for g in ("hour", "day")}
    entries = LedgerEntry.objects.count()
    old = UsageRecord.objects.filter(created_at__lt=NOW - timedelta(days=90)).count()

    assert prune_usage.delay().get() == old == 15
    assert prune_usage.delay().get() == 0

    # Rolled up before anything went; the charged ones' ledger entries stay, unlinked.
    assert {g: rolled(g) for g in ("hour", "day")} == before
    assert not UsageRecord.objects.filter(created_at__lt=NOW - timedelta(days=90)).exists()
    assert UsageRecord.objects.filter(created_at__gte=NOW - timedelta(days=90)).count() == 15
    assert LedgerEntry.objects.count() == entries
    assert LedgerEntry.objects.filter(kind="usage", usage_record__isnull=True).count() == 12
    ledger_intact()

    # The pruned days are sealed: later runs never rebuild them from what is left.
    # (the cutoff of the prune's own clock: NOW is when the module was collected, perhaps yesterday)
    assert UsageRollupState.objects.get().pruned_through == floor(datetime.now(UTC) - timedelta(days=90), "day")
    assert roll_up_usage.delay().get() == 0
    assert {g: rolled(g) for g in ("hour", "day")} == before


def test_internal_mode_usage_is_pruned_entirely(organization, globex, keys, old_start, settings):
    settings.HUB_BILLING_MODE = "internal"
    services.record_usage(spread(organization, globex, keys, start=old_start))
    before = expected_from_raw("day")

    assert prune_usage.delay().get() == 15
    assert not UsageRecord.objects.exists()
    assert rolled("day") == before
    ledger_intact()


def test_the_retention_setting_decides_what_is_old(organization, globex, keys, start, settings):
    services.record_usage(spread(organization, globex, keys, start=start))
    settings.HUB_USAGE_RETENTION_DAYS = 10
    assert prune_usage.delay().get() == 0
    settings.HUB_USAGE_RETENTION_DAYS = 1
    assert prune_usage.delay().get() == 15
    settings.HUB_USAGE_RETENTION_DAYS = 0  # keep forever
    assert prune_usage.delay().get() == 0


@postgres_only
def test_a_prune_that_races_a_late_record_deletes_nothing(organization, globex, keys, old_start, monkeypatch):
    services.record_usage(spread(organization, globex, keys, start=old_start))
    rollups.roll_up()
    real = rollups._roll_up_day

    def late_record_arrives(day):
        done = real(day)
        # Another process writes a record for the day being pruned and commits.
        writer = threading.Thread(
            target=lambda: (services.record_usage([usage(organization, old_start, price="0")]), connection.close())
        )
        writer.start()
        writer.join(10)
        return done

    monkeypatch.setattr(rollups, "_roll_up_day", late_record_arrives)
    assert rollups.prune() == 0
    assert UsageRecord.objects.count() == 16
    monkeypatch.undo()
    assert rollups.prune() == 16
    assert sum(r["requests"] for r in rolled("day").values()) == 16
    ledger_intact()


@postgres_only
def test_concurrent_runs_while_usage_is_written_end_equal_to_the_raw_records(organization, globex, keys, start):
    services.record_usage(spread(organization, globex, keys, start=start))
    errors, stop = [], threading.Event()

    def in_thread(work):
        def run():
            try:
                work()
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                connection.close()

        return threading.Thread(target=run)

    def writer():
        for i in range(20):
            services.record_usage(
                [
                    usage(organization, start + timedelta(hours=i % 3, minutes=i), key=keys[i % 2]),
                    usage(globex, start + timedelta(hours=25), price="0.1"),
                ]
            )
        stop.set()

    def roller():
        while not stop.is_set():
            rollups.roll_up()
        rollups.roll_up()

    threads = [in_thread(writer)] + [in_thread(roller) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    roll_up_usage.delay()
    assert roll_up_usage.delay().get() == 0
    assert_rollups_match_raw()


@postgres_only
def test_concurrent_prunes_and_rollups_delete_once_and_keep_the_ledger(organization, globex, keys, old_start, start):
    services.record_usage(spread(organization, globex, keys, start=old_start))
    services.record_usage(spread(organization, globex, keys, start=start))
    before = expected_from_raw("day")
    at_once(rollups.prune, rollups.prune, rollups.roll_up, rollups.roll_up)
    assert UsageRecord.objects.count() == 30 - 15
    assert rolled("day") == before
    ledger_intact()
