"""The dashboard's overview in a real browser, at desktop and phone widths (tests/browser.py): an owner signs in
and sees the balance, days left, spend, requests and error rate; an organisation low on credit shows its viewer
the banner, which says who can top up."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.services import record_usage
from tests import factories
from tests.browser import check_page, screenshot
from tests.signin import fresh_throttles, sign_in_page, verified_user

pytestmark = pytest.mark.browser
__all__ = ["fresh_throttles"]


def organisation_with_usage(name: str, owner, *, credit: str):
    """`credit` granted; today 1.50 and a failure, two days ago 7.00 (in the last week)."""
    organization = factories.organization(name, owner=owner, credit=Decimal(credit))
    now = timezone.now()
    events = [
        factories.usage_event(
            organization, price="1.50", billing_mode="credits", created_at=now - timedelta(minutes=5)
        ),
        factories.usage_event(organization, status="upstream_error", billing_mode="credits", created_at=now),
        factories.usage_event(organization, price="7.00", billing_mode="credits", created_at=now - timedelta(days=2)),
    ]
    record_usage(events)
    return organization


def test_the_owner_sees_the_numbers_and_no_banner(page, settings, width):
    settings.HUB_STARTER_CREDITS = "0"
    owner = verified_user(f"owner-{width}@example.com")
    organisation_with_usage("Wonderland", owner, credit="100")
    sign_in_page(page, owner.email)
    main = page.inner_text("main")
    assert page.get_by_role("heading", name="Wonderland", level=1).count() == 1
    assert "91.50" in page.inner_text("#stat-headline")  # 100 less 1.50 and 7.00
    assert "1.50" in page.inner_text("#stat-today")
    assert "2" in page.inner_text("#stat-requests") and "50.0%" in page.inner_text("#stat-errors")
    assert page.get_by_role("alert").count() == 0 and "running low" not in main
    assert page.get_by_role("link", name="Overview").get_attribute("aria-current") == "page"
    screenshot(page, "overview")
    check_page(page)


def test_a_viewer_of_an_organisation_low_on_credit_sees_the_banner(page, settings, width):
    settings.HUB_STARTER_CREDITS = "0"
    owner = verified_user(f"owner-{width}@example.com")
    organization = organisation_with_usage("Looking Glass", owner, credit="9.00")  # 0.50 left, under 1
    viewer = verified_user(f"viewer-{width}@example.com")
    organization.memberships.create(user=viewer, role="viewer")
    sign_in_page(page, viewer.email)
    banner = page.get_by_role("alert")
    assert banner.count() == 1 and "0.50 USD available" in banner.inner_text()
    assert "An owner or a billing member" in banner.inner_text()
    assert page.get_by_role("link", name="Top up").count() == 0  # a viewer may not buy credit
    screenshot(page, "overview-low-balance")
    check_page(page)
