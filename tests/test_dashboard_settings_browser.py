"""The settings page in a real browser, at desktop and phone widths (tests/browser.py): an owner saves a name, a
time zone (the page's times follow it) and Japanese (the pages and the footer's switch follow), renames the
organisation, and switches back to English from the footer (the settings follow); a viewer sees the organisation
without its form. Screenshots in English and Japanese."""

import pytest

from accounts.models import Membership, Organization, User
from accounts.services import organization_create
from tests.browser import check_page, screenshot
from tests.signin import PASSWORD, fresh_throttles, verified_user
from tests.test_pages_browser import sign_in

pytestmark = pytest.mark.browser
__all__ = ["fresh_throttles"]

SAVE_PROFILE = 'form[action$="/settings/profile"] button[type="submit"]'
SAVE_PREFERENCES = 'form[action$="/settings/preferences"] button[type="submit"]'
RENAME = 'form[action$="/settings/organisation"] button[type="submit"]'


@pytest.fixture
def acme(transactional_db):
    owner = verified_user("owner@example.com")
    organization = organization_create(name="Acme", owner=owner)
    viewer = verified_user("viewer@example.com")
    Membership.objects.create(user=viewer, organization=organization, role="viewer")
    return organization


def test_an_owner_sets_their_name_zone_and_language_and_renames_the_organisation(page, acme):
    sign_in(page, "owner@example.com", PASSWORD)
    page.goto("/dashboard/settings/")
    assert page.get_by_role("heading", name="Settings", level=1).count() == 1
    assert "Times are shown in UTC" in page.inner_text("#settings-now")
    screenshot(page, "settings-en")
    check_page(page)

    page.locator("#id_first_name").fill("Ada")
    page.locator("#id_last_name").fill("Lovelace")
    page.locator(SAVE_PROFILE).click()
    page.wait_for_url("**/dashboard/settings/")
    assert "Your profile is saved." in page.inner_text("main")
    assert User.objects.get(email="owner@example.com").first_name == "Ada"

    page.locator("#id_time_zone").select_option("Asia/Tokyo")
    page.locator(SAVE_PREFERENCES).click()
    page.wait_for_url("**/dashboard/settings/")
    assert "Asia/Tokyo" in page.inner_text("#settings-now") and "JST" in page.inner_text("#settings-last-login")

    page.locator("#id_name").fill("Acme Corporation")
    page.locator(RENAME).click()
    page.wait_for_url("**/dashboard/settings/")
    assert "The organisation is now called Acme Corporation." in page.inner_text("main")
    assert Organization.objects.get(pk=acme.pk).name == "Acme Corporation"

    page.locator("#id_language").select_option("ja")
    page.locator(SAVE_PREFERENCES).click()
    page.wait_for_url("**/dashboard/settings/")
    assert page.locator("html").get_attribute("lang") == "ja"
    assert page.locator("#language-switch").input_value() == "ja"  # the footer's switch agrees
    assert page.get_by_role("heading", name="設定", level=1).count() == 1
    screenshot(page, "settings-ja")
    check_page(page)

    # The footer's switch, back to English: the saved language follows it.
    page.locator("#language-switch").select_option("en")
    page.get_by_role("button", name="言語を変更").click()
    page.wait_for_url("**/dashboard/settings/")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("#id_language").input_value() == "en"
    assert User.objects.get(email="owner@example.com").language == "en"


@pytest.mark.parametrize("language", ["en", "ja"])
def test_a_viewer_sees_the_organisation_without_its_form(page, acme, language):
    User.objects.filter(email="viewer@example.com").update(language=language)
    sign_in(page, "viewer@example.com", PASSWORD)
    page.goto("/dashboard/settings/")
    assert page.locator("html").get_attribute("lang") == language
    assert page.locator("#id_name").count() == 0 and page.locator(RENAME).count() == 0
    assert page.locator("#id_first_name").count() == 1 and page.locator("#id_time_zone").count() == 1
    assert "acme" in page.inner_text("main")
    screenshot(page, f"settings-viewer-{language}")
    check_page(page)
