"""The ledger is the truth: appended only, idempotent, and the balance always equals its sum."""

from decimal import Decimal

import pytest
from django.db.models import Sum

from billing import services
from billing.models import CreditAccount, LedgerEntry, UsageRecord
from billing.ratecard import token_amount
from tests import factories


def ledger_sum(organization) -> Decimal:
    return LedgerEntry.objects.filter(account__organization=organization).aggregate(s=Sum("amount"))["s"]


def test_a_grant_is_applied_once_per_idempotency_key(organization):
    for _ in range(3):
        services.credit_grant(organization=organization, amount=Decimal("5"), idempotency_key="promo-1")
    assert CreditAccount.objects.get(organization=organization).balance == Decimal("15")
    assert ledger_sum(organization) == Decimal("15")


def test_a_grant_must_be_positive(organization):
    with pytest.raises(ValueError):
        services.credit_grant(organization=organization, amount=Decimal("-1"))


def test_ledger_entries_cannot_be_edited_or_deleted(organization):
    entry = LedgerEntry.objects.get()
    entry.amount = Decimal("1000")
    with pytest.raises(ValueError):
        entry.save()
    with pytest.raises(ValueError):
        entry.delete()


def usage_event(organization, request_id="req_1", price="0.000123"):
    return factories.usage_event(
        organization, request_id=request_id, prompt_tokens=10, completion_tokens=5, price=price
    )


def test_recording_the_same_usage_twice_charges_once(organization):
    batch = [usage_event(organization, "req_a"), usage_event(organization, "req_b", "0.5")]
    services.record_usage(batch)
    services.record_usage(batch)
    assert UsageRecord.objects.count() == 2
    assert CreditAccount.objects.get(organization=organization).balance == Decimal("10") - Decimal("0.500123")
    assert ledger_sum(organization) == CreditAccount.objects.get(organization=organization).balance


def test_amounts_are_exact_to_the_configured_digits(organization):
    assert token_amount(1, Decimal("0.15")) == Decimal("0.00000015")
    assert token_amount(3, Decimal("0.1")) == Decimal("0.0000003")
    services.record_usage([usage_event(organization, f"req_{i}", "0.0000001") for i in range(7)])
    assert CreditAccount.objects.get(organization=organization).balance == Decimal("9.9999993")


def test_reconciliation_finds_no_drift_then_reports_one(organization, caplog):
    from billing.tasks import reconcile_balances

    services.record_usage([usage_event(organization)])
    assert reconcile_balances.delay().get() == 0
    CreditAccount.objects.filter(organization=organization).update(balance=Decimal("99"))
    assert reconcile_balances.delay().get() == 1
    assert "drift" in caplog.text


def test_internal_mode_records_usage_without_ledger_entries(organization, settings):
    settings.HUB_BILLING_MODE = "internal"
    services.record_usage([usage_event(organization)])
    assert UsageRecord.objects.get().price == Decimal("0.000123")
    assert not LedgerEntry.objects.filter(kind="usage").exists()


def test_large_balances_stay_exact_to_the_last_digit(organization):
    # 16 significant digits: more than a float (or SQLite's NUMERIC) can hold.
    services.credit_grant(organization=organization, amount=Decimal("999989.9999999999"))
    services.record_usage([usage_event(organization, f"req_{i}", "0.0000000001") for i in range(3)])
    balance = CreditAccount.objects.get(organization=organization).balance
    assert balance == Decimal("999999.9999999996")
    assert ledger_sum(organization) == balance
    assert services.reconcile_balances() == []
