"""Every figure of the dashboard agrees, in a real browser (tests/browser.py), after real traffic: two keys call
the live hub with the openai SDK (two models, one asked for by its alias, one stream, one refused request for a
model that does not exist); then the overview, the usage page's totals, chart table and groups, the request log
(filtered by key) and the CSV's totals row all show what the ledger and the usage records hold."""

import csv
import io
import re
from decimal import Decimal

import openai
import pytest
from django.db.models import Sum
from playwright.sync_api import expect

from billing.models import LedgerEntry, UsageRecord
from billing.tasks import roll_up_usage
from tests import factories
from tests.browser import check_page, screenshot
from tests.signin import fresh_throttles, sign_in_page, verified_user

pytestmark = pytest.mark.browser
__all__ = ["fresh_throttles"]


def number(text: str) -> Decimal:
    found = re.search(r"\d[\d,]*(\.\d+)?", text)
    assert found, text
    return Decimal(found[0].replace(",", ""))


def traffic(hub, web: str, batch: str) -> None:
    """Four answers for web (one by alias, one streamed), three for batch and one refused."""
    as_web = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=web, max_retries=0)
    as_batch = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=batch, max_retries=0)
    messages = [{"role": "user", "content": "hello there"}]
    for model in ("openai/gpt-4o-mini", "gpt-4o-mini", "openai/gpt-4o"):
        as_web.chat.completions.create(model=model, messages=messages)
    for _ in as_web.chat.completions.create(
        model="openai/gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True}
    ):
        pass
    for _ in range(3):
        as_batch.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "a b c d"}])
    with pytest.raises(openai.NotFoundError):
        as_batch.chat.completions.create(model="openai/no-such-model", messages=messages)
    hub.drain()
    roll_up_usage.delay()


def test_overview_usage_log_and_csv_agree_with_the_ledger(page, hub, openai_provider, chat_model, settings, width):
    settings.HUB_STARTER_CREDITS = "0"
    factories.add_model(openai_provider, "openai/gpt-4o", "gpt-4o")
    owner = verified_user(f"owner-{width}@example.com")
    organization = factories.organization("Wonderland", owner=owner, credit="100")
    _, web = factories.api_key(organization, "web")
    batch_key, batch = factories.api_key(organization, "batch")
    traffic(hub, web, batch)

    records = UsageRecord.objects.filter(organization=organization)
    charged = -LedgerEntry.objects.filter(account__organization=organization, kind=LedgerEntry.Kind.USAGE).aggregate(
        s=Sum("amount")
    )["s"]
    assert charged == records.aggregate(s=Sum("price"))["s"] > 0
    count = records.count()
    assert count == 7 + records.exclude(status="ok").count()  # a refused request is recorded too

    sign_in_page(page, owner.email)
    assert number(page.inner_text("#stat-today")) == charged
    assert number(page.inner_text("#stat-requests")) == count
    screenshot(page, "overview")
    check_page(page)

    # Usage by model: one row per model (the alias counts under its model), the groups add up to the total.
    page.goto("/dashboard/usage/?range=30d&group=model")
    assert number(page.inner_text("#usage-spend")) == charged
    assert number(page.inner_text("#usage-requests")) == count
    assert number(page.inner_text("#usage-table-total")) == charged
    groups = {
        row.locator("th").inner_text(): (
            number(row.locator("td").nth(0).inner_text()),
            number(row.locator("td").nth(2).inner_text()),
        )
        for row in page.locator("#usage-groups tbody tr").all()
    }
    assert "gpt-4o-mini" not in groups
    assert groups["openai/gpt-4o-mini"][0] == 3 and groups["openai/gpt-4o"][0] == 4
    assert sum(spend for _, spend in groups.values()) == charged
    assert sum(requests for requests, _ in groups.values()) == count
    assert groups.get("openai/no-such-model", (1, Decimal(0)))[1] == 0  # refused: a request, never spend
    screenshot(page, "usage-by-model")
    check_page(page)

    # The log, filtered to batch's key: its four requests, the refused one among them.
    page.goto("/dashboard/requests/")
    expect(page.locator("table.requests-log tbody tr")).to_have_count(count)
    page.get_by_label("Key").select_option(str(batch_key.pk))
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**key=**")
    rows = page.locator("table.requests-log tbody tr")
    expect(rows).to_have_count(4)
    spends = [number(row.locator(".spend").inner_text()) for row in rows.all()]
    assert sum(spends) == records.filter(api_key__name="batch").aggregate(s=Sum("price"))["s"]
    screenshot(page, "log-of-batch")
    check_page(page)

    # The CSV of the whole log: its totals row is the usage page's.
    page.goto("/dashboard/requests/")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    rows_of_csv = list(csv.reader(io.StringIO(open(download_info.value.path(), encoding="utf-8").read())))
    total = rows_of_csv[-1]
    assert total[0] == "total" and int(total[1]) == count == len(rows_of_csv) - 2
    assert Decimal(total[rows_of_csv[0].index("spend")]) == charged
    assert sum(Decimal(row[rows_of_csv[0].index("spend")]) for row in rows_of_csv[1:-1]) == charged
