"""The dashboard walked end to end in a real browser, at desktop and phone widths (tests/browser.py), as issue 14
tells it: a visitor signs up and verifies the address from the outbox, creates an organisation and gets the
starter credits; creates a key and copies it with the copy button; the official openai SDK calls the hub with it;
the overview shows the spend; the owner buys credit through Stripe Checkout (localstripe) and the signed webhook,
and the balance moves once; the owner invites a member, who signs up from the email's link and lands in the
organisation as a viewer; the viewer sees no "Create a key" and a forged POST is refused."""

import re
from decimal import Decimal
from urllib.parse import urlsplit

import openai
import pytest
from playwright.sync_api import expect

from accounts.models import ApiKey, Membership
from billing.models import CreditAccount, LedgerEntry, Payment, UsageRecord
from billing.templatetags.billing_money import money
from tests.browser import check_page, screenshot
from tests.dashboard_billing_stripe import checkout_paid, checkout_stripe, play_checkout_page, stripe_form_action
from tests.signin import fresh_throttles
from tests.stripe_fixtures import deliver
from tests.test_dashboard_browser import link_to, sign_up_and_verify

pytestmark = pytest.mark.browser
__all__ = ["checkout_stripe", "fresh_throttles", "stripe_form_action"]  # fixtures, imported


def balance_of(organization) -> Decimal:
    return CreditAccount.objects.get(organization=organization).balance


def stat(page, label: str) -> str:
    """The value of the overview's figure named `label`."""
    return page.locator(".stat").filter(has_text=label).locator("dd").inner_text()


def test_the_dashboard_walk(page, width, hub, settings, chat_model, checkout_stripe, stripe_client, stripe_form_action):
    settings.HUB_STARTER_CREDITS = "5.00"
    owner, viewer = f"walk-owner-{width}@example.com", f"walk-viewer-{width}@example.com"
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=hub.url)

    # Sign up, verify from the outbox, create the organisation: the starter credits are there.
    page.goto("/accounts/signup/")
    sign_up_and_verify(page, owner)
    page.wait_for_url("**/dashboard/organisations/new")
    page.get_by_label("Name:", exact=True).fill("Wonderland")
    page.get_by_label("Short name").fill(f"walk-{width}")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/dashboard/")
    organization = Membership.objects.get(user__email=owner).organization
    assert balance_of(organization) == Decimal("5.00")
    assert stat(page, "Balance") == "5.00 USD"
    screenshot(page, "overview-new")
    check_page(page)

    # A key, shown once and copied by its button.
    page.get_by_role("link", name="API keys", exact=True).click()
    page.get_by_role("link", name="Create a key").click()
    page.get_by_label("Name:", exact=True).fill("walk")
    page.get_by_role("button", name="Create the key").click()
    raw = page.get_by_label("Your new key").input_value()
    page.get_by_role("button", name="Copy").click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == raw
    screenshot(page, "key-created")
    key = ApiKey.objects.get(organization=organization, name="walk")
    assert raw.startswith(key.prefix) and raw not in key.hashed_key

    # The official SDK calls the hub with the copied key; the overview shows what it cost.
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=raw, max_retries=0)
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
    assert answer.choices[0].message.content
    hub.drain()
    record = UsageRecord.objects.get(api_key=key)
    assert record.price > 0 and record.status == "ok"
    page.goto("/dashboard/")
    assert stat(page, "Spent today") == f"{money(record.price)} USD"
    assert stat(page, "Requests today") == "1"
    assert stat(page, "Balance") == f"{money(Decimal('5.00') - record.price)} USD"
    screenshot(page, "overview-spent")
    check_page(page)

    # Buy credit: Checkout (its page played by the redirect back), pending until the signed webhook, then once.
    play_checkout_page(page, checkout_stripe)
    page.get_by_role("link", name="Billing", exact=True).click()
    before = balance_of(organization)
    page.get_by_role("button", name="Buy 25.00 USD").click()
    page.wait_for_url(re.compile(r"/dashboard/billing/checkout/done\?session_id=cs_test_\w+$"))
    status = page.locator("#payment-status")
    expect(status).to_contain_text("Pending")
    assert balance_of(organization) == before
    payment = Payment.objects.get(organization=organization)
    _, completed = checkout_paid(stripe_client, payment, 2500)
    assert deliver(completed).status_code == 200
    expect(status).to_contain_text("Credited", timeout=10_000)
    assert deliver(completed).status_code == 200  # Stripe's replay credits nothing more
    assert balance_of(organization) == before + Decimal("25.00")
    top_ups = LedgerEntry.objects.filter(account__organization=organization, idempotency_key__startswith="stripe:")
    assert top_ups.count() == 1
    screenshot(page, "credited")
    page.goto("/dashboard/")
    assert stat(page, "Balance") == f"{money(before + Decimal('25.00'))} USD"

    # Invite a viewer from the team page; they sign up from the email's link and land as a viewer.
    page.get_by_role("link", name="Team", exact=True).click()
    page.get_by_label("Email address").fill(viewer)
    page.get_by_label("Role:", exact=True).select_option("viewer")
    page.get_by_role("button", name="Send the invitation").click()
    expect(page.locator("main")).to_contain_text(f"Invitation sent to {viewer}.")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/")
    page.goto(link_to(viewer, "/dashboard/invitations/"))
    page.get_by_role("link", name="Sign up").last.click()
    sign_up_and_verify(page, viewer, prefilled=True)
    page.wait_for_url("**/dashboard/invitations/*/")
    page.get_by_role("button", name="Accept the invitation").click()
    page.wait_for_url("**/dashboard/")
    assert Membership.objects.get(user__email=viewer, organization=organization).role == "viewer"
    expect(page.locator("main")).to_contain_text("You joined Wonderland as Viewer.")

    # The viewer sees the keys but no way to make one, and a forged POST makes none.
    page.get_by_role("link", name="API keys", exact=True).click()
    expect(page.locator("main")).to_contain_text("walk")
    assert page.get_by_role("link", name="Create a key").count() == 0
    assert page.get_by_role("button", name="Revoke").count() == 0
    screenshot(page, "viewer-keys")
    check_page(page)
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    forged = page.request.post(
        f"{hub.url}/dashboard/keys/new",
        form={"name": "sneaky", "csrfmiddlewaretoken": token},
        headers={"Referer": f"{hub.url}/dashboard/keys/", "X-CSRFToken": token},
        max_redirects=0,
    )
    assert forged.status == 403
    assert not ApiKey.objects.filter(name="sneaky").exists()
    revoke = page.request.post(
        f"{hub.url}/dashboard/keys/{key.pk}/revoke",
        form={"csrfmiddlewaretoken": token},
        headers={"Referer": f"{hub.url}/dashboard/keys/", "X-CSRFToken": token},
        max_redirects=0,
    )
    assert revoke.status == 403
    key.refresh_from_db()
    assert key.revoked_at is None
