"""Starter credits: a new organisation gets HUB_STARTER_CREDITS once, and never again."""

from decimal import Decimal

import pytest

from accounts.services import organization_create
from billing import services
from billing.models import CreditAccount, LedgerEntry


def balance(organization) -> Decimal:
    return CreditAccount.objects.get(organization=organization).balance


def test_a_new_organisation_gets_its_starter_credits_once(transactional_db, settings):
    settings.HUB_STARTER_CREDITS = "5.50"
    organization = organization_create(name="Newco")
    assert balance(organization) == Decimal("5.50")
    entry = LedgerEntry.objects.get()
    assert (entry.kind, entry.amount, entry.idempotency_key) == ("grant", Decimal("5.5"), f"starter:{organization.pk}")

    services.account_open(organization=organization)
    services.credit_grant(organization=organization, amount=Decimal("1"))
    assert balance(organization) == Decimal("6.50")
    assert LedgerEntry.objects.filter(idempotency_key__startswith="starter:").count() == 1


def test_no_starter_credits_by_default(transactional_db):
    organization = organization_create(name="Plainco")
    assert balance(organization) == Decimal("0")
    assert not LedgerEntry.objects.exists()


def test_an_existing_organisation_gets_none_when_the_setting_appears(transactional_db, settings):
    organization = organization_create(name="Oldco")
    settings.HUB_STARTER_CREDITS = "5"
    services.account_open(organization=organization)
    services.credit_grant(organization=organization, amount=Decimal("1"))
    assert balance(organization) == Decimal("1")


def test_negative_starter_credits_are_refused(transactional_db, settings):
    settings.HUB_STARTER_CREDITS = "-1"
    with pytest.raises(ValueError):
        organization_create(name="Badco")
