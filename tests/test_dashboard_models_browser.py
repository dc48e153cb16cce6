"""The catalogue pages in a real browser, at desktop and phone widths (tests/browser.py): a member opens the
Models page, copies a model's id with its copy button, narrows the list by kind and by search (htmx swaps the
results in and the address bar follows); a visitor reads the public pricing page without signing in."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from accounts.models import Membership
from accounts.services import organization_create
from hub import catalogue as hub_catalogue
from providers.models import CatalogModel, Credential
from tests import factories
from tests.browser import check_page, screenshot
from tests.signin import PASSWORD, fresh_throttles, verified_user

pytestmark = pytest.mark.browser
__all__ = ["fresh_throttles"]


@pytest.fixture
def catalogue(chat_model, openai_provider):
    CatalogModel.objects.filter(pk=chat_model.pk).update(context_window=128000, max_output_tokens=16384)
    image = factories.add_model(openai_provider, "openai/gpt-image-1", "gpt-image-1", image_price=Decimal("0.04"))
    CatalogModel.objects.filter(pk=image.pk).update(kind="image")
    factories.add_model(openai_provider, "openai/text-embedding-3-small", "text-embedding-3-small")
    CatalogModel.objects.filter(public_id="openai/text-embedding-3-small").update(kind="embedding")


def sign_in(page, login: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email or username").fill(login)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard/**")


def shown(page) -> list[str]:
    return page.locator("table.catalogue tbody tr").evaluate_all("rows => rows.map(r => r.dataset.model)")


def test_copy_an_id_and_filter_the_models(page, hub, catalogue, width):
    owner = verified_user(f"owner-{width}@example.com", password=PASSWORD)
    organization = organization_create(name="Wonderland", slug=f"wonderland-{width}", owner=owner)
    viewer = verified_user(f"viewer-{width}@example.com", password=PASSWORD)
    Membership.objects.create(user=viewer, organization=organization, role="viewer")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=hub.url)
    sign_in(page, viewer.email)

    page.get_by_role("link", name="Models", exact=True).click()
    page.wait_for_url("**/dashboard/models/")
    assert shown(page) == ["openai/gpt-4o-mini", "openai/gpt-image-1", "openai/text-embedding-3-small"]
    assert page.locator("#catalogue-results .availability.available").count() == 3
    screenshot(page, "models")
    check_page(page)

    page.get_by_role("button", name="Copy openai/gpt-image-1").click()
    page.get_by_role("button", name="Copy openai/gpt-image-1").filter(has_text="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == "openai/gpt-image-1"

    page.get_by_label("Kind").select_option("image")
    page.wait_for_url("**/dashboard/models/?*kind=image*")
    expect(page.locator("table.catalogue tbody tr")).to_have_count(1)
    assert shown(page) == ["openai/gpt-image-1"]
    page.get_by_label("Kind").select_option("")
    page.get_by_label("Search").fill("EMBEDDING")
    page.wait_for_url("**/dashboard/models/?*q=EMBEDDING*")
    expect(page.locator("table.catalogue tbody tr")).to_have_count(1)
    assert shown(page) == ["openai/text-embedding-3-small"]
    screenshot(page, "filtered")
    check_page(page)

    # Reloading the searched address gives the same list, from the server alone.
    page.reload()
    assert shown(page) == ["openai/text-embedding-3-small"]
    assert page.get_by_label("Search").input_value() == "EMBEDDING"


def test_filters_work_without_javascript(chromium, hub, catalogue, width):
    from tests.browser import WIDTHS

    context = chromium.new_context(viewport=WIDTHS[width], base_url=hub.url, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto("/pricing/")
        page.get_by_label("Kind").select_option("embedding")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url("**/pricing/?*kind=embedding*")
        assert shown(page) == ["openai/text-embedding-3-small"]
    finally:
        context.close()


def test_the_public_pricing_page_needs_no_sign_in(page, hub, catalogue):
    page.goto("/")
    page.get_by_role("link", name="Pricing").click()
    page.wait_for_url("**/pricing/")
    assert page.get_by_role("heading", name="Pricing").count() == 1
    assert shown(page) == ["openai/gpt-4o-mini", "openai/gpt-image-1", "openai/text-embedding-3-small"]
    assert "0.04" in page.locator('tr[data-model="openai/gpt-image-1"]').inner_text()
    screenshot(page, "pricing")
    check_page(page)


def test_availability_refreshes_every_30_seconds(page, hub, catalogue, width):
    owner = verified_user(f"owner-{width}@example.com", password=PASSWORD)
    organization_create(name="Wonderland", slug=f"wonderland-{width}", owner=owner)
    page.clock.install()
    sign_in(page, owner.email)
    page.goto("/dashboard/models/?kind=chat")
    badge = page.locator('tr[data-model="openai/gpt-4o-mini"] .availability')
    expect(badge).to_have_class("availability available")
    Credential.objects.update(last_check_ok=False)  # the health check found the one credential failing
    hub_catalogue.invalidate()  # as the catalogue's refresh would within HUB_CATALOGUE_CACHE_SECONDS
    page.clock.run_for("00:31")
    expect(badge).to_have_class("availability unavailable")
    assert page.get_by_text("Unavailable").count() == 1
    assert page.url.endswith("/dashboard/models/?kind=chat")
