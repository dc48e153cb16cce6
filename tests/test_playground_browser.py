"""The playground in a real browser against the live hub and the fake OpenAI upstream, at desktop and phone widths
(tests/browser.py): an answer appears word by word as it streams, with its tokens and price under it once it ends;
a long one stopped mid-stream ends there, and its usage (partial tokens, estimated) is recorded and shown; an image
model's answer is an image in the page."""

import re
from decimal import Decimal

import pytest

from accounts.models import KeyPurpose
from accounts.services import organization_create
from billing.models import UsageRecord
from billing.services import credit_grant
from billing.templatetags.billing_money import money
from tests import factories
from tests.browser import check_page, screenshot, watch_of
from tests.signin import PASSWORD, fresh_throttles, verified_user

pytestmark = pytest.mark.browser
__all__ = ["fresh_throttles"]


def sign_in(page, login: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email or username").fill(login)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard/**")


def owner_of_wonderland(width: str):
    owner = verified_user(f"owner-{width}@example.com")
    organization = organization_create(name="Wonderland", slug=f"wonderland-{width}", owner=owner)
    credit_grant(organization=organization, amount=Decimal("10"), description="test credit")
    return owner


def last_answer(page):
    return page.locator(".playground-turn.assistant").last


def usage_line(page) -> str:
    line = last_answer(page).locator(".usage")
    line.wait_for()
    page.wait_for_function(
        "() => { const l = [...document.querySelectorAll('.playground-turn.assistant .usage')].pop();"
        " return l && / USD/.test(l.textContent); }"
    )
    return line.inner_text()


def test_an_answer_streams_in_and_a_long_one_stops_with_its_usage_recorded(
    page, hub, chat_model, openai_provider, upstream, width
):
    factories.add_model(openai_provider, "openai/slow", "fake-slow")
    owner = owner_of_wonderland(width)
    sign_in(page, owner.email)
    page.get_by_role("link", name="Playground").click()
    page.wait_for_url("**/dashboard/playground/")
    screenshot(page, "empty")
    check_page(page)

    # A short answer, then its usage and price, from the usage record.
    page.get_by_label("Model").select_option("openai/gpt-4o-mini")
    page.get_by_label("System prompt").fill("Be brief.")
    page.get_by_label("Message").fill("hello")
    page.get_by_role("button", name="Send").click()
    line = usage_line(page)
    assert last_answer(page).locator(".text").inner_text() == "Hello! You said: hello"
    record = UsageRecord.objects.get()
    assert record.api_key.purpose == KeyPurpose.PLAYGROUND and record.status == "ok"
    tokens = f"{record.prompt_tokens} prompt + {record.completion_tokens} completion tokens"
    assert line == f"{tokens} · {record.price.normalize():f} USD"
    assert page.get_by_label("Message").input_value() == ""

    # A long one arrives word by word; Stop ends it there.
    page.get_by_label("Model").select_option("openai/slow")
    page.get_by_label("Message").fill("a long story")
    page.get_by_role("button", name="Send").click()
    text = last_answer(page).locator(".text")
    page.wait_for_function(
        "() => /word5\\b/.test([...document.querySelectorAll('.playground-turn.assistant .text')].pop().textContent)"
    )
    early = text.inner_text()
    assert "word150" not in early
    page.wait_for_function(
        "() => /word15\\b/.test([...document.querySelectorAll('.playground-turn.assistant .text')].pop().textContent)"
    )
    assert len(text.inner_text()) > len(early)  # it grew as it came
    screenshot(page, "streaming")
    page.get_by_role("button", name="Stop").click()
    line = usage_line(page)
    stopped_at = text.inner_text()
    assert "word200" not in stopped_at
    assert upstream.wait_for_disconnect(timeout=5), "stopping must cancel the upstream request"
    assert upstream.requests[-1].json["messages"] == [  # the conversation so far, kept by the page
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "Hello! You said: hello"},
        {"role": "user", "content": "a long story"},
    ]
    record = UsageRecord.objects.get(status="cancelled")
    assert record.usage_estimated and 1 <= record.completion_tokens < 150  # of 200 words
    assert record.api_key.purpose == KeyPurpose.PLAYGROUND
    assert line.endswith("(estimated: the provider reported no usage) (stopped)")
    assert f"{record.completion_tokens} completion tokens · {record.price.normalize():f} USD" in line
    # Stopping aborts the page's own request: the browser reports it, as it should.
    watch = watch_of(page)
    aborted = [p for p in watch.problems if re.match(r"request failed: POST \S+/dashboard/playground/chat", p)]
    assert len(aborted) <= 1
    for problem in aborted:
        watch.problems.remove(problem)
    assert page.get_by_role("button", name="Send").is_enabled()
    assert page.get_by_role("button", name="Stop").is_disabled()
    screenshot(page, "stopped")
    check_page(page)

    # Both answers are in the request log, newest first, marked as the playground's, at their prices.
    page.goto("/dashboard/requests/")
    rows = page.locator("tbody tr")
    records = list(UsageRecord.objects.order_by("-created_at", "-id"))
    assert rows.count() == len(records) == 2
    for row, made in zip(rows.all(), records, strict=True):
        assert row.locator(".badge.playground").inner_text() == "Playground"
        assert row.locator(".spend").inner_text() == money(made.price)
        assert made.price > 0
    assert "cancelled" in rows.first.get_attribute("class")
    screenshot(page, "in-the-log")
    check_page(page)


def test_an_image_model_draws_an_image_in_the_page(page, hub, openai_provider, upstream, width):
    model = factories.catalog_model("openai/dall-e-2", kind="image")
    factories.route(model, openai_provider, "dall-e-2")
    factories.rate(model, image_cost=Decimal("0.01"), margin=Decimal(1))
    owner = owner_of_wonderland(width)
    sign_in(page, owner.email)
    page.goto("/dashboard/playground/")
    page.get_by_label("Model").select_option("openai/dall-e-2")
    assert page.get_by_label("System prompt").is_hidden()  # chat settings are for chat models
    page.get_by_label("Message").fill("a red fox")
    page.get_by_role("button", name="Send").click()
    image = page.get_by_role("img", name="The generated image")
    image.wait_for()
    assert image.get_attribute("src").startswith("data:image/png;base64,")
    assert image.evaluate("(img) => img.complete && img.naturalWidth > 0")
    assert usage_line(page) == "1 image · 0.02 USD"
    record = UsageRecord.objects.get()
    assert (record.unit, record.images, record.api_key.purpose) == ("images", 1, KeyPurpose.PLAYGROUND)
    screenshot(page, "image")
    check_page(page)
