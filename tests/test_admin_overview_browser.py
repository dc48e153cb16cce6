"""The operator overview and an organisation's admin page in a real browser, at desktop and phone widths
(tests/browser.py): an operator signs in with password and TOTP code, sees the charts, and the figures on the
page are the ledger's. Screenshots of each."""

from decimal import Decimal

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

from accounts.models import User
from billing.models import LedgerEntry, UsageRecord
from billing.templatetags.billing_money import money
from tests.browser import SidewaysScroll, check_page, screenshot
from tests.signin import totp_code
from tests.test_admin_overview import make_traffic

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"


@pytest.fixture
def operator(transactional_db):
    user = User.objects.create_superuser("operator", "op@example.com", PASSWORD)
    TOTP.activate(user, generate_totp_secret())
    return user


def sign_in(page, operator) -> None:
    page.goto("/admin/")
    page.get_by_label("Email or username").fill("operator")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/accounts/2fa/authenticate/")
    page.get_by_label("Code").fill(totp_code(operator))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/admin/")


def test_the_overview_shows_the_ledger_s_figures_with_its_chart(page, operator):
    traffic = make_traffic()
    sign_in(page, operator)
    page.goto("/admin/?range=7d")
    charged = -sum(e.amount for e in LedgerEntry.objects.filter(kind=LedgerEntry.Kind.USAGE))
    cost = sum(r.cost for r in UsageRecord.objects.all())
    figure = page.locator('[data-figure="revenue"]').inner_text()
    assert money(charged) in figure and charged == Decimal("4.65")
    assert money(cost) in page.locator('[data-figure="cost"]').inner_text()
    assert money(charged - cost) in page.locator('[data-figure="margin"]').inner_text()
    assert page.locator('[data-figure="requests"]').inner_text().strip() == str(UsageRecord.objects.count())
    bars = page.locator("#operator-overview svg.usage-bars rect")
    assert bars.count() >= 2  # today's bar, a segment per provider
    assert bars.first.evaluate("r => r.getBoundingClientRect().height") > 0  # drawn, not blocked by the CSP
    row = page.locator('#overview-by-organization tr[data-key="Acme"]')
    assert money(Decimal("2.40")) in row.inner_text()
    assert page.locator("#overview-out-of-rotation").get_by_text("upstream 503").count() == 1
    assert page.get_by_role("link", name="Accounts").count() >= 1  # the app list, below
    screenshot(page, "overview")
    check_page(page)

    page.goto(f"/admin/accounts/organization/{traffic['globex'].pk}/change/")
    assert page.locator("#organization-activity svg.usage-bars rect").count() >= 1
    assert money(Decimal("0.75")) in page.locator("#org-ledger").inner_text()
    assert "Refused (client error)" in page.locator("#org-errors").inner_text()
    assert page.locator(".errornote").count() == 0
    screenshot(page, "organization")
    # Django's own markup fails the label check: the memberships inline's hidden template row ("__prefix__"),
    # labelled by its column heading, not by a <label>. Nothing else may, and the page must not scroll sideways.
    with pytest.raises(AssertionError) as caught:
        check_page(page)
    assert not isinstance(caught.value, SidewaysScroll), caught.value
    controls = [line for line in str(caught.value).splitlines() if line.strip().startswith(("<select", "<input"))]
    assert controls and all("__prefix__" in line for line in controls), caught.value
