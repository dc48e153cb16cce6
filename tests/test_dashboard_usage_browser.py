"""The usage page in a real browser, at desktop and phone widths (tests/browser.py): an owner sees the last 7
days' spend, requests and tokens, the chart and its table, and the spend shown is the ledger's; the form (htmx
swapping the report in place, the address following it) splits them by key, then shows requests per hour for
today in Tokyo's days. Screenshots of each."""

import re
from datetime import datetime, time, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db.models import Sum
from django.utils import timezone
from playwright.sync_api import expect

from billing.models import LedgerEntry, UsageRecord
from billing.services import record_usage
from billing.tasks import roll_up_usage
from tests import factories
from tests.browser import check_page, screenshot
from tests.signin import fresh_throttles, sign_in_page, verified_user

pytestmark = pytest.mark.browser
__all__ = ["fresh_throttles"]


def organisation_with_usage(owner):
    """Two keys' usage over the last three days (from an hour ago, so that it is in today's zone too), one
    request refused; the rollups built."""
    organization = factories.organization("Wonderland", owner=owner, credit="100")
    web, _ = factories.api_key(organization, "web")
    batch, _ = factories.api_key(organization, "batch")
    now = timezone.now() - timedelta(hours=1)
    events = [
        factories.usage_event(
            organization,
            key=key,
            price=price,
            billing_mode="credits",
            prompt_tokens=120,
            completion_tokens=30,
            created_at=now - timedelta(days=days, minutes=minutes),
        )
        for key, price, days, minutes in [
            (web, "1.25", 0, 5),
            (web, "0.75", 1, 0),
            (batch, "3.00", 2, 0),
            (batch, "0.40", 0, 20),
        ]
    ]
    events.append(factories.usage_event(organization, key=batch, status="client_error", created_at=now))
    record_usage(events)
    roll_up_usage.delay()
    return organization


def ledger_usage(organization) -> Decimal:
    return -LedgerEntry.objects.filter(account__organization=organization, kind=LedgerEntry.Kind.USAGE).aggregate(
        s=Sum("amount")
    )["s"]


def number(text: str) -> Decimal:
    found = re.search(r"[\d,]+(\.\d+)?", text)
    assert found, text
    return Decimal(found[0].replace(",", ""))


def test_the_owner_sees_the_week_and_splits_it_by_key(page, settings, width):
    settings.HUB_STARTER_CREDITS = "0"
    owner = verified_user(f"owner-{width}@example.com")
    organization = organisation_with_usage(owner)
    sign_in_page(page, owner.email)
    page.get_by_role("link", name="Usage").click()
    page.wait_for_url("**/dashboard/usage/")
    assert page.get_by_role("link", name="Usage").get_attribute("aria-current") == "page"
    assert number(page.inner_text("#usage-spend")) == ledger_usage(organization) == Decimal("5.40")
    assert number(page.inner_text("#usage-requests")) == 5
    assert number(page.inner_text("#usage-tokens")) == 4 * 150
    assert number(page.inner_text("#usage-table-total")) == Decimal("5.40")
    assert page.locator("svg.usage-bars g.usage-bar").count() == 7
    assert page.get_by_role("img", name=re.compile("Spend")).count() == 1
    screenshot(page, "usage")
    check_page(page)

    page.get_by_label("Split by").select_option("key")
    page.get_by_role("button", name="Show usage").click()
    expect(page.locator("#usage-groups")).to_contain_text("batch")
    assert parse_qs(urlsplit(page.url).query)["group"] == ["key"]  # htmx pushed the address
    groups = {
        row.locator("th").inner_text(): number(row.locator("td").nth(2).inner_text())
        for row in page.locator("#usage-groups tbody tr").all()
    }
    assert sorted(groups.values()) == [Decimal("2.00"), Decimal("3.40")]
    assert sum(groups.values()) == ledger_usage(organization)
    screenshot(page, "usage-by-key")
    check_page(page)


def test_requests_per_hour_today_in_tokyo(page, settings, width):
    settings.HUB_STARTER_CREDITS = "0"
    owner = verified_user(f"tokyo-{width}@example.com", time_zone="Asia/Tokyo")
    organisation_with_usage(owner)
    sign_in_page(page, owner.email)
    page.goto("/dashboard/usage/?range=today&metric=requests")
    assert "Days and hours in Asia/Tokyo." in page.inner_text("main")
    assert page.locator("#usage-table tbody tr").count() == 24
    today = timezone.localdate(timezone=timezone.get_fixed_timezone(9 * 60))
    assert page.locator("#usage-table tbody tr th").first.inner_text().startswith(today.isoformat())
    # The requests that fall in Tokyo's today, refused ones included.
    start = datetime.combine(today, time.min, tzinfo=timezone.get_fixed_timezone(9 * 60))
    made = UsageRecord.objects.filter(created_at__gte=start, created_at__lt=start + timedelta(days=1)).count()
    assert number(page.inner_text("#usage-requests")) == made == number(page.inner_text("#usage-table-total"))
    screenshot(page, "usage-today-tokyo")
    check_page(page)
