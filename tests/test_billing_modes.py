"""Billing mode per organisation: credits organisations are refused without credit and charged in the
ledger; postpaid and internal ones are never refused, and their usage is priced but not charged."""

from decimal import Decimal

import openai
import pytest
from django.db.models import Sum
from django.test import Client

from accounts.models import AuditEvent, User
from billing import modes, services
from billing.models import CreditAccount, CreditHold, LedgerEntry, UsageRecord
from billing.tasks import notify_low_balances

HELLO = [{"role": "user", "content": "hello"}]


def account(organization) -> CreditAccount:
    return CreditAccount.objects.get(organization=organization)


def empty(organization):
    services.credit_grant(organization=organization, amount=Decimal("-10"), kind="adjustment", description="empty it")
    assert account(organization).balance == 0


def set_mode(organization, mode):
    return modes.billing_mode_set(account=account(organization), mode=mode)


def assert_ledger_is_truth(organization):
    total = LedgerEntry.objects.filter(account__organization=organization).aggregate(s=Sum("amount"))["s"]
    assert account(organization).balance == total


# Through the gateway, with the openai SDK ------------------------------------


def test_a_postpaid_organisation_without_credit_is_served_and_priced_but_not_charged(
    client, hub, upstream, organization
):
    empty(organization)
    set_mode(organization, "postpaid")

    reply = client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    hub.drain()

    assert reply.choices[0].message.content == "Hello! You said: hello"
    record = UsageRecord.objects.get()
    assert record.status == "ok" and record.price > 0 and record.cost > 0
    assert not LedgerEntry.objects.filter(kind="usage").exists()
    assert not CreditHold.objects.exists()
    assert account(organization).balance == 0
    assert_ledger_is_truth(organization)


def test_a_credits_organisation_without_credit_is_refused_with_402(client, hub, upstream, organization, settings):
    settings.HUB_BILLING_MODE = "internal"  # the organisation's own mode wins over the global one
    empty(organization)
    set_mode(organization, "credits")

    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    hub.drain()

    assert raised.value.status_code == 402
    assert upstream.requests == [], "refused before any upstream call"
    assert not LedgerEntry.objects.filter(kind="usage").exists()


def test_an_internal_organisation_is_served_without_credit_while_the_global_mode_is_credits(
    client, hub, upstream, organization, settings
):
    assert settings.HUB_BILLING_MODE == "credits"
    empty(organization)
    set_mode(organization, "internal")

    client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    hub.drain()

    assert UsageRecord.objects.get().price > 0
    assert not LedgerEntry.objects.filter(kind="usage").exists()
    assert account(organization).balance == 0


def test_a_credits_organisation_is_charged_in_the_ledger(client, hub, upstream, organization):
    set_mode(organization, "credits")
    client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    hub.drain()
    record = UsageRecord.objects.get()
    assert LedgerEntry.objects.get(kind="usage").amount == -record.price
    assert account(organization).balance == Decimal(10) - record.price


def test_a_new_mode_applies_at_once_in_this_process(client, hub, upstream, organization):
    empty(organization)
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    assert raised.value.status_code == 402

    set_mode(organization, "postpaid")  # the key's cached mode is forgotten on commit

    assert client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO).choices
    hub.drain()
    assert UsageRecord.objects.filter(status="ok").count() == 1


# The mode itself -------------------------------------------------------------


def test_every_mode_change_is_audited(organization):
    assert modes.effective_mode(account(organization)) == "credits"
    for mode in ("postpaid", "internal", "postpaid", ""):
        assert set_mode(organization, mode).billing_mode == mode
    assert list(
        AuditEvent.objects.filter(action="billing.mode_change").values_list("details__to", flat=True).order_by("pk")
    ) == ["postpaid", "internal", "postpaid", ""]
    assert modes.effective_mode(account(organization)) == "credits"


def test_each_request_is_recorded_with_the_mode_it_ran_in(client, hub, upstream, organization, settings):
    client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)  # HUB_BILLING_MODE: credits
    set_mode(organization, "postpaid")
    client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    set_mode(organization, "")
    settings.HUB_BILLING_MODE = "internal"
    client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    hub.drain()

    assert list(UsageRecord.objects.order_by("created_at").values_list("billing_mode", flat=True)) == [
        "credits",
        "postpaid",
        "internal",
    ]
    assert LedgerEntry.objects.filter(kind="usage").count() == 1


def test_an_unknown_mode_is_refused(organization):
    with pytest.raises(ValueError):
        set_mode(organization, "barter")


def test_an_operator_sets_the_mode_in_the_admin_without_touching_the_balance(organization):
    operator = User.objects.create_superuser("operator", "op@example.com", "pw")
    browser = Client()
    browser.force_login(operator)
    acc = account(organization)
    page = browser.get(f"/admin/billing/creditaccount/{acc.pk}/change/")
    assert page.status_code == 200 and "Postpaid (never refused; invoiced monthly)" in page.content.decode()

    form = {
        "price_plan": "",
        "billing_mode": "postpaid",
        "invoice_auto_charge": "unknown",
        "low_balance_alert-TOTAL_FORMS": "0",
        "low_balance_alert-INITIAL_FORMS": "0",
        "expiring_grants-TOTAL_FORMS": "0",
        "expiring_grants-INITIAL_FORMS": "0",
        "entries-TOTAL_FORMS": "0",
        "entries-INITIAL_FORMS": "0",
    }
    response = browser.post(f"/admin/billing/creditaccount/{acc.pk}/change/", form)

    assert response.status_code == 302, response.content.decode()[:2000]
    acc.refresh_from_db()
    assert acc.billing_mode == "postpaid"
    assert acc.balance == Decimal(10)
    assert AuditEvent.objects.filter(action="billing.mode_change", actor_user=operator).exists()
    assert_ledger_is_truth(organization)


# Low-balance emails are for credits organisations only -----------------------


def test_a_postpaid_organisation_gets_no_low_balance_email(world, mailoutbox):
    assert notify_low_balances.delay().get() == 0  # armed
    set_mode(world.acme, "postpaid")
    services.credit_grant(organization=world.acme, amount=Decimal("-9.5"), kind="adjustment", description="spent")
    services.credit_grant(organization=world.globex, amount=Decimal("-98.5"), kind="adjustment", description="spent")

    assert notify_low_balances.delay().get() == 1
    assert [m.to for m in mailoutbox] == [["outsider@example.com"]], "globex (credits) only"
