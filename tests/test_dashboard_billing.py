"""The dashboard's Billing pages by HTTP (billing/views/, billing/dashboard_urls.py): every role on each page and
action, top-ups at preset and custom amounts within the management API's bounds, the result page that only ever
waits for the webhook, auto-recharge with a card saved through Checkout in setup mode, the ledger's balance after
each line, invoices and receipts scoped to the organisation, and the billing settings with the emails they steer.

Stripe is localstripe with Checkout in front (tests/dashboard_billing_stripe.py); events are signed as Stripe
signs them (tests/stripe_fixtures.py's deliver)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from accounts.models import AuditEvent
from billing import services
from billing.invoices import issuing
from billing.models import AutoRecharge, CreditAccount, Invoice, LedgerEntry, LowBalanceAlert, Payment, StripeEvent
from billing.tasks import notify_low_balances
from tests.actors import ROLES
from tests.dashboard_billing_stripe import checkout_stripe, paid_session, query_of, setup_completed
from tests.fakes.stripe_server import event
from tests.stripe_fixtures import GOOD_CARD, deliver

__all__ = ["checkout_stripe"]  # the fixture, imported

D = Decimal
BUYERS = ("owner", "billing")
OTHERS = ("admin", "developer", "viewer")


def browser(user, **options) -> Client:
    client = Client(**options)
    client.force_login(user)
    return client


def balance(organization) -> Decimal:
    return CreditAccount.objects.get(organization=organization).balance


def page(response) -> str:
    return response.content.decode()


# Who sees what --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_everyone_sees_the_balance_and_only_owners_and_billing_members_the_controls(world, role):
    response = browser(getattr(world, role)).get("/dashboard/billing/")
    assert response.status_code == 200
    html = page(response)
    assert "<h1>Billing</h1>" in html and "10.00 USD" in html
    assert 'href="/dashboard/billing/ledger"' in html
    controls = (
        'action="/dashboard/billing/checkout"',
        'action="/dashboard/billing/auto-recharge"',
        'action="/dashboard/billing/auto-recharge/card"',
        'href="/dashboard/billing/payments/"',
        'href="/dashboard/billing/invoices/"',
        'href="/dashboard/billing/settings"',
    )
    for control in controls:
        assert (control in html) == (role in BUYERS), control


@pytest.mark.parametrize("role", ROLES)
def test_everyone_sees_the_ledger(world, role):
    response = browser(getattr(world, role)).get("/dashboard/billing/ledger")
    assert response.status_code == 200
    assert "test credit" in page(response) and "10.00" in page(response)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    "path", ["/dashboard/billing/payments/", "/dashboard/billing/invoices/", "/dashboard/billing/settings"]
)
def test_payments_invoices_and_settings_are_the_owners_and_billing_members(world, role, path):
    assert browser(getattr(world, role)).get(path).status_code == (200 if role in BUYERS else 403)


def test_the_pages_need_a_signed_in_member():
    response = Client().get("/dashboard/billing/")
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


def test_the_nav_shows_billing(world):
    html = page(browser(world.viewer).get("/dashboard/billing/"))
    assert '<a href="/dashboard/billing/" aria-current="page">Billing</a>' in html


# Buying credit --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", BUYERS)
def test_a_preset_amount_goes_to_stripes_checkout_with_303_and_credits_nothing(world, role, checkout_stripe):
    response = browser(getattr(world, role)).post("/dashboard/billing/checkout", {"amount": "25.00"})
    assert response.status_code == 303
    payment = Payment.objects.get()
    assert response.url == f"https://checkout.stripe.com/c/pay/{payment.stripe_checkout_session_id}"
    assert (payment.amount, payment.status, payment.requested_by) == (D("25.00"), "pending", getattr(world, role))
    (sent,) = checkout_stripe.sessions("payment")
    assert sent["line_items[0][price_data][unit_amount]"] == "2500"
    assert sent["success_url"] == "http://testserver/dashboard/billing/checkout/done?session_id={CHECKOUT_SESSION_ID}"
    assert sent["cancel_url"] == "http://testserver/dashboard/billing/?checkout=cancelled"
    assert balance(world.acme) == D("10"), "no credit before Stripe's webhook"


def test_every_preset_is_a_button_of_its_own(world):
    html = page(browser(world.owner).get("/dashboard/billing/"))
    for amount in ("10.00", "25.00", "50.00", "100.00"):
        assert f'name="amount" value="{amount}"' in html


def test_a_custom_amount_in_cents_is_charged_exactly(world, checkout_stripe):
    response = browser(world.billing).post("/dashboard/billing/checkout", {"amount": "12.34"})
    assert response.status_code == 303
    assert Payment.objects.get().amount == D("12.34")
    assert checkout_stripe.sessions("payment")[0]["line_items[0][price_data][unit_amount]"] == "1234"


@pytest.mark.parametrize(
    "amount,error",
    [
        ("0.99", "greater than or equal to 1.00"),
        ("10000.01", "less than or equal to 10000.00"),
        ("10.005", "no more than 2 decimal places"),
        ("ten", "Enter a number."),
        ("", "This field is required."),
    ],
)
def test_an_amount_out_of_the_apis_bounds_is_refused_on_the_page(world, checkout_stripe, amount, error):
    response = browser(world.owner).post("/dashboard/billing/checkout", {"amount": amount})
    assert response.status_code == 400
    assert error in page(response) and 'class="errorlist"' in page(response)
    assert not Payment.objects.exists() and not checkout_stripe.requests


def test_the_bounds_at_the_edges_are_taken(world, checkout_stripe):
    owner = browser(world.owner)
    assert owner.post("/dashboard/billing/checkout", {"amount": "1.00"}).status_code == 303
    assert owner.post("/dashboard/billing/checkout", {"amount": "10000.00"}).status_code == 303
    assert sorted(Payment.objects.values_list("amount", flat=True)) == [D("1.00"), D("10000.00")]


@pytest.mark.parametrize("role", OTHERS)
def test_other_roles_may_not_buy_credit(world, checkout_stripe, role):
    assert browser(getattr(world, role)).post("/dashboard/billing/checkout", {"amount": "25.00"}).status_code == 403
    assert not Payment.objects.exists() and not checkout_stripe.requests


def test_a_forged_post_without_the_csrf_token_is_refused(world, checkout_stripe):
    forged = browser(world.owner, enforce_csrf_checks=True)
    assert forged.post("/dashboard/billing/checkout", {"amount": "25.00"}).status_code == 403
    assert forged.post("/dashboard/billing/auto-recharge/card").status_code == 403
    assert forged.post("/dashboard/billing/settings", {"billing_email": "evil@example.com"}).status_code == 403
    assert not Payment.objects.exists() and not AutoRecharge.objects.exists()
    assert CreditAccount.objects.get(organization=world.acme).billing_email == ""


def test_a_get_does_not_buy(world, checkout_stripe):
    assert browser(world.owner).get("/dashboard/billing/checkout", {"amount": "25.00"}).status_code == 405
    assert not Payment.objects.exists()


def test_without_stripe_the_page_says_payments_are_unavailable(world, settings):
    settings.STRIPE_SECRET_KEY = ""
    response = browser(world.owner).post("/dashboard/billing/checkout", {"amount": "25.00"})
    assert response.status_code == 503 and "Payments are not available right now." in page(response)


def test_a_cancelled_checkout_says_nothing_was_charged(world):
    html = page(browser(world.owner).get("/dashboard/billing/?checkout=cancelled"))
    assert "Checkout was cancelled: nothing was charged." in html


# The result page: pending until the verified webhook has credited -------------------------------------------------


def bought(world, checkout_stripe, amount="25.00") -> Payment:
    assert browser(world.owner).post("/dashboard/billing/checkout", {"amount": amount}).status_code == 303
    return Payment.objects.get()


def test_the_result_page_says_pending_until_the_webhook_credits_and_never_credits_itself(world, checkout_stripe):
    payment = bought(world, checkout_stripe)
    owner = browser(world.owner)
    done = f"/dashboard/billing/checkout/done?session_id={payment.stripe_checkout_session_id}"
    for _ in range(3):  # coming back from Stripe, reloading: still nothing credited
        html = page(owner.get(done))
        assert "Pending" in html and "Credited" not in html
        assert f'hx-get="/dashboard/billing/payments/{payment.pk}/status?poll=1" hx-trigger="every 2s"' in html
        assert f'href="{done}"' in html  # the plain reload link
    status = owner.get(f"/dashboard/billing/payments/{payment.pk}/status", headers={"HX-Request": "true"})
    assert "Pending" in page(status) and "<html" not in page(status)
    assert (
        balance(world.acme) == D("10")
        and not LedgerEntry.objects.filter(idempotency_key__startswith="stripe:").exists()
    )

    completed = event("checkout.session.completed", paid_session(payment, "pi_dashboard_1"))
    assert deliver(completed).status_code == 200
    assert deliver(completed).status_code == 200  # a replay
    assert balance(world.acme) == D("35")
    status = page(owner.get(f"/dashboard/billing/payments/{payment.pk}/status"))
    assert "Credited" in status and "25.00 USD was added to the balance." in status
    assert "The balance is now 35.00 USD." in status
    assert "hx-trigger" not in status, "a final status stops the polling"
    assert "Credited" in page(owner.get(done))
    assert LedgerEntry.objects.filter(idempotency_key="stripe:payment:pi_dashboard_1").count() == 1


def test_the_page_stops_asking_after_five_minutes_and_says_to_reload_later(world, checkout_stripe):
    payment = bought(world, checkout_stripe)
    owner = browser(world.owner)
    asking = page(owner.get(f"/dashboard/billing/payments/{payment.pk}/status?poll=149"))
    assert 'status?poll=150" hx-trigger="every 2s"' in asking
    stopped = page(owner.get(f"/dashboard/billing/payments/{payment.pk}/status?poll=150"))
    assert "Pending" in stopped and "hx-trigger" not in stopped and "Reload this page later" in stopped
    assert "hx-trigger" in page(owner.get(f"/dashboard/billing/payments/{payment.pk}/status?poll=nonsense"))


def test_a_failed_payment_says_so(world, checkout_stripe):
    payment = bought(world, checkout_stripe)
    Payment.objects.filter(pk=payment.pk).update(status="failed", failure_reason="card declined")
    html = page(browser(world.owner).get(f"/dashboard/billing/payments/{payment.pk}/status"))
    assert "Failed" in html and "hx-trigger" not in html


@pytest.mark.parametrize("role", ROLES)
def test_the_result_page_and_its_status_are_the_owners_and_billing_members(world, checkout_stripe, role):
    payment = bought(world, checkout_stripe)
    client = browser(getattr(world, role))
    done = client.get(f"/dashboard/billing/checkout/done?session_id={payment.stripe_checkout_session_id}")
    status = client.get(f"/dashboard/billing/payments/{payment.pk}/status")
    assert (done.status_code, status.status_code) == ((200, 200) if role in BUYERS else (403, 403))


def test_another_organisations_payment_is_not_found(world, checkout_stripe):
    theirs = Payment.objects.create(organization=world.globex, amount=D("5"), stripe_checkout_session_id="cs_globex")
    owner = browser(world.owner)
    assert owner.get("/dashboard/billing/checkout/done?session_id=cs_globex").status_code == 404
    assert owner.get("/dashboard/billing/checkout/done").status_code == 404
    assert owner.get(f"/dashboard/billing/payments/{theirs.pk}/status").status_code == 404
    assert owner.get(f"/dashboard/billing/payments/{theirs.pk}/").status_code == 404


# Payments and their receipts -----------------------------------------------------------------------------------


def test_payments_list_each_with_its_receipt(world, checkout_stripe):
    payment = bought(world, checkout_stripe, "50.00")
    deliver(event("checkout.session.completed", paid_session(payment, "pi_receipt")))
    owner = browser(world.owner)
    html = page(owner.get("/dashboard/billing/payments/"))
    assert "50.00 USD" in html and "Paid" in html and f'href="/dashboard/billing/payments/{payment.pk}/"' in html
    receipt = page(owner.get(f"/dashboard/billing/payments/{payment.pk}/"))
    assert "Receipt" in receipt and "50.00 USD" in receipt and "pi_receipt" in receipt and "Acme" in receipt
    assert "hub/invoice.css" in receipt and "data-print" in receipt
    assert "The credit was added to the balance when Stripe confirmed the payment." in receipt
    # The ledger's top-up links to it, for those who may see payments.
    assert f'href="/dashboard/billing/payments/{payment.pk}/"' in page(owner.get("/dashboard/billing/ledger"))
    assert f'href="/dashboard/billing/payments/{payment.pk}/"' not in page(
        browser(world.viewer).get("/dashboard/billing/ledger")
    )


@pytest.mark.parametrize("role", ROLES)
def test_a_receipt_is_the_owners_and_billing_members(world, role):
    payment = Payment.objects.create(organization=world.acme, amount=D("5"), status="paid")
    status = browser(getattr(world, role)).get(f"/dashboard/billing/payments/{payment.pk}/").status_code
    assert status == (200 if role in BUYERS else 403)


def test_a_pending_payment_is_not_called_a_receipt(world):
    payment = Payment.objects.create(organization=world.acme, amount=D("5"))
    html = page(browser(world.owner).get(f"/dashboard/billing/payments/{payment.pk}/"))
    assert "it is not a receipt yet" in html and "<h1>Payment" in html


# Auto-recharge and the card saved through Checkout in setup mode ---------------------------------------------------


def test_an_owner_saves_a_card_through_checkout_then_turns_auto_recharge_on(world, checkout_stripe, stripe_client):
    owner = browser(world.owner)
    on = {"enabled": "on", "threshold": "20.00", "amount": "25.00"}
    refused = owner.post("/dashboard/billing/auto-recharge", on)
    assert refused.status_code == 400 and "Save a card first." in page(refused)
    assert not AutoRecharge.objects.filter(enabled=True).exists()

    response = owner.post("/dashboard/billing/auto-recharge/card")
    assert response.status_code == 303 and response.url.startswith("https://checkout.stripe.com/c/setup/")
    (sent,) = checkout_stripe.sessions("setup")
    recharge = AutoRecharge.objects.get()
    assert sent["customer"] == recharge.stripe_customer_id and sent["customer"].startswith("cus_")
    assert sent["success_url"] == "http://testserver/dashboard/billing/?card=pending#auto-recharge"
    assert response.url.endswith(recharge.stripe_setup_session_id)
    assert "It is saved here as soon as Stripe confirms it" in page(owner.get("/dashboard/billing/?card=pending"))
    assert not recharge.stripe_payment_method_id, "nothing is saved by coming back from Stripe"

    session, method = setup_completed(stripe_client, sent, recharge.stripe_setup_session_id, GOOD_CARD)
    completed = event("checkout.session.completed", session)
    assert deliver(completed).status_code == 200
    assert deliver(completed).status_code == 200  # a replay
    recharge.refresh_from_db()
    assert recharge.stripe_payment_method_id == method
    assert StripeEvent.objects.get().outcome == f"card saved for organisation {world.acme.pk}"
    assert "A card is saved" in page(owner.get("/dashboard/billing/"))

    response = owner.post("/dashboard/billing/auto-recharge", on)
    assert response.status_code == 303 and response.url == "/dashboard/billing/#auto-recharge"
    recharge.refresh_from_db()
    assert (recharge.enabled, recharge.threshold, recharge.amount) == (True, D("20"), D("25"))
    assert AuditEvent.objects.filter(action="billing.auto_recharge", organization=world.acme).exists()
    html = page(owner.get("/dashboard/billing/"))
    assert 'name="enabled" id="recharge_enabled" checked' in html and 'value="20.00"' in html


def test_a_superseded_or_forged_setup_session_saves_no_card(world, checkout_stripe, stripe_client):
    owner = browser(world.owner)
    owner.post("/dashboard/billing/auto-recharge/card")
    first_id = AutoRecharge.objects.get().stripe_setup_session_id
    owner.post("/dashboard/billing/auto-recharge/card")
    first_form, second_form = checkout_stripe.sessions("setup")
    late, _ = setup_completed(stripe_client, first_form, first_id, GOOD_CARD)
    assert deliver(event("checkout.session.completed", late)).status_code == 200
    assert not AutoRecharge.objects.get().stripe_payment_method_id
    assert StripeEvent.objects.get().outcome == "ignored: not the latest card setup of any organisation"
    newest, method = setup_completed(
        stripe_client, second_form, AutoRecharge.objects.get().stripe_setup_session_id, GOOD_CARD
    )
    assert deliver(event("checkout.session.completed", newest), secret="whsec_forged").status_code == 400
    assert not AutoRecharge.objects.get().stripe_payment_method_id
    assert deliver(event("checkout.session.completed", dict(newest, customer="cus_attacker"))).status_code == 200
    assert not AutoRecharge.objects.get().stripe_payment_method_id
    assert deliver(event("checkout.session.completed", newest)).status_code == 200
    assert AutoRecharge.objects.get().stripe_payment_method_id == method


@pytest.mark.parametrize(
    "fields,error",
    [
        ({"threshold": "-1", "amount": "25"}, "greater than or equal to 0"),
        ({"threshold": "5", "amount": "0.50"}, "greater than or equal to 1.00"),
        ({"threshold": "5", "amount": "20000"}, "less than or equal to 10000.00"),
    ],
)
def test_auto_recharge_out_of_bounds_is_refused(world, fields, error):
    response = browser(world.billing).post("/dashboard/billing/auto-recharge", fields)
    assert response.status_code == 400 and error in page(response)
    assert not AutoRecharge.objects.exists()


@pytest.mark.parametrize("role", OTHERS)
def test_other_roles_may_not_change_auto_recharge_or_save_a_card(world, checkout_stripe, role):
    client = browser(getattr(world, role))
    assert client.post("/dashboard/billing/auto-recharge", {"threshold": "5", "amount": "10"}).status_code == 403
    assert client.post("/dashboard/billing/auto-recharge/card").status_code == 403
    assert not AutoRecharge.objects.exists() and not checkout_stripe.requests


def test_a_recharge_turned_off_by_a_declined_card_says_why(world):
    AutoRecharge.objects.create(organization=world.acme, disabled_reason="payment 3 failed: card declined")
    html = page(browser(world.owner).get("/dashboard/billing/"))
    assert "Auto-recharge was turned off: payment 3 failed: card declined" in html


# The ledger: the balance after each line -------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    """Entries written at a chosen time (auto_now_add reads django.utils.timezone.now)."""

    def at(when: datetime):
        monkeypatch.setattr(timezone, "now", lambda: when)

    yield at
    monkeypatch.undo()


def usage_charge(organization, amount: str):
    account = CreditAccount.objects.get(organization=organization)
    return services._append(account.pk, kind=LedgerEntry.Kind.USAGE, amount=D(amount), description="chat gpt-4o")


def test_the_ledger_groups_usage_per_day_and_shows_the_balance_after_each_line(world, clock):
    organization = world.globex  # 99 credits from the world, written now
    now = timezone.now()
    month = (now.replace(day=1) - timedelta(days=1)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    day = month.replace(tzinfo=UTC)

    def at(days, hours):
        clock(day + timedelta(days=days, hours=hours))

    at(-1, 23)
    services.credit_grant(organization=organization, amount=D("100"), description="opening", kind="adjustment")
    at(2, 10)
    usage_charge(organization, "-1.5")
    at(2, 11)
    usage_charge(organization, "-0.5")
    at(2, 12)
    services.credit_grant(organization=organization, amount=D("25"), idempotency_key="stripe:payment:pi_ledger")
    at(2, 13)
    usage_charge(organization, "-1")
    at(3, 9)
    usage_charge(organization, "-0.25")
    at(3, 9.5)
    usage_charge(organization, "-0.25")
    at(4, 8)
    services.credit_grant(
        organization=organization, amount=D("-5"), kind="adjustment", idempotency_key="stripe:refund:re_1"
    )
    at(5, 8)
    services.credit_grant(organization=organization, amount=D("-1.5"), kind="adjustment", description="operator fix")
    at(6, 8)
    services.credit_grant(organization=organization, amount=D("3"), description="Promotion")
    clock(now)

    response = browser(world.outsider).get(f"/dashboard/billing/ledger?month={month:%Y-%m}")
    period = response.context["period"]
    got = [(row.kind, row.amount, row.entries, row.balance_after) for row in period.rows]
    assert got == [
        ("grant", D("3"), 1, D("118")),
        ("adjustment", D("-1.5"), 1, D("115")),
        ("refund", D("-5"), 1, D("116.5")),
        ("usage", D("-0.5"), 2, D("121.5")),
        ("usage", D("-1"), 1, D("122")),  # after the top-up: a line of its own
        ("top_up", D("25"), 1, D("123")),
        ("usage", D("-2"), 2, D("98")),
    ]
    assert period.opening == D("100") and period.closing == D("118")
    html = page(response)
    assert "Usage: 2 requests" in html and "Usage: 1 request" in html and "Top-up" in html and "Refund" in html
    assert "operator fix" in html and "Promotion" in html
    # Each line is the one before plus its amount.
    before = period.opening
    for row in reversed(period.rows):
        assert row.balance_after == before + row.amount
        before = row.balance_after
    # And this month ends at the account's balance, the sum of its whole ledger.
    current = browser(world.outsider).get("/dashboard/billing/ledger").context["period"]
    total = LedgerEntry.objects.filter(account__organization=organization).aggregate(s=Sum("amount"))["s"]
    assert current.opening == D("118") and current.closing == balance(organization) == total == D("217")


def test_a_month_without_movements_says_so_and_keeps_the_balance(world):
    response = browser(world.viewer).get("/dashboard/billing/ledger?month=2020-01")
    assert "No movements of credit in this month." in page(response)
    assert response.context["period"].closing == D("0")


def test_the_ledger_is_the_current_organisations_only(world):
    html = page(browser(world.owner).get("/dashboard/billing/ledger"))
    assert "globex credit" not in html and "99.00" not in html


# Invoices and their print view ---------------------------------------------------------------------------------


def invoice_of(organization, number: str, total: str = "12.34") -> Invoice:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    invoice = Invoice.objects.create(
        organization=organization,
        number=number,
        period_start=start,
        period_end=datetime(2026, 11, 1, tzinfo=UTC),
        status="open",
        subtotal=D(total),
        total=D(total),
        issued_at=start,
    )
    invoice.lines.create(model_name="openai/gpt-4o-mini", requests=3, amount=D(total))
    return invoice


@pytest.mark.parametrize("role", ROLES)
def test_invoices_and_their_print_view_are_the_owners_and_billing_members(world, role):
    invoice_of(world.acme, "HUB-2026-10-0001")
    client = browser(getattr(world, role))
    listing = client.get("/dashboard/billing/invoices/")
    printed = client.get("/dashboard/billing/invoices/HUB-2026-10-0001/print")
    if role not in BUYERS:
        assert (listing.status_code, printed.status_code) == (403, 403)
        return
    assert "HUB-2026-10-0001" in page(listing) and "12.34 USD" in page(listing)
    assert 'href="/dashboard/billing/invoices/HUB-2026-10-0001/print"' in page(listing)
    html = page(printed)
    assert printed.status_code == 200 and 'Invoice <span class="number">HUB-2026-10-0001</span>' in html
    assert "openai/gpt-4o-mini" in html and "hub/invoice.css" in html and "Acme" in html


def test_another_organisations_invoice_is_not_found(world):
    invoice_of(world.globex, "HUB-2026-10-0002")
    assert browser(world.owner).get("/dashboard/billing/invoices/HUB-2026-10-0002/print").status_code == 404
    assert "HUB-2026-10-0002" not in page(browser(world.owner).get("/dashboard/billing/invoices/"))


def test_a_draft_is_no_invoice_yet(world):
    Invoice.objects.filter(pk=invoice_of(world.acme, "HUB-2026-10-0003").pk).update(status="draft")
    assert browser(world.owner).get("/dashboard/billing/invoices/HUB-2026-10-0003/print").status_code == 404


def test_a_credits_organisation_is_told_what_invoices_are_for(world, settings):
    html = page(browser(world.owner).get("/dashboard/billing/invoices/"))
    assert "Invoices are for organisations billed monthly" in html
    CreditAccount.objects.filter(organization=world.acme).update(billing_mode="postpaid")
    assert "No invoices yet" in page(browser(world.owner).get("/dashboard/billing/invoices/"))


# Billing settings and the emails they steer ------------------------------------------------------------------------


def test_an_owner_sets_the_billing_email_and_the_low_balance_threshold(world):
    owner = browser(world.owner)
    assert "the hub&#x27;s default (1)" in page(owner.get("/dashboard/billing/settings"))
    response = owner.post(
        "/dashboard/billing/settings",
        {"billing_email": "accounts@acme.example", "low_balance_enabled": "on", "low_balance_threshold": "7.50"},
    )
    assert response.status_code == 303 and response.url == "/dashboard/billing/settings"
    assert CreditAccount.objects.get(organization=world.acme).billing_email == "accounts@acme.example"
    alert = LowBalanceAlert.objects.get(account__organization=world.acme)
    assert (alert.enabled, alert.threshold) == (True, D("7.5"))
    html = page(owner.get("/dashboard/billing/settings"))
    assert 'value="accounts@acme.example"' in html and 'value="7.50"' in html and "Billing settings saved." in html
    assert AuditEvent.objects.filter(
        action="billing.settings", organization=world.acme, actor_user=world.owner
    ).exists()

    # Empty: back to the hub's default and to the members only.
    owner.post("/dashboard/billing/settings", {"billing_email": "", "low_balance_threshold": ""})
    alert.refresh_from_db()
    assert (alert.enabled, alert.threshold) == (False, None)
    assert CreditAccount.objects.get(organization=world.acme).billing_email == ""


@pytest.mark.parametrize(
    "fields,error",
    [
        ({"billing_email": "not an address"}, "Enter a valid email address."),
        ({"low_balance_threshold": "-1"}, "greater than or equal to 0"),
    ],
)
def test_bad_settings_are_refused_next_to_their_field(world, fields, error):
    response = browser(world.billing).post("/dashboard/billing/settings", fields)
    assert response.status_code == 400 and error in page(response)
    assert CreditAccount.objects.get(organization=world.acme).billing_email == ""
    assert not LowBalanceAlert.objects.filter(account__organization=world.acme, threshold__isnull=False).exists()


@pytest.mark.parametrize("role", OTHERS)
def test_other_roles_may_not_change_billing_settings(world, role):
    response = browser(getattr(world, role)).post("/dashboard/billing/settings", {"billing_email": "x@example.com"})
    assert response.status_code == 403
    assert CreditAccount.objects.get(organization=world.acme).billing_email == ""


def test_the_low_balance_email_goes_to_the_billing_email_too_at_its_threshold(world, mailoutbox):
    browser(world.owner).post(
        "/dashboard/billing/settings",
        {"billing_email": "accounts@acme.example", "low_balance_enabled": "on", "low_balance_threshold": "20"},
    )
    assert notify_low_balances.delay().get() == 3  # 10 is under 20: owner, billing member and the billing email
    assert sorted(a for m in mailoutbox for a in m.to) == [
        "accounts@acme.example",
        "billing@example.com",
        "owner@example.com",
    ]
    (extra,) = [m for m in mailoutbox if m.to == ["accounts@acme.example"]]
    assert "as the billing email address of Acme" in extra.body and "role" not in extra.body
    (member,) = [m for m in mailoutbox if m.to == ["owner@example.com"]]
    assert "as a member of Acme with the owner role" in member.body


def test_a_billing_email_that_is_a_members_gets_one_message(world, mailoutbox):
    browser(world.owner).post(
        "/dashboard/billing/settings",
        {"billing_email": "Owner@example.com", "low_balance_enabled": "on", "low_balance_threshold": "20"},
    )
    assert notify_low_balances.delay().get() == 2
    assert sorted(a for m in mailoutbox for a in m.to) == ["billing@example.com", "owner@example.com"]


def test_the_invoice_email_goes_to_the_billing_email_too(world, mailoutbox):
    CreditAccount.objects.filter(organization=world.acme).update(billing_email="accounts@acme.example")
    invoice = invoice_of(world.acme, "HUB-2026-10-0009")
    assert issuing.invoice_notify(invoice_id=invoice.pk) == 3
    assert sorted(a for m in mailoutbox for a in m.to) == [
        "accounts@acme.example",
        "billing@example.com",
        "owner@example.com",
    ]
    (extra,) = [m for m in mailoutbox if m.to == ["accounts@acme.example"]]
    assert "HUB-2026-10-0009" in extra.subject and "as the billing email address of Acme" in extra.body


def test_the_redirect_after_a_post_is_a_see_other(world):
    response = browser(world.owner).post("/dashboard/billing/settings", {"billing_email": ""})
    assert response.status_code == 303


def test_query_helper():
    assert query_of("https://x/?a=1&b=2") == {"a": "1", "b": "2"}
