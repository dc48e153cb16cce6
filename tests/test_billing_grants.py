"""Grants with an expiry: spent first, earliest expiry first; what is left lapses once; the ledger stays the truth."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from billing import grants, services
from billing.models import CreditAccount, CreditGrant, LedgerEntry
from tests import factories
from tests.concurrency import at_once

D = Decimal


def balance(organization) -> Decimal:
    return CreditAccount.objects.get(organization=organization).balance


def assert_ledger_is_the_truth(organization):
    total = LedgerEntry.objects.filter(account__organization=organization).aggregate(s=Sum("amount"))["s"]
    assert balance(organization) == total


def spend(organization, price, request_id):
    services.record_usage([factories.usage_event(organization, request_id=request_id, price=price)])


def in_days(days):
    return timezone.now() + timedelta(days=days)


def test_it_spends_the_earliest_expiry_first_and_paid_credit_last(organization):
    # The organisation has 10 paid credits (the fixture's grant).
    month = grants.grant_with_expiry(
        organization=organization, amount=D(50), expires_at=in_days(30), description="Welcome: 50 credits for 30 days"
    )
    week = grants.grant_with_expiry(
        organization=organization, amount=D(20), expires_at=in_days(5), description="Launch week"
    )
    spend(organization, "25", "req_1")  # 20 from the week's grant, 5 from the month's
    services.credit_grant(
        organization=organization, amount=D(100), description="paid top-up", idempotency_key="stripe:payment:pi_1"
    )
    spend(organization, "10", "req_2")  # from the month's grant, not the top-up

    left = grants.remainders(CreditAccount.objects.get(organization=organization).pk)
    assert left == {month.pk: D(35), week.pk: D(0)}

    assert grants.lapse_expired(now=in_days(6)) == 1
    week.refresh_from_db()
    assert (week.lapsed_amount, week.lapse_entry) == (D(0), None)  # all used: nothing to take back

    assert grants.lapse_expired(now=in_days(31)) == 1
    month.refresh_from_db()
    lapse = month.lapse_entry
    assert (lapse.kind, lapse.amount, lapse.idempotency_key) == ("adjustment", D(-35), f"lapse:{month.pk}")
    assert balance(organization) == D(110)  # 10 + 100 paid; every promotional credit is spent or gone
    assert_ledger_is_the_truth(organization)


def test_a_refund_takes_paid_credit_back_before_promotional_credit(organization):
    promo = grants.grant_with_expiry(
        organization=organization, amount=D(50), expires_at=in_days(30), description="promo"
    )
    services.credit_grant(
        organization=organization,
        amount=D(-10),
        kind="adjustment",
        description="refund of the paid 10",
        idempotency_key="stripe:refund:re_1",
    )
    spend(organization, "5", "req_1")

    grants.lapse_expired(now=in_days(31))
    promo.refresh_from_db()
    assert promo.lapsed_amount == D(45)
    assert balance(organization) == D(0)
    assert_ledger_is_the_truth(organization)


def test_usage_after_the_expiry_does_not_use_the_grant_and_the_lapse_never_takes_more_than_the_balance(
    organization, monkeypatch
):
    promo = grants.grant_with_expiry(
        organization=organization, amount=D(50), expires_at=in_days(1), description="promo"
    )
    later = in_days(2)
    monkeypatch.setattr(timezone, "now", lambda: later)
    spend(organization, "55", "req_late")  # written after the expiry, before the task ran
    monkeypatch.undo()

    assert grants.remainders(promo.account_id) == {promo.pk: D(50)}
    assert grants.lapse_grant(grant_id=promo.pk, now=in_days(3)) == D(5)
    assert balance(organization) == D(0)
    assert_ledger_is_the_truth(organization)


def test_a_grant_not_expired_yet_does_not_lapse(organization):
    promo = grants.grant_with_expiry(organization=organization, amount=D(5), expires_at=in_days(1), description="promo")
    assert grants.lapse_expired() == 0
    assert grants.lapse_grant(grant_id=promo.pk) is None
    assert balance(organization) == D(15)
    assert [(g.pk, left) for g, left in grants.expiring_credit(promo.account_id)] == [(promo.pk, D(5))]


def test_the_lapse_task_is_safe_to_run_twice(organization, monkeypatch):
    from billing.tasks import lapse_expired_grants

    promo = grants.grant_with_expiry(organization=organization, amount=D(7), expires_at=in_days(1), description="promo")
    later = in_days(2)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert lapse_expired_grants.delay().get() == 1
    assert lapse_expired_grants.delay().get() == 0
    monkeypatch.undo()
    assert LedgerEntry.objects.filter(idempotency_key=f"lapse:{promo.pk}").get().amount == D(-7)
    assert balance(organization) == D(10)
    assert_ledger_is_the_truth(organization)


@pytest.mark.skipif(connection.vendor == "sqlite", reason="concurrent writers need a server database")
def test_two_lapses_at_once_take_the_remainder_once(organization):
    promo = grants.grant_with_expiry(organization=organization, amount=D(7), expires_at=in_days(1), description="promo")
    results = at_once(*[lambda: grants.lapse_grant(grant_id=promo.pk, now=in_days(2))] * 4)
    assert sorted(results, key=str) == [D(7), None, None, None]
    assert balance(organization) == D(10)
    assert_ledger_is_the_truth(organization)


def test_a_grant_with_an_expiry_is_audited_and_idempotent(organization):
    from accounts.models import AuditEvent

    first = grants.grant_with_expiry(
        organization=organization,
        amount=D(5),
        expires_at=in_days(3),
        description="promo",
        idempotency_key="promo-2026:acme",
    )
    again = grants.grant_with_expiry(
        organization=organization,
        amount=D(5),
        expires_at=in_days(3),
        description="promo",
        idempotency_key="promo-2026:acme",
    )
    assert first.pk == again.pk and CreditGrant.objects.count() == 1
    assert balance(organization) == D(15)
    assert AuditEvent.objects.filter(action="credit.grant", target_id=str(first.entry_id)).count() == 1


def test_a_grant_must_be_positive_and_expire_in_the_future(organization):
    with pytest.raises(ValueError):
        grants.grant_with_expiry(organization=organization, amount=D(0), expires_at=in_days(1), description="x")
    with pytest.raises(ValueError):
        grants.grant_with_expiry(organization=organization, amount=D(1), expires_at=in_days(-1), description="x")
    services.credit_grant(organization=organization, amount=D(1), idempotency_key="plain-grant")
    with pytest.raises(ValueError):  # the key of a grant without an expiry
        grants.grant_with_expiry(
            organization=organization,
            amount=D(1),
            expires_at=in_days(1),
            description="x",
            idempotency_key="plain-grant",
        )


def test_an_operator_grants_credit_with_an_expiry_in_the_admin(organization):
    from django.contrib.admin.sites import site
    from django.test import RequestFactory

    from accounts.models import AuditEvent, User
    from billing.admin import CreditGrantForm

    operator = User.objects.create_superuser(username="operator", email="op@example.com", password="pw-not-used")
    account = CreditAccount.objects.get(organization=organization)
    form = CreditGrantForm(
        data={"account": account.pk, "amount": "50", "valid_days": "30", "description": "Sorry for the outage"}
    )
    assert form.is_valid(), form.errors
    request = RequestFactory().post("/admin/billing/creditgrant/add/", REMOTE_ADDR="192.0.2.7")
    request.user = operator
    obj = form.save(commit=False)
    site._registry[CreditGrant].save_model(request, obj, form, change=False)

    grant = CreditGrant.objects.get(pk=obj.pk)
    assert grant.amount == D(50) and grant.entry.created_by == operator
    assert timedelta(days=29) < grant.expires_at - timezone.now() <= timedelta(days=30)
    assert balance(organization) == D(60)
    event = AuditEvent.objects.get(action="admin.creditgrant.add")
    assert (event.actor_user, event.ip_address, event.details["amount"]) == (operator, "192.0.2.7", "50.0000000000")


def test_the_admin_form_wants_an_expiry_in_the_future(organization):
    from billing.admin import CreditGrantForm

    account = CreditAccount.objects.get(organization=organization)
    assert not CreditGrantForm(data={"account": account.pk, "amount": "5", "description": "x"}).is_valid()
    assert not CreditGrantForm(
        data={"account": account.pk, "amount": "5", "description": "x", "expires_at": "2000-01-01 00:00"}
    ).is_valid()
