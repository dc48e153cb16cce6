"""Retention: usage records past HUB_USAGE_RETENTION_DAYS, charged ones included, are written to the archive
and then deleted, once rolled up; the ledger, the balance, the rollups and the invoices stay as they were."""

import gzip
import json
import threading
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Sum
from django.test import Client

from accounts.models import User
from accounts.services import organization_create
from billing import archive, invoices, rollups, services
from billing.models import CreditAccount, Invoice, LedgerEntry, UsageRecord, UsageRollup, UsageRollupState
from billing.tasks import prune_usage, reconcile_balances
from tests import factories

RETENTION = 90
NOW = OLD = RECENT = None  # set by _clock


@pytest.fixture(autouse=True)
def _clock():
    """The clock read at each test's start, not when the module was collected: a run that crosses midnight UTC
    would otherwise put "today's" records in yesterday."""
    global NOW, OLD, RECENT
    NOW = datetime.now(UTC)
    OLD = rollups.start_of_day(NOW - timedelta(days=RETENTION + 40)) + timedelta(hours=9)
    RECENT = NOW - timedelta(days=2)


ROLLUP_FIELDS = (
    "organization_id",
    "api_key_ref",
    "model_name",
    "billing_mode",
    "granularity",
    "period_start",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "images",
    "audio_seconds",
    "cost",
    "price",
)
_n = iter(range(1, 10**9))
postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="a concurrent writer needs PostgreSQL")


@pytest.fixture
def archive_dir(tmp_path, settings):
    settings.HUB_USAGE_RETENTION_DAYS = RETENTION
    settings.STORAGES = {
        **settings.STORAGES,
        "usage_archive": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    return tmp_path


@pytest.fixture
def credits_org(transactional_db, archive_dir):
    org = organization_create(name="Prepaid", slug="prepaid")
    services.credit_grant(organization=org, amount=Decimal(50), idempotency_key="retention:prepaid")
    return org


@pytest.fixture
def postpaid_orgs(transactional_db, archive_dir):
    orgs = [organization_create(name=f"Postpaid {i}", slug=f"postpaid-{i}") for i in range(2)]
    for org in orgs:
        services.account_open(organization=org)
        CreditAccount.objects.filter(organization=org).update(billing_mode="postpaid")
    return orgs


def event(org, when, *, price="0.0123456789", mode="credits", model="openai/gpt-4o-mini", status="ok", **fields):
    n = next(_n)
    return factories.usage_event(
        org,
        model_name=model,
        status=status,
        prompt_tokens=100 + n,
        completion_tokens=7 + n % 5,
        cache_read_tokens=n % 3,
        price=price,
        cost=Decimal(price) / 3,
        created_at=when,
        billing_mode=mode,
        latency_ms=40 + n,
        error="" if status == "ok" else "refused",
        **fields,
    )


def charged_usage(org, start, mode="credits"):
    """Over two days: charged requests of two models, a free refusal, a transcription."""
    events = []
    for hours in (0, 3, 26):
        at = start + timedelta(hours=hours, minutes=11)
        events += [
            event(org, at, mode=mode),
            event(org, at + timedelta(minutes=1), model="anthropic/claude", price="0.25", mode=mode),
            event(org, at, price="0", status="client_error", mode=mode),
            event(
                org,
                at,
                model="openai/whisper-1",
                unit="seconds",
                audio_seconds=Decimal("3.125"),
                price="0.0006",
                mode=mode,
            ),
        ]
    services.record_usage(events)


def ledger_equals_balance():
    for account in CreditAccount.objects.all():
        assert account.balance == (account.entries.aggregate(s=Sum("amount"))["s"] or Decimal(0))
    assert reconcile_balances.delay().get() == 0


def rollup_rows():
    return sorted(UsageRollup.objects.values_list(*ROLLUP_FIELDS))


def as_archived(record: UsageRecord) -> dict:
    """A record as the archive must hold it: every field, Decimals as strings, times in ISO 8601."""
    out = {}
    for f in UsageRecord._meta.concrete_fields:
        value = getattr(record, f.attname)
        out[f.attname] = (
            str(value) if isinstance(value, Decimal) else value.isoformat() if isinstance(value, datetime) else value
        )
    return out


def archived(month) -> list[dict]:
    return list(archive.read_month(month))


def archive_dir_files() -> list[Path]:
    return sorted(Path(archive.storage().location).rglob("*.jsonl.gz"))


def test_charged_records_past_retention_are_archived_then_deleted_and_the_ledger_keeps_its_receipts(credits_org):
    charged_usage(credits_org, OLD)
    charged_usage(credits_org, RECENT)
    old = list(UsageRecord.objects.filter(created_at__lt=NOW - timedelta(days=RETENTION)).order_by("pk"))
    assert len(old) == 12 and LedgerEntry.objects.filter(usage_record__in=old).count() == 9
    entries = {e.pk: e for e in LedgerEntry.objects.filter(usage_record__in=old)}
    ledger_equals_balance()
    rollups.roll_up()
    rolled_before = rollup_rows()
    balance = CreditAccount.objects.get(organization=credits_org).balance

    assert prune_usage.delay().get() == 12

    assert not UsageRecord.objects.filter(pk__in=[r.pk for r in old]).exists()
    assert UsageRecord.objects.count() == 12, "recent records stay"
    # The archive holds exactly those records, every field of each.
    assert archived(rollups.start_of_month(OLD)) + archived(rollups.next_month(OLD)) == [as_archived(r) for r in old]
    # One gzip part per day, named by its month and day, readable without the hub.
    root = Path(archive.storage().location)
    assert [str(p.relative_to(root)) for p in archive_dir_files()] == sorted(
        {archive.part_name(rollups.start_of_day(r.created_at)) for r in old}
    )
    with gzip.open(archive_dir_files()[0], "rt") as first:
        line = json.loads(first.readline())
    assert line["price"] == str(old[0].price) and line["created_at"] == old[0].created_at.isoformat()

    # The ledger is untouched but for the link: each entry keeps its request, model, amount and time.
    for pk, before in entries.items():
        after = LedgerEntry.objects.get(pk=pk)
        assert after.usage_record_id is None
        assert [getattr(after, f.attname) for f in LedgerEntry._meta.concrete_fields if f.name != "usage_record"] == [
            getattr(before, f.attname) for f in LedgerEntry._meta.concrete_fields if f.name != "usage_record"
        ]
        record = next(r for r in old if r.pk == before.usage_record_id)
        assert (after.request_id, after.model_name, after.usage_at, after.amount) == (
            record.request_id,
            record.model_name,
            record.created_at,
            -record.price,
        )
    assert CreditAccount.objects.get(organization=credits_org).balance == balance
    ledger_equals_balance()
    assert rollup_rows() == rolled_before


def test_a_second_run_archives_and_deletes_nothing_more(credits_org):
    charged_usage(credits_org, OLD)
    assert prune_usage.delay().get() == 12
    files = {p: p.read_bytes() for p in archive_dir_files()}
    rows, rolled, entries = (
        list(UsageRecord.objects.values_list()),
        rollup_rows(),
        list(LedgerEntry.objects.order_by("pk").values_list()),
    )

    assert prune_usage.delay().get() == 0

    assert {p: p.read_bytes() for p in archive_dir_files()} == files and len(files) == 2
    assert list(UsageRecord.objects.values_list()) == rows == []
    assert (rollup_rows(), list(LedgerEntry.objects.order_by("pk").values_list())) == (rolled, entries)


def test_a_run_interrupted_between_archive_and_delete_loses_and_doubles_nothing(credits_org, monkeypatch):
    charged_usage(credits_org, OLD)
    old = [as_archived(r) for r in UsageRecord.objects.order_by("pk")]
    real = archive.write_day

    def dies_after_writing(*args):
        real(*args)
        raise SystemExit("killed")  # the process dies: no handler cleans up after it

    monkeypatch.setattr(archive, "write_day", dies_after_writing)
    monkeypatch.setattr(archive, "discard_day", lambda *args: None)
    with pytest.raises(SystemExit):
        rollups.prune()
    assert UsageRecord.objects.count() == 12 and len(archive_dir_files()) == 1
    assert UsageRollupState.objects.get().pruned_through is None
    monkeypatch.undo()

    assert rollups.prune() == 12

    assert not UsageRecord.objects.exists()
    assert archived(rollups.start_of_month(OLD)) + archived(rollups.next_month(OLD)) == old
    ledger_equals_balance()


def test_a_record_not_rolled_up_is_never_deleted(credits_org, monkeypatch):
    charged_usage(credits_org, OLD)
    rollups.roll_up()
    # A record the rollups have not counted yet (written after the roll-up that the prune relies on).
    services.record_usage([event(credits_org, OLD + timedelta(hours=1))])
    monkeypatch.setattr(rollups, "_roll_up_day", lambda day: 0)

    assert rollups.prune() == 0
    assert UsageRecord.objects.count() == 13 and archive_dir_files() == [], "nothing deleted, nothing archived"
    monkeypatch.undo()

    assert rollups.prune() == 13
    assert sum(UsageRollup.objects.filter(granularity="day").values_list("requests", flat=True)) == 13
    assert len(archived(rollups.start_of_month(OLD)) + archived(rollups.next_month(OLD))) == 13

    # A record arriving for a day already pruned (sealed) is never in its rollups: it stays, and is logged.
    services.record_usage([event(credits_org, OLD + timedelta(minutes=1))])
    assert rollups.prune() == 0
    assert UsageRecord.objects.count() == 1
    assert len(archived(rollups.start_of_month(OLD)) + archived(rollups.next_month(OLD))) == 13
    ledger_equals_balance()


@postgres_only
def test_a_record_committed_while_its_day_is_archived_rolls_the_prune_back(credits_org, monkeypatch):
    charged_usage(credits_org, OLD)
    real = archive.write_day

    def another_process_writes(day, *args):
        ids = real(day, *args)
        writer = threading.Thread(
            target=lambda: (services.record_usage([event(credits_org, day + timedelta(hours=23))]), connection.close())
        )
        writer.start()
        writer.join(10)
        return ids

    monkeypatch.setattr(archive, "write_day", another_process_writes)
    assert rollups.prune() == 0
    assert UsageRecord.objects.count() == 13 and archive_dir_files() == [], "rolled back, its part discarded"
    monkeypatch.undo()

    assert rollups.prune() == 13
    assert len(archived(rollups.start_of_month(OLD)) + archived(rollups.next_month(OLD))) == 13
    ledger_equals_balance()


@contextmanager
def ledger_editable():
    """Set up history the append-only trigger (PostgreSQL) would refuse."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE billing_ledgerentry DISABLE TRIGGER billing_ledgerentry_append_only")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE billing_ledgerentry ENABLE TRIGGER billing_ledgerentry_append_only")


def lines(invoice) -> list[tuple]:
    return sorted(
        (
            line.model_name,
            line.requests,
            line.prompt_tokens,
            line.completion_tokens,
            line.images,
            line.audio_seconds,
            line.amount,
        )
        for line in invoice.lines.all()
    )


def test_invoices_are_the_same_whether_issued_before_or_after_their_month_is_pruned(postpaid_orgs):
    first, second = postpaid_orgs
    for org in postpaid_orgs:
        charged_usage(org, OLD, mode="postpaid")  # no ledger entries: invoiced from the rollups
    month = rollups.start_of_month(OLD)
    rollups.roll_up()
    issued = invoices.invoice_issue(organization_id=first.pk, period_start=month)
    issued_lines, subtotal = lines(issued), issued.subtotal
    wanted = invoices.invoice_lines(organization_id=second.pk, start=month, end=rollups.next_month(month))
    raw_total = UsageRecord.objects.filter(
        organization=second, created_at__gte=month, created_at__lt=rollups.next_month(month)
    ).aggregate(s=Sum("price"))["s"]

    assert prune_usage.delay().get() == 24
    assert not UsageRecord.objects.exists()

    assert lines(Invoice.objects.get(pk=issued.pk)) == issued_lines
    assert Invoice.objects.get(pk=issued.pk).subtotal == subtotal
    invoices.issue_due()  # the second organisation's month, issued after its records are gone
    late = Invoice.objects.get(organization=second, period_start=month)
    assert lines(late) == sorted(
        (
            line.model_name,
            line.requests,
            line.prompt_tokens,
            line.completion_tokens,
            line.images,
            line.audio_seconds,
            line.amount,
        )
        for line in wanted
    )
    assert late.subtotal == raw_total


def test_the_admin_shows_a_ledger_entry_whose_record_was_archived(credits_org):
    charged_usage(credits_org, OLD)
    entry = LedgerEntry.objects.filter(kind="usage").order_by("pk").first()
    request_id = entry.usage_record.request_id
    prune_usage.delay()
    operator = User.objects.create_superuser("operator", "op@example.com", "pw")
    browser = Client()
    browser.force_login(operator)

    page = browser.get(f"/admin/billing/ledgerentry/{entry.pk}/change/")

    assert page.status_code == 200
    assert request_id in page.content.decode() and "openai/gpt-4o-mini" in page.content.decode()
    listing = browser.get("/admin/billing/ledgerentry/", {"q": request_id})
    assert listing.status_code == 200 and f"/admin/billing/ledgerentry/{entry.pk}/change/" in listing.content.decode()
    account = browser.get(f"/admin/billing/creditaccount/{entry.account_id}/change/")
    assert account.status_code == 200


def test_a_keys_lifetime_spend_still_counts_the_days_retention_pruned(credits_org):
    from accounts.services import api_key_create
    from hub import policy

    key, _ = api_key_create(organization=credits_org, name="budgeted")
    services.record_usage([event(credits_org, when, api_key_id=key.pk, price="0.5") for when in (OLD, RECENT)])
    lifetime, _ = policy.period_bounds("lifetime", NOW)
    assert policy._spent(key.pk, lifetime) == Decimal(1)

    assert prune_usage.delay().get() == 1

    assert policy._spent(key.pk, lifetime) == Decimal(1), "the pruned day is in the rollups"
    assert policy._spent(key.pk, rollups.start_of_day(RECENT)) == Decimal("0.5")


def test_the_migration_fills_existing_entries_from_their_records(credits_org):
    from django.db.migrations.executor import MigrationExecutor

    charged_usage(credits_org, RECENT)
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate([("billing", "0014_image_input_tokens")])  # before entries kept their own receipt
    try:
        executor = MigrationExecutor(connection)
        executor.migrate([("billing", "0015_ledger_keeps_usage")])
    finally:
        MigrationExecutor(connection).migrate(leaves)

    usage = LedgerEntry.objects.filter(kind="usage").select_related("usage_record")
    assert usage.count() == 9
    for entry in usage:
        record = entry.usage_record
        assert (entry.request_id, entry.model_name, entry.usage_at) == (
            record.request_id,
            record.model_name,
            record.created_at,
        )
    grant = LedgerEntry.objects.get(kind="grant")
    assert (grant.request_id, grant.model_name, grant.usage_at, grant.usage_record) == ("", "", None, None)


@postgres_only
def test_the_database_refuses_any_other_change_to_a_ledger_entry(credits_org):
    from django.db import DatabaseError, transaction

    charged_usage(credits_org, OLD)
    operator = User.objects.create_superuser("operator", "op@example.com", "pw")
    grant = services.credit_grant(organization=credits_org, amount=Decimal(1), created_by=operator)
    entry = LedgerEntry.objects.filter(kind="usage").first()
    for change in (
        {"amount": Decimal(0)},
        {"request_id": "other"},
        {"usage_record": None, "amount": Decimal(-9)},
        {"usage_record": UsageRecord.objects.exclude(pk=entry.usage_record_id).first()},
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            LedgerEntry.objects.filter(pk=entry.pk).update(**change)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        LedgerEntry.objects.filter(pk=grant.pk)._raw_delete(connection.alias)

    # What the schema asks for goes through: a pruned record's link, a deleted user's link.
    assert prune_usage.delay().get() == 12
    operator.delete()
    assert LedgerEntry.objects.get(pk=grant.pk).created_by is None
    assert not LedgerEntry.objects.filter(usage_record__isnull=False).exists()
    ledger_equals_balance()


def test_records_an_older_prune_kept_for_the_ledger_are_archived_and_late_ones_stay(credits_org):
    charged_usage(credits_org, OLD)
    with ledger_editable():  # written when they ran, as they were then, not now
        for entry in LedgerEntry.objects.filter(kind="usage").select_related("usage_record"):
            LedgerEntry.objects.filter(pk=entry.pk).update(
                created_at=entry.usage_record.created_at + timedelta(seconds=2)
            )
    rollups.roll_up()
    # As the rule before did: the day's free records deleted, the charged ones kept, the days sealed.
    UsageRecord.objects.filter(ledger_entry__isnull=True).delete()
    cutoff = rollups.start_of_day(NOW - timedelta(days=RETENTION))
    UsageRollupState.objects.filter(pk=1).update(pruned_through=cutoff)
    kept = [as_archived(r) for r in UsageRecord.objects.order_by("pk")]
    assert len(kept) == 9
    # Records that arrived after their day was sealed, charged or not: not in the rollups.
    services.record_usage(
        [
            event(credits_org, OLD + timedelta(minutes=5)),
            event(credits_org, OLD + timedelta(minutes=6), price="0", status="client_error"),
        ]
    )
    rolled, entries = rollup_rows(), list(LedgerEntry.objects.order_by("pk").values_list("pk", "amount"))

    assert prune_usage.delay().get() == 9
    assert prune_usage.delay().get() == 0

    assert UsageRecord.objects.count() == 2, "the late ones stay"
    month = rollups.start_of_month(OLD)
    assert archived(month) + archived(rollups.next_month(OLD)) == kept
    assert all(name.endswith("-kept.jsonl.gz") for name in archive.parts(month))
    assert rollup_rows() == rolled
    assert list(LedgerEntry.objects.order_by("pk").values_list("pk", "amount")) == entries
    ledger_equals_balance()


def test_the_metering_write_fills_each_entry_s_receipt_without_a_query_per_request(credits_org):
    from django.test.utils import CaptureQueriesContext

    counts = []
    for n in (1, 25):
        with CaptureQueriesContext(connection) as queries:
            services.record_usage([event(credits_org, RECENT) for _ in range(n)])
        counts.append(len(queries))
    assert counts[0] == counts[1]
    for entry in LedgerEntry.objects.filter(kind="usage").select_related("usage_record"):
        assert (entry.request_id, entry.model_name, entry.usage_at) == (
            entry.usage_record.request_id,
            entry.usage_record.model_name,
            entry.usage_record.created_at,
        )
