"""The request log in a real browser, at desktop and phone widths (tests/browser.py): a developer signs in, reads
the log, filters it to failures, opens one request's detail, goes to the older page, and downloads the CSV, whose
last row is the totals. Screenshots of the log, a filtered log and a detail page."""

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Membership
from billing.services import record_usage
from tests import factories
from tests.browser import check_page, screenshot
from tests.signin import PASSWORD, fresh_throttles, verified_user

pytestmark = pytest.mark.browser
__all__ = ["fresh_throttles"]


def sign_in(page, email: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email or username").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard/**")


def test_a_developer_reads_filters_opens_and_downloads_the_log(page, settings, width):
    settings.HUB_STARTER_CREDITS = "0"
    owner = verified_user(f"owner-{width}@example.com")
    developer = verified_user(f"dev-{width}@example.com")
    organization = factories.organization("Wonderland", owner=owner, credit="100")
    Membership.objects.create(user=developer, organization=organization, role="developer")
    key, _ = factories.api_key(organization, "web app")
    now = timezone.now()
    events = [
        factories.usage_event(
            organization,
            key=key,
            model_name="gpt-4o-mini",
            price="0.0125",
            prompt_tokens=120,
            completion_tokens=80,
            latency_ms=900 + n,
            first_token_ms=210,
            stream=n % 2 == 0,
            created_at=now - timedelta(minutes=n),
        )
        for n in range(55)
    ]
    events.append(
        factories.usage_event(
            organization,
            key=key,
            model_name="claude-sonnet",
            served_model="gpt-4o",
            status="upstream_error",
            http_status=502,
            error="The provider answered 502 Bad Gateway",
            latency_ms=3000,
            created_at=now - timedelta(seconds=30),
        )
    )
    record_usage(events)
    sign_in(page, developer.email)

    page.goto("/dashboard/requests/")
    expect(page.get_by_role("heading", name="Requests", level=1)).to_be_visible()
    expect(page.locator("table.requests-log tbody tr")).to_have_count(50)
    screenshot(page, "log")
    check_page(page)

    page.get_by_label("Status").select_option("upstream_error")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**status=upstream_error**")
    rows = page.locator("table.requests-log tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("The provider answered 502 Bad Gateway")
    expect(rows.first).to_contain_text("served by gpt-4o")
    screenshot(page, "filtered")
    check_page(page)

    rows.first.get_by_role("link").click()
    page.wait_for_url("**/dashboard/requests/*/")
    expect(page.locator("#request-error")).to_be_visible()
    expect(page.locator("main")).to_contain_text("claude-sonnet")
    expect(page.locator("main")).to_contain_text("502")
    screenshot(page, "detail")
    check_page(page)

    page.goto("/dashboard/requests/")
    page.get_by_role("link", name="Older").click()
    expect(page.locator("table.requests-log tbody tr")).to_have_count(6)
    assert page.get_by_role("link", name="Older").count() == 0

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    assert download.suggested_filename.startswith("requests-wonderland-")
    rows = list(csv.reader(io.StringIO(open(download.path(), encoding="utf-8").read())))
    assert len(rows) == 1 + 56 + 1
    assert rows[-1][0] == "total" and rows[-1][1] == "56"
