"""The Billing pages in a real browser, at desktop and phone widths (tests/browser.py): the owner buys credit
through Stripe's Checkout (localstripe takes the payment; Checkout's page itself is played by a redirect back),
the result page says pending, then, once the signed webhook is delivered, htmx shows it credited and the balance
has moved exactly once (a replay, and the payment intent's own event, move nothing). Screenshots of the billing,
result, ledger, payments, receipt, invoices and settings pages."""

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from accounts.services import organization_create
from billing.models import CreditAccount, Invoice, LedgerEntry, Payment
from billing.services import credit_grant
from tests.browser import check_page, screenshot
from tests.dashboard_billing_stripe import checkout_paid, checkout_stripe, play_checkout_page, stripe_form_action
from tests.fakes.stripe_server import event
from tests.signin import PASSWORD, fresh_throttles, verified_user
from tests.stripe_fixtures import deliver

pytestmark = pytest.mark.browser
__all__ = ["checkout_stripe", "fresh_throttles", "stripe_form_action"]  # fixtures, imported


def sign_in(page, login: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email or username").fill(login)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard/**")


def balance(organization) -> Decimal:
    return CreditAccount.objects.get(organization=organization).balance


def test_the_owner_buys_credit_and_the_result_page_follows_the_webhook(
    page, width, hub, checkout_stripe, stripe_client, stripe_form_action
):
    owner = verified_user(f"owner-{width}@example.com")
    acme = organization_create(name="Acme", owner=owner)
    credit_grant(organization=acme, amount=Decimal("10"), description="Welcome credit")
    sign_in(page, owner.email)

    visited = play_checkout_page(page, checkout_stripe)

    page.goto("/dashboard/billing/")
    expect(page.locator(".stat .balance")).to_have_text("10.00 USD")
    screenshot(page, "billing")
    check_page(page)
    page.get_by_role("button", name="Buy 25.00 USD").click()
    page.wait_for_url(re.compile(r"/dashboard/billing/checkout/done\?session_id=cs_test_\w+$"))
    payment = Payment.objects.get()
    assert visited == [f"https://checkout.stripe.com/c/pay/{payment.stripe_checkout_session_id}"]
    status = page.locator("#payment-status")
    expect(status).to_contain_text("Pending")
    assert page.get_by_role("link", name="Reload").count() == 1
    screenshot(page, "result-pending")
    check_page(page)
    page.wait_for_timeout(2500)  # a poll or more: still pending, nothing credited by coming back
    expect(status).to_contain_text("Pending")
    assert balance(acme) == Decimal("10")

    # The card is charged on localstripe; Stripe then signs and delivers checkout.session.completed.
    intent, completed = checkout_paid(stripe_client, payment, 2500)
    assert deliver(completed).status_code == 200
    expect(status).to_contain_text("Credited", timeout=10_000)  # htmx asked again, two seconds on
    expect(status).to_contain_text("25.00 USD was added to the balance.")
    expect(status).to_contain_text("The balance is now 35.00 USD.")
    screenshot(page, "result-credited")
    check_page(page)

    assert deliver(completed).status_code == 200  # a replay
    assert deliver(event("payment_intent.succeeded", intent.to_dict())).status_code == 200  # its own event too
    assert balance(acme) == Decimal("35")
    assert LedgerEntry.objects.filter(idempotency_key=f"stripe:payment:{intent.id}").count() == 1
    page.get_by_role("link", name="Reload").click()
    expect(page.locator("#payment-status")).to_contain_text("Credited")

    page.goto("/dashboard/billing/ledger")
    rows = page.locator("table.ledger tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("Top-up")
    expect(rows.nth(0).locator(".balance-after")).to_have_text("35.00")
    expect(rows.nth(1).locator(".balance-after")).to_have_text("10.00")
    screenshot(page, "ledger")
    check_page(page)

    page.goto("/dashboard/billing/payments/")
    expect(page.locator("table.payments")).to_contain_text("Paid")
    screenshot(page, "payments")
    check_page(page)
    page.get_by_role("link", name="Receipt").first.click()
    expect(page.locator("main")).to_contain_text(intent.id)
    screenshot(page, "receipt")
    check_page(page)

    start = datetime(2026, 10, 1, tzinfo=UTC)
    invoice = Invoice.objects.create(
        organization=acme,
        number=f"HUB-2026-10-{width}",
        period_start=start,
        period_end=datetime(2026, 11, 1, tzinfo=UTC),
        status="open",
        subtotal=Decimal("12.3456"),
        total=Decimal("12.35"),
        issued_at=start,
    )
    invoice.lines.create(model_name="openai/gpt-4o-mini", requests=42, amount=Decimal("12.3456"))
    page.goto("/dashboard/billing/invoices/")
    expect(page.locator("table.invoices")).to_contain_text(invoice.number)
    screenshot(page, "invoices")
    check_page(page)
    page.get_by_role("link", name="Print view").click()
    expect(page.locator("h1")).to_contain_text(invoice.number)
    screenshot(page, "invoice-print")

    page.goto("/dashboard/billing/settings")
    page.get_by_label("Billing email").fill("accounts@acme.example")
    page.get_by_label("Low-balance threshold").fill("5")
    screenshot(page, "settings")
    check_page(page)
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("Billing settings saved.")
    assert CreditAccount.objects.get(organization=acme).billing_email == "accounts@acme.example"
