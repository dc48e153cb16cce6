"""Buying credit with Stripe: only Stripe's signed events move credit, and each moves it once.

Stripe is played by localstripe (payment intents, refunds, signed webhooks)
and, for Checkout, which localstripe lacks, by a recorded checkout.session.
The hub verifies every event with the real stripe library.
"""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.test import Client

from accounts.models import Membership, Role, User
from billing import payments, stripe_gateway
from billing.models import (
    AutoRecharge,
    CreditAccount,
    LedgerEntry,
    Payment,
    StripeEvent,
)
from billing.stripe_gateway import PaymentRefused, PaymentsUnavailable
from billing.tasks import auto_recharge_all
from tests.concurrency import at_once
from tests.fakes.server import running
from tests.fakes.stripe_server import RecordedStripe, event, fixture, sign
from tests.stripe_fixtures import DECLINED_CARD, GOOD_CARD, SECRET, WEBHOOK, card_of, deliver, wait_for


@pytest.fixture
def recorded_stripe(stripe_settings):
    with running(RecordedStripe()) as server:
        stripe_settings.STRIPE_API_BASE = server.url
        yield server


def member(organization, name, role):
    user = User.objects.create_user(username=name, password="pw")
    Membership.objects.create(user=user, organization=organization, role=role)
    return user


@pytest.fixture
def owner(organization):
    return member(organization, "olivia", Role.OWNER)


def balance(organization) -> Decimal:
    return CreditAccount.objects.get(organization=organization).balance


def assert_ledger_is_truth(organization):
    total = LedgerEntry.objects.filter(account__organization=organization).aggregate(s=Sum("amount"))["s"]
    assert balance(organization) == total


def checkout(organization, user, amount="25.00"):
    return payments.checkout_create(
        organization=organization,
        amount=Decimal(amount),
        requested_by=user,
        success_url="https://hub.example.com/ok",
        cancel_url="https://hub.example.com/no",
    )


def completed_session(payment: Payment, intent_id="pi_3QbZjv2eZvKYlo2C1bS1kP9a", **changes) -> dict:
    session = fixture("checkout_session")
    session.update(
        id=payment.stripe_checkout_session_id,
        status="complete",
        payment_status="paid",
        payment_intent=intent_id,
        amount_total=int(payment.amount * 100),
        client_reference_id=str(payment.pk),
        metadata={"hub_payment": str(payment.pk), "hub_organization": str(payment.organization_id)},
    )
    session.update(changes)
    return session


def succeeded_intent(payment: Payment, intent_id: str) -> dict:
    cents = int(payment.amount * 100)
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": cents,
        "amount_received": cents,
        "currency": "usd",
        "status": "succeeded",
        "metadata": {"hub_payment": str(payment.pk)},
    }


# Money and its minor units ---------------------------------------------------


def test_credits_convert_to_cents_and_back_exactly():
    assert stripe_gateway.to_minor_units(Decimal("25")) == 2500
    assert stripe_gateway.to_minor_units(Decimal("0.10")) == 10
    assert stripe_gateway.from_minor_units(1999) == Decimal("19.99")


@pytest.mark.parametrize("amount", ["10.005", "0.001", "NaN"])
def test_amounts_that_are_not_whole_cents_are_refused(amount):
    with pytest.raises(PaymentRefused):
        stripe_gateway.to_minor_units(Decimal(amount))


# Checkout --------------------------------------------------------------------


def test_it_creates_a_checkout_session_for_the_payment(organization, owner, recorded_stripe):
    web = Client()
    web.force_login(owner)
    response = web.post(
        f"/manage/v1/orgs/{organization.slug}/billing/checkout", {"amount": "25.00"}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    payment = Payment.objects.get()
    assert response.json() == {
        "url": f"https://checkout.stripe.com/c/pay/{payment.stripe_checkout_session_id}",
        "payment_id": payment.pk,
    }
    assert (payment.status, payment.amount, payment.requested_by) == ("pending", Decimal("25"), owner)
    sent = recorded_stripe.requests[0]
    assert sent["headers"]["Idempotency-Key"] == f"hub-payment-{payment.key}-checkout"
    assert sent["form"]["mode"] == "payment"
    assert sent["form"]["line_items[0][price_data][product_data][name]"] == "Hub credits"
    assert sent["form"]["line_items[0][price_data][unit_amount]"] == "2500"
    assert sent["form"]["client_reference_id"] == str(payment.pk)
    assert sent["form"]["metadata[hub_payment]"] == str(payment.pk)
    assert sent["form"]["payment_intent_data[metadata][hub_payment]"] == str(payment.pk)
    assert balance(organization) == Decimal("10"), "no credit before Stripe says it is paid"


# The permission matrix (accounts/permissions.py): buy_credits is the owner's and billing's.
@pytest.mark.parametrize(
    "role,status",
    [(Role.OWNER, 201), (Role.BILLING, 201), (Role.ADMIN, 403), (Role.DEVELOPER, 403), (Role.VIEWER, 403)],
)
def test_only_owners_and_billing_members_may_buy_credit(organization, recorded_stripe, role, status):
    web = Client()
    web.force_login(member(organization, "mel", role))
    response = web.post(
        f"/manage/v1/orgs/{organization.slug}/billing/checkout", {"amount": "5"}, content_type="application/json"
    )
    assert response.status_code == status


def test_outsiders_and_anonymous_callers_may_not_buy_credit(organization, recorded_stripe):
    url = f"/manage/v1/orgs/{organization.slug}/billing/checkout"
    assert Client().post(url, {"amount": "5"}, content_type="application/json").status_code == 401
    web = Client()
    web.force_login(User.objects.create_user(username="oscar", password="pw"))
    # Another organisation's page does not exist, for an outsider: 404, not 403.
    assert web.post(url, {"amount": "5"}, content_type="application/json").status_code == 404
    assert not Payment.objects.exists()


def test_a_top_up_in_fractions_of_a_cent_is_refused(organization, owner, recorded_stripe):
    web = Client()
    web.force_login(owner)
    response = web.post(
        f"/manage/v1/orgs/{organization.slug}/billing/checkout", {"amount": "10.005"}, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "amount"
    assert not Payment.objects.exists() and not recorded_stripe.requests


# The webhook -----------------------------------------------------------------


def test_a_paid_checkout_credits_once_and_a_replay_credits_nothing(organization, owner, recorded_stripe):
    payment, _ = checkout(organization, owner)
    completed = event("checkout.session.completed", completed_session(payment))
    assert deliver(completed).status_code == 200
    assert balance(organization) == Decimal("35")
    payment.refresh_from_db()
    assert (payment.status, payment.stripe_payment_intent_id) == ("paid", "pi_3QbZjv2eZvKYlo2C1bS1kP9a")

    replay = deliver(completed)
    assert replay.status_code == 200
    assert balance(organization) == Decimal("35")
    row = StripeEvent.objects.get()
    assert (row.stripe_id, row.attempts, row.outcome) == (completed["id"], 1, f"credited 25.00: payment {payment.pk}")
    assert_ledger_is_truth(organization)


@pytest.mark.parametrize("order", ["session first", "intent first"])
def test_checkout_and_payment_intent_events_for_one_payment_credit_once(organization, owner, recorded_stripe, order):
    payment, _ = checkout(organization, owner)
    events = [
        event("checkout.session.completed", completed_session(payment, "pi_both")),
        event("payment_intent.succeeded", succeeded_intent(payment, "pi_both")),
    ]
    for evt in events if order == "session first" else events[::-1]:
        assert deliver(evt).status_code == 200
    assert balance(organization) == Decimal("35")
    assert LedgerEntry.objects.filter(idempotency_key="stripe:payment:pi_both").count() == 1
    assert StripeEvent.objects.filter(processed_at__isnull=False).count() == 2
    assert_ledger_is_truth(organization)


def test_a_forged_or_tampered_event_is_refused_and_changes_nothing(organization, owner, recorded_stripe):
    payment, _ = checkout(organization, owner)
    completed = event("checkout.session.completed", completed_session(payment))
    assert deliver(completed, secret="whsec_forged").status_code == 400
    signed = json.dumps(completed).encode()
    header = sign(signed, SECRET)
    tampered = signed.replace(b'"amount_total": 2500', b'"amount_total": 250000')
    assert (
        Client()
        .post(WEBHOOK, data=tampered, content_type="application/json", headers={"Stripe-Signature": header})
        .status_code
        == 400
    )
    assert Client().post(WEBHOOK, data=signed, content_type="application/json").status_code == 400
    assert not StripeEvent.objects.exists()
    assert balance(organization) == Decimal("10")
    assert Payment.objects.get().status == "pending"


def test_the_webhook_refuses_everything_without_a_secret(organization, stripe_settings):
    stripe_settings.STRIPE_WEBHOOK_SECRET = ""
    assert deliver(event("payment_intent.succeeded", {"id": "pi_x"}), secret="").status_code == 503
    assert not StripeEvent.objects.exists()


def test_a_paid_amount_that_differs_from_the_payment_credits_nothing(organization, owner, recorded_stripe):
    payment, _ = checkout(organization, owner)
    assert deliver(event("checkout.session.completed", completed_session(payment, amount_total=100))).status_code == 200
    assert balance(organization) == Decimal("10")
    assert StripeEvent.objects.get().outcome.startswith("refused: paid 1.00 usd")


def test_an_unpaid_session_credits_nothing_until_its_payment_succeeds(organization, owner, recorded_stripe):
    payment, _ = checkout(organization, owner)
    deliver(event("checkout.session.completed", completed_session(payment, payment_status="unpaid")))
    assert balance(organization) == Decimal("10")
    deliver(event("checkout.session.async_payment_succeeded", completed_session(payment)))
    assert balance(organization) == Decimal("35")
    assert_ledger_is_truth(organization)


def test_events_of_other_types_are_recorded_and_ignored(organization, stripe_settings):
    assert deliver(event("customer.created", {"id": "cus_1", "object": "customer"})).status_code == 200
    assert StripeEvent.objects.get().outcome == "ignored: type not handled"


# Refunds and disputes, on payments localstripe really took -------------------


def paid_by_card(organization, stripe_client, amount="25.00", card=GOOD_CARD):
    """A payment charged on localstripe and credited by its signed payment_intent.succeeded."""
    payment = Payment.objects.create(organization=organization, amount=Decimal(amount), source="auto_recharge")
    customer, method = card_of(stripe_client, card)
    intent = stripe_client.v1.payment_intents.create(
        params={
            "amount": int(Decimal(amount) * 100),
            "currency": "usd",
            "customer": customer.id,
            "payment_method": method.id,
            "confirm": True,
            "off_session": True,
            "metadata": {"hub_payment": str(payment.pk)},
        }
    )
    assert deliver(event("payment_intent.succeeded", intent.to_dict())).status_code == 200
    return payment, intent


def refund(stripe_client, intent, cents=None) -> dict:
    params = {"payment_intent": intent.id} | ({"amount": cents} if cents else {})
    made = stripe_client.v1.refunds.create(params=params)
    return event("charge.refunded", stripe_client.v1.charges.retrieve(made.charge).to_dict())


def test_refunds_take_back_exactly_what_was_refunded(organization, stripe_settings, stripe_client):
    payment, intent = paid_by_card(organization, stripe_client)
    assert balance(organization) == Decimal("35")

    partial = refund(stripe_client, intent, 1000)
    assert deliver(partial).status_code == 200
    assert balance(organization) == Decimal("25")
    payment.refresh_from_db()
    assert (payment.status, payment.amount_refunded) == ("paid", Decimal("10"))
    assert_ledger_is_truth(organization)

    rest = refund(stripe_client, intent, 1500)  # localstripe refunds the whole charge when no amount is given
    assert deliver(rest).status_code == 200
    assert deliver(partial).status_code == 200  # a replay
    assert balance(organization) == Decimal("10")
    payment.refresh_from_db()
    assert (payment.status, payment.amount_refunded) == ("refunded", Decimal("25"))
    assert LedgerEntry.objects.filter(idempotency_key__startswith="stripe:refund:").count() == 2
    assert_ledger_is_truth(organization)


def dispute_of(intent, status="needs_response", **changes) -> dict:
    charge = intent.latest_charge if isinstance(intent.latest_charge, str) else intent.latest_charge.id
    dispute = fixture("dispute") | {
        "charge": charge,
        "payment_intent": intent.id,
        "amount": intent.amount,
        "status": status,
    }
    return dispute | changes


def test_a_dispute_takes_the_credit_back_and_a_won_dispute_returns_it(organization, stripe_settings, stripe_client):
    _, intent = paid_by_card(organization, stripe_client)
    opened = event("charge.dispute.created", dispute_of(intent))
    assert deliver(opened).status_code == 200
    assert balance(organization) == Decimal("10")
    assert Payment.objects.get().status == "disputed"
    assert_ledger_is_truth(organization)

    won = event("charge.dispute.closed", dispute_of(intent, "won"))
    assert deliver(won).status_code == 200
    assert deliver(won).status_code == 200
    assert deliver(opened).status_code == 200
    assert balance(organization) == Decimal("35")
    assert Payment.objects.get().status == "paid"
    assert_ledger_is_truth(organization)


def test_a_lost_dispute_keeps_the_credit_taken(organization, stripe_settings, stripe_client):
    _, intent = paid_by_card(organization, stripe_client)
    deliver(event("charge.dispute.created", dispute_of(intent)))
    deliver(event("charge.dispute.closed", dispute_of(intent, "lost")))
    assert balance(organization) == Decimal("10")
    assert_ledger_is_truth(organization)


# Out of order: every movement has its own key, so arrival order changes nothing.


def test_a_dispute_closed_before_it_was_opened_counts_once(organization, stripe_settings, stripe_client):
    _, intent = paid_by_card(organization, stripe_client)
    deliver(event("charge.dispute.closed", dispute_of(intent, "won")))
    assert balance(organization) == Decimal("35")
    deliver(event("charge.dispute.created", dispute_of(intent)))
    assert balance(organization) == Decimal("35")
    assert LedgerEntry.objects.filter(idempotency_key__startswith="stripe:dispute:").count() == 2
    assert_ledger_is_truth(organization)


def test_a_refund_before_the_credit_is_taken_back_once_the_credit_arrives(
    organization, owner, recorded_stripe, stripe_settings, stripe_client, localstripe
):
    payment, _ = checkout(organization, owner)
    stripe_settings.STRIPE_API_BASE = localstripe.url
    # A real intent and charge on localstripe play the payment Checkout took.
    customer, method = card_of(stripe_client)
    intent = stripe_client.v1.payment_intents.create(
        params={
            "amount": 2500,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": method.id,
            "confirm": True,
            "off_session": True,
        }
    )
    Payment.objects.filter(pk=payment.pk).update(stripe_payment_intent_id=intent.id)

    deliver(refund(stripe_client, intent, 500))
    assert balance(organization) == Decimal("5"), "taken back at once; the balance may dip"
    deliver(event("checkout.session.completed", completed_session(payment, intent.id)))
    assert balance(organization) == Decimal("30")
    assert_ledger_is_truth(organization)


# Auto-recharge ---------------------------------------------------------------


def saved_card(organization, stripe_client, card=GOOD_CARD, threshold="20", amount="25"):
    customer, method = card_of(stripe_client, card)
    return AutoRecharge.objects.create(
        organization=organization,
        enabled=True,
        threshold=Decimal(threshold),
        amount=Decimal(amount),
        stripe_customer_id=customer.id,
        stripe_payment_method_id=method.id,
    )


def test_auto_recharge_run_twice_charges_once_and_the_webhook_credits_it(
    organization, stripe_client, localstripe_webhook
):
    recharge = saved_card(organization, stripe_client)
    auto_recharge_all.delay()
    auto_recharge_all.delay()
    payment = Payment.objects.get()
    assert (payment.source, payment.amount, payment.status) == ("auto_recharge", Decimal("25"), "pending")
    assert payment.stripe_payment_intent_id.startswith("pi_")
    assert balance(organization) == Decimal("10"), "credit comes with the webhook, not the charge's answer"

    # localstripe signs and sends payment_intent.succeeded to the live hub.
    assert wait_for(lambda: Payment.objects.get().status == "paid")
    assert balance(organization) == Decimal("35")
    assert StripeEvent.objects.get(type="payment_intent.succeeded").processed_at is not None
    recharge.refresh_from_db()
    assert recharge.pending_payment is None and recharge.enabled
    auto_recharge_all.delay()
    assert Payment.objects.count() == 1, "above the threshold now"
    assert_ledger_is_truth(organization)


@pytest.mark.parametrize(
    "own, hub_wide", [("postpaid", "credits"), ("internal", "credits"), ("", "postpaid"), ("", "internal")]
)
def test_only_credits_organisations_auto_recharge(organization, settings, own, hub_wide):
    recharge = AutoRecharge.objects.create(
        organization=organization,
        enabled=True,
        threshold=Decimal(20),
        amount=Decimal(25),
        stripe_customer_id="cus_1",
        stripe_payment_method_id="pm_1",
    )
    assert payments.auto_recharge_due() == [recharge.pk], "credits, under its threshold"

    CreditAccount.objects.filter(organization=organization).update(billing_mode=own)
    settings.HUB_BILLING_MODE = hub_wide

    assert payments.auto_recharge_due() == []
    assert payments.auto_recharge_start(auto_recharge_id=recharge.pk) is None, "credit it would never spend"
    assert not Payment.objects.exists()


def test_a_declined_auto_recharge_disables_it_and_says_why(organization, stripe_client, localstripe_webhook):
    recharge = saved_card(organization, stripe_client, card=DECLINED_CARD)
    auto_recharge_all.delay()
    payment = Payment.objects.get()
    assert payment.status == "failed" and "declined" in payment.failure_reason
    recharge.refresh_from_db()
    assert not recharge.enabled and recharge.pending_payment is None
    assert "declined" in recharge.disabled_reason
    # localstripe's payment_intent.payment_failed changes nothing more.
    assert wait_for(
        lambda: StripeEvent.objects.filter(type="payment_intent.payment_failed", processed_at__isnull=False).exists()
    )
    auto_recharge_all.delay()
    assert Payment.objects.count() == 1
    assert balance(organization) == Decimal("10")


def test_concurrent_auto_recharge_runs_claim_it_once(organization, stripe_settings, stripe_client):
    recharge = saved_card(organization, stripe_client)
    results = at_once(*[lambda: payments.auto_recharge_start(auto_recharge_id=recharge.pk)] * 4)
    assert len(results) == 4
    assert len([r for r in results if r is not None]) == 1
    assert Payment.objects.count() == 1
    recharge.refresh_from_db()
    assert recharge.pending_payment == Payment.objects.get()


def test_a_recharge_whose_charge_never_answered_is_asked_again_with_the_same_payment(
    organization, stripe_settings, stripe_client
):
    recharge = saved_card(organization, stripe_client)
    # A run that crashed after claiming the recharge, before Stripe answered.
    payment = Payment.objects.create(organization=organization, amount=Decimal("25"), source="auto_recharge")
    Payment.objects.filter(pk=payment.pk).update(created_at=payment.created_at - timedelta(hours=1))
    AutoRecharge.objects.filter(pk=recharge.pk).update(pending_payment=payment)
    auto_recharge_all.delay()
    assert Payment.objects.count() == 1
    assert Payment.objects.get().stripe_payment_intent_id.startswith("pi_")


def test_an_event_whose_handler_fails_is_kept_for_stripe_to_deliver_again(organization, stripe_settings, stripe_client):
    _, intent = paid_by_card(organization, stripe_client)
    broken = event("charge.refunded", {"id": "ch_unknown_to_stripe", "object": "charge", "payment_intent": intent.id})
    assert deliver(broken).status_code == 500
    assert deliver(broken).status_code == 500
    row = StripeEvent.objects.get(stripe_id=broken["id"])
    assert row.processed_at is None and row.attempts == 2 and row.outcome.startswith("error: ")
    assert balance(organization) == Decimal("35")
    assert_ledger_is_truth(organization)


def test_the_off_session_charge_carries_a_key_derived_from_its_payment(organization, recorded_stripe):
    recharge = AutoRecharge.objects.create(
        organization=organization,
        enabled=True,
        threshold=Decimal(20),
        amount=Decimal(25),
        stripe_customer_id="cus_gone",
        stripe_payment_method_id="pm_gone",
    )
    payment = payments.auto_recharge_start(auto_recharge_id=recharge.pk)
    sent = recorded_stripe.requests[0]
    assert sent["path"] == "/v1/payment_intents"
    assert sent["headers"]["Idempotency-Key"] == f"hub-payment-{payment.key}-intent"
    assert {k: sent["form"][k] for k in ("amount", "currency", "confirm", "off_session", "metadata[hub_payment]")} == {
        "amount": "2500",
        "currency": "usd",
        "confirm": "true",
        "off_session": "true",
        "metadata[hub_payment]": str(payment.pk),
    }
    # Stripe refused outright (here: no such route): the recharge stops rather than retrying forever.
    recharge.refresh_from_db()
    assert payment.status == "failed" and not recharge.enabled and recharge.disabled_reason


def test_a_checkout_stripe_cannot_create_leaves_a_failed_payment(organization, owner, stripe_settings):
    # localstripe has no Checkout: it answers 404, as Stripe would for a bad request.
    with pytest.raises(PaymentsUnavailable):
        checkout(organization, owner)
    payment = Payment.objects.get()
    assert payment.status == "failed" and payment.failure_reason.startswith("checkout not created")


# Saving a card for auto-recharge, self-service (SetupIntent) --------------------


def card_setup(web, organization):
    response = web.post(f"/manage/v1/orgs/{organization.slug}/billing/auto-recharge/card")
    assert response.status_code == 201, response.content
    return response.json()


def confirmed(stripe_client, setup_intent_id, card=GOOD_CARD) -> dict:
    """What the browser does with Stripe.js, then the object Stripe's setup_intent.succeeded carries."""
    method = stripe_client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    )
    stripe_client.v1.setup_intents.confirm(setup_intent_id, params={"payment_method": method.id})
    return json.loads(str(stripe_client.v1.setup_intents.retrieve(setup_intent_id)))


def test_an_owner_saves_a_card_then_turns_auto_recharge_on_and_it_charges(
    organization, owner, stripe_settings, stripe_client
):
    web = Client()
    web.force_login(owner)
    url = f"/manage/v1/orgs/{organization.slug}/billing/auto-recharge"
    on = {"enabled": True, "threshold": "20.00", "amount": "25.00"}
    refused = web.put(url, on, content_type="application/json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "no_payment_method"

    setup = card_setup(web, organization)
    assert setup["client_secret"] and setup["setup_intent_id"].startswith("seti_")
    intent = confirmed(stripe_client, setup["setup_intent_id"])
    assert intent["status"] == "succeeded"
    recharge = AutoRecharge.objects.get(organization=organization)
    assert recharge.stripe_customer_id == intent["customer"] and not recharge.stripe_payment_method_id
    assert deliver(event("setup_intent.succeeded", intent)).status_code == 200
    recharge.refresh_from_db()
    assert recharge.stripe_payment_method_id == intent["payment_method"]

    response = web.put(url, on, content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {
        "enabled": True,
        "threshold": "20.00",
        "amount": "25.00",
        "card_saved": True,
        "disabled_reason": "",
    }
    auto_recharge_all.delay()  # the balance (10) is under the threshold (20)
    payment = Payment.objects.get()
    assert (payment.source, payment.amount) == ("auto_recharge", Decimal("25"))
    charged = stripe_client.v1.payment_intents.retrieve(payment.stripe_payment_intent_id)
    assert (charged.customer, charged.payment_method) == (intent["customer"], intent["payment_method"])


def test_only_the_latest_setup_saves_a_card_and_a_replay_or_forgery_changes_nothing(
    organization, owner, stripe_settings, stripe_client
):
    web = Client()
    web.force_login(owner)
    first = confirmed(stripe_client, card_setup(web, organization)["setup_intent_id"])
    second = confirmed(stripe_client, card_setup(web, organization)["setup_intent_id"])
    assert second["customer"] == first["customer"], "one Stripe customer per organisation"
    newest = event("setup_intent.succeeded", second)
    assert deliver(newest).status_code == 200
    assert deliver(event("setup_intent.succeeded", first)).status_code == 200  # late and superseded: ignored
    assert deliver(newest).status_code == 200  # a replay
    assert AutoRecharge.objects.get().stripe_payment_method_id == second["payment_method"]
    forged = event("setup_intent.succeeded", dict(second, payment_method="pm_attacker"))
    assert deliver(forged, secret="whsec_wrong").status_code == 400
    assert AutoRecharge.objects.get().stripe_payment_method_id == second["payment_method"]
    assert StripeEvent.objects.filter(type="setup_intent.succeeded").count() == 2


@pytest.mark.parametrize("role,status", [(Role.BILLING, 201), (Role.ADMIN, 403), (Role.DEVELOPER, 403)])
def test_only_owners_and_billing_members_may_save_a_card_or_change_auto_recharge(
    organization, stripe_settings, role, status
):
    web = Client()
    web.force_login(member(organization, "mel", role))
    url = f"/manage/v1/orgs/{organization.slug}/billing/auto-recharge"
    assert web.post(f"{url}/card").status_code == status
    off = {"enabled": False, "threshold": "5.00", "amount": "10.00"}
    assert web.put(url, off, content_type="application/json").status_code == (200 if status == 201 else 403)
    assert web.get(url).status_code == 200  # everyone in the organisation may see the settings
