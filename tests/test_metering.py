"""The meter writes usage in batches and never lets one bad record block the others."""

from decimal import Decimal

from billing.models import UsageRecord
from hub.metering import _write
from tests.factories import usage_event


def event(org_id, request_id, price="0.01"):
    return usage_event(organization_id=org_id, request_id=request_id, prompt_tokens=1, completion_tokens=1, price=price)


def test_a_record_for_a_vanished_organisation_is_dropped_and_the_rest_written(organization):
    balances = _write(
        [
            event(organization.pk, "req_ok_1"),
            event(organization.pk + 999, "req_orphan"),
            event(organization.pk, "req_ok_2"),
        ]
    )
    assert set(UsageRecord.objects.values_list("request_id", flat=True)) == {"req_ok_1", "req_ok_2"}
    assert balances[organization.pk] == Decimal("9.98")


def test_a_batch_is_written_in_one_go_and_marks_keys_used(organization, api_key):
    from accounts.models import ApiKey

    key = ApiKey.objects.get()
    batch = [event(organization.pk, f"req_{i}") for i in range(50)]
    for e in batch:
        e.api_key_id = key.pk
    balances = _write(batch)
    assert UsageRecord.objects.count() == 50
    assert balances[organization.pk] == Decimal("9.50")
    assert ApiKey.objects.get().last_used_at is not None
