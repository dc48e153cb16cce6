"""The API keys page in a real browser, at desktop and phone widths (tests/browser.py): an owner creates a key
with limits, copies it with the copy button and calls the live hub with it (the openai SDK); reloading the page
shows no secret again; the limits change in place (htmx); rotating shows the new key once and the old one stops
working; a viewer sees the keys but no button to make one."""

import openai
import pytest

from accounts.models import ApiKey, Membership
from accounts.services import organization_create
from tests.browser import WIDTHS, check_page, screenshot
from tests.factories import api_key
from tests.signin import PASSWORD, fresh_throttles, verified_user

pytestmark = pytest.mark.browser
__all__ = ["fresh_throttles"]


def sign_in(page, login: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email or username").fill(login)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard/**")


def models_seen_with(hub, raw_key: str) -> list[str]:
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=raw_key, max_retries=0)
    return [model.id for model in client.models.list()]


def test_create_copy_use_reload_change_rotate_and_revoke_a_key(page, hub, chat_model, width):
    owner = verified_user(f"owner-{width}@example.com")
    organization_create(name="Wonderland", slug=f"wonderland-{width}", owner=owner)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=hub.url)
    page.on("dialog", lambda dialog: dialog.accept())  # the revoke and rotate buttons' confirmations
    sign_in(page, owner.email)

    page.get_by_role("link", name="API keys", exact=True).click()
    page.wait_for_url("**/dashboard/keys/")
    assert "This organisation has no keys yet." in page.inner_text("main")
    page.get_by_role("link", name="Create a key").click()
    page.wait_for_url("**/dashboard/keys/new")
    page.get_by_label("Name:", exact=True).fill("ci runner")
    page.get_by_label("Allowed models").fill("openai/*")
    page.get_by_label("Requests per minute").fill("60")
    screenshot(page, "create-form")
    check_page(page)
    page.get_by_role("button", name="Create the key").click()
    page.wait_for_url("**/dashboard/keys/new")

    # Shown once, copied by the button, and it works against the hub.
    assert page.get_by_role("heading", name="Key created").count() == 1
    raw = page.get_by_label("Your new key").input_value()
    assert raw.startswith("sk-hub-")
    page.get_by_role("button", name="Copy").click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == raw
    screenshot(page, "created")
    check_page(page)
    key = ApiKey.objects.get(name="ci runner")
    assert key.prefix == raw[: len(key.prefix)] and key.allowed_models == ["openai/*"] and key.rpm_limit == 60
    assert "openai/gpt-4o-mini" in models_seen_with(hub, raw)
    with pytest.raises(openai.AuthenticationError):
        models_seen_with(hub, raw[:-2] + "xx")

    # Reloading sends the form again: no second key, and no secret.
    page.reload()
    page.wait_for_url(f"**/dashboard/keys/{key.pk}/")
    assert raw not in page.content()
    assert "shown once" in page.inner_text("main")
    assert ApiKey.objects.filter(name="ci runner").count() == 1
    page.goto("/dashboard/keys/")
    assert raw not in page.content() and key.prefix in page.inner_text("main")
    assert "60 requests/min" in page.inner_text("main")
    screenshot(page, "list")
    check_page(page)

    # The limits change in place.
    page.get_by_role("link", name="ci runner").click()
    page.wait_for_url(f"**/dashboard/keys/{key.pk}/")
    page.get_by_label("Tokens per minute").fill("5000")
    page.get_by_label("Response cache (seconds)").fill("300")
    page.get_by_role("button", name="Save the limits").click()
    page.get_by_text("The key's limits are saved.").wait_for()
    assert page.url.endswith(f"/dashboard/keys/{key.pk}/")  # no page load: htmx swapped the section
    key.refresh_from_db()
    assert (key.tpm_limit, key.response_cache_seconds) == (5000, 300)
    assert page.get_by_label("Response cache (seconds)").input_value() == "300"
    screenshot(page, "detail")
    check_page(page)

    # Rotating: the new key once, the old one refused at once.
    page.get_by_role("button", name="Rotate the key").click()
    page.get_by_role("heading", name="Key rotated").wait_for()
    rotated = page.get_by_label("Your new key").input_value()
    assert rotated.startswith("sk-hub-") and rotated != raw
    screenshot(page, "rotated")
    with pytest.raises(openai.AuthenticationError):
        models_seen_with(hub, raw)
    assert "openai/gpt-4o-mini" in models_seen_with(hub, rotated)
    new_key = ApiKey.objects.get(revoked_at=None, name="ci runner")
    assert new_key.tpm_limit == 5000 and new_key.allowed_models == ["openai/*"]
    assert new_key.response_cache_seconds == 300

    # Revoking the new one.
    page.get_by_role("link", name="Done: see the key").click()
    page.wait_for_url(f"**/dashboard/keys/{new_key.pk}/")
    assert rotated not in page.content()
    page.get_by_role("button", name="Revoke the key").click()
    page.get_by_text("is revoked: it no longer works.").wait_for()
    with pytest.raises(openai.AuthenticationError):
        models_seen_with(hub, rotated)
    assert page.get_by_role("button", name="Rotate the key").count() == 0
    screenshot(page, "revoked")
    check_page(page)


def test_a_viewer_sees_the_keys_but_no_button_to_make_one(page, hub, width):
    owner, viewer = verified_user(f"owner-{width}@example.com"), verified_user(f"viewer-{width}@example.com")
    organization = organization_create(name="Wonderland", slug=f"wonderland-{width}", owner=owner)
    Membership.objects.create(user=viewer, organization=organization, role="viewer")
    key, raw = api_key(organization, "shared app", limits={"rpm_limit": 30, "response_cache_seconds": 0})
    sign_in(page, viewer.email)
    page.goto("/dashboard/keys/")
    assert key.prefix in page.inner_text("main") and "shared app" in page.inner_text("main")
    assert page.get_by_role("link", name="Create a key").count() == 0
    page.get_by_role("link", name="shared app").click()
    page.wait_for_url(f"**/dashboard/keys/{key.pk}/")
    assert "30" in page.inner_text("#key-limits") and page.get_by_role("button").filter(has_text="Revoke").count() == 0
    assert "Response cache\noff" in page.inner_text("#key-limits")
    assert raw not in page.content()
    screenshot(page, "viewer-detail")
    check_page(page)


def test_without_javascript_a_key_is_created_limited_and_revoked_by_plain_forms(chromium, hub, chat_model):
    """Every form that moves keys works with scripts off: plain POSTs, the answer or a redirect."""
    owner = verified_user("owner@example.com")
    organization_create(name="Wonderland", slug="wonderland", owner=owner)
    context = chromium.new_context(java_script_enabled=False, base_url=hub.url, viewport=WIDTHS["phone"])
    try:
        page = context.new_page()
        sign_in(page, owner.email)
        page.goto("/dashboard/keys/new")
        page.get_by_label("Name:", exact=True).fill("no script")
        page.get_by_role("button", name="Create the key").click()
        raw = page.get_by_label("Your new key").input_value()
        assert "openai/gpt-4o-mini" in models_seen_with(hub, raw)
        page.get_by_role("link", name="Done: see the key").click()
        page.get_by_label("Allowed models").fill("anthropic/*")
        page.get_by_role("button", name="Save the limits").click()
        page.get_by_text("The key's limits are saved.").wait_for()
        assert ApiKey.objects.get(name="no script").allowed_models == ["anthropic/*"]
        assert "openai/gpt-4o-mini" not in models_seen_with(hub, raw)  # the gateway forgot the cached key
        page.get_by_role("button", name="Revoke the key").click()  # no confirmation without the script
        page.get_by_text("is revoked: it no longer works.").wait_for()
        with pytest.raises(openai.AuthenticationError):
            models_seen_with(hub, raw)
    finally:
        context.close()
