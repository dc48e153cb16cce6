"""billing.inserts: the metering writer's rows, appended without model instances, are the rows bulk_create writes.

Run on SQLite and on PostgreSQL (CI): on PostgreSQL most values go to the driver as they are, and the money
columns through their field; on SQLite every value through its field.
"""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.forms.models import model_to_dict

from billing import usage
from billing.inserts import Insert
from billing.models import LedgerEntry, UsageRecord
from billing.services import record_usage
from tests import factories
from tests.factories import usage_event

pytestmark = pytest.mark.django_db(transaction=True)

RECORDS = Insert(UsageRecord, usage.RECORD_FIELDS, skip_conflicts_on="request_id", returning=("request_id", "id"))


@pytest.fixture
def organization():
    return factories.organization("Acme", credit="10")


def _every_field(organization, request_id: str):
    """An event with every column away from its default: text with non-ASCII, money with every decimal place
    the column keeps, fractional seconds, an aware datetime off UTC, a missing first token."""
    key = factories.api_key(organization, f"k-{request_id}")[0]
    return usage.storable(
        usage_event(
            organization,
            key=key,
            request_id=request_id,
            model_name="acme/ünïcode-模型",
            served_model="acme/served",
            endpoint="embeddings",
            stream=True,
            status="error",
            prompt_tokens=2**30,
            completion_tokens=7,
            cache_read_tokens=3,
            cache_write_tokens=2,
            image_input_tokens=1,
            usage_estimated=True,
            cache_hit=True,
            unit="seconds",
            images=4,
            image_tier="1024x1024/hd",
            audio_seconds=Decimal("12.345"),
            cost=Decimal("0.0000012345"),
            price=Decimal("123456.0000000001"),
            latency_ms=1234,
            first_token_ms=None,
            http_status=599,
            error="upstream said: ½ done",
            billing_mode="credits",
            created_at=datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=UTC),
        )
    )


def test_a_record_inserted_is_the_record_bulk_create_writes(organization):
    ours, theirs = _every_field(organization, "req_ours"), _every_field(organization, "req_theirs")
    [(request_id, pk)] = RECORDS([usage.record_row(ours)])
    UsageRecord.objects.bulk_create([usage.record_of(theirs)])
    a = model_to_dict(UsageRecord.objects.get(pk=pk))
    b = model_to_dict(UsageRecord.objects.get(request_id="req_theirs"))
    assert request_id == "req_ours" and a.pop("request_id") == "req_ours" and b.pop("request_id") == "req_theirs"
    assert a.pop("api_key") != b.pop("api_key") and a.pop("id") != b.pop("id")  # a key each, a row each
    assert a == b
    got = UsageRecord.objects.get(pk=pk)
    assert got.price == Decimal("123456.0000000001") and got.audio_seconds == Decimal("12.345")
    assert got.created_at == datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=UTC) and got.first_token_ms is None


def test_a_request_id_already_recorded_is_skipped_not_refused(organization):
    first = _every_field(organization, "req_twice")
    assert RECORDS([usage.record_row(first)]) != []
    again = usage.storable(usage_event(organization, request_id="req_twice", price="5"))
    fresh = usage.storable(usage_event(organization, request_id="req_fresh"))
    returned = RECORDS([usage.record_row(again), usage.record_row(fresh)])
    assert [r for r, _ in returned] == ["req_fresh"]
    assert UsageRecord.objects.get(request_id="req_twice").price == Decimal("123456.0000000001")


def test_more_rows_than_one_statement_takes_are_split_and_all_returned_in_order(organization):
    # 999 parameters on SQLite, 65535 on PostgreSQL: 2,500 rows of 31 columns need several statements on both.
    events = [usage.storable(usage_event(organization, request_id=f"req_many_{i}")) for i in range(2500)]
    returned = RECORDS([usage.record_row(e) for e in events])
    assert [r for r, _ in returned] == [e.request_id for e in events]
    assert (
        len({pk for _, pk in returned})
        == 2500
        == UsageRecord.objects.filter(request_id__startswith="req_many_").count()
    )


def test_record_usage_charges_each_new_record_once_with_its_receipt(organization):
    events = [usage_event(organization, request_id=f"req_c{i}", price="0.25", served_model="acme/x") for i in range(3)]
    record_usage(events)
    record_usage(events)  # a replayed batch charges nothing twice
    entries = LedgerEntry.objects.filter(kind="usage").order_by("request_id")
    assert [(e.request_id, e.amount, e.model_name, e.idempotency_key) for e in entries] == [
        (f"req_c{i}", Decimal("-0.25"), "acme/x", f"usage:req_c{i}") for i in range(3)
    ]
    for entry in entries:
        record = UsageRecord.objects.get(request_id=entry.request_id)
        assert entry.usage_record_id == record.pk and entry.usage_at == record.created_at
        assert entry.description == f"{record.endpoint} acme/x" and entry.created_at is not None
    organization.credit.refresh_from_db()
    assert organization.credit.balance == Decimal("9.25")


def test_a_clean_event_is_stored_as_it_is_and_each_kind_of_dirt_is_cleaned(organization):
    clean = usage_event(organization, request_id="req_clean", model_name="acme/m", first_token_ms=12)
    assert usage.storable(clean) is clean
    for dirt in (
        {"model_name": "a\x00b"},
        {"error": "lone \udc80"},
        {"model_name": "x" * 201},
        {"latency_ms": -1},
        {"prompt_tokens": 2**31},
        {"first_token_ms": 2**31},
        {"http_status": 40000},
    ):
        dirty = usage_event(organization, request_id="req_dirty", **dirt)
        stored = usage.storable(dirty)
        assert stored is not dirty and stored != dirty, dirt
