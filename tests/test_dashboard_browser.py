"""The dashboard's organisations in a real browser, at desktop and phone widths (tests/browser.py): a visitor
signs up, follows the verification link from the outbox, creates an organisation and sees it with the starter
credits; the owner invites a second person from the team page, who signs up from the email's link and lands as a
viewer."""

import re
from decimal import Decimal
from urllib.parse import urlsplit

import pytest

from accounts.models import Membership
from billing.models import CreditAccount
from tests.browser import check_page, screenshot
from tests.signin import PASSWORD, fresh_throttles, mails_to

pytestmark = pytest.mark.browser
__all__ = ["fresh_throttles"]


def link_to(address: str, prefix: str) -> str:
    """The path of the first link under `prefix` in the last mail to `address`."""
    messages = mails_to(address)
    assert messages, f"no mail to {address}"
    found = re.search(rf"https?://[^/\s]+({re.escape(prefix)}\S+)", messages[-1].body)
    assert found, messages[-1].body
    return found[1]


def sign_up_and_verify(page, email: str, *, prefilled: bool = False) -> None:
    if prefilled:
        assert page.locator('input[name="email"]').input_value() == email
    else:
        page.locator('input[name="email"]').fill(email)
    page.locator('input[name="password1"]').fill(PASSWORD)
    page.locator('input[name="password2"]').fill(PASSWORD)
    page.get_by_role("button", name="Sign Up").click()
    page.wait_for_url("**/accounts/confirm-email/")
    page.goto(link_to(email, "/accounts/confirm-email/"))
    page.get_by_role("button", name="Confirm").click()


def test_sign_up_create_an_organisation_and_invite_a_viewer_who_signs_up_from_the_email(page, settings, width):
    settings.HUB_STARTER_CREDITS = "5.00"
    owner, viewer = f"owner-{width}@example.com", f"viewer-{width}@example.com"

    page.goto("/accounts/signup/")
    sign_up_and_verify(page, owner)
    page.wait_for_url("**/dashboard/organisations/new")
    screenshot(page, "create-organisation")
    check_page(page)
    page.get_by_label("Name:", exact=True).fill("Wonderland")
    page.get_by_label("Short name").fill(f"wonderland-{width}")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/dashboard/")
    assert page.get_by_role("heading", name="Wonderland", level=1).count() == 1
    assert "You are a member as Owner." in page.inner_text("main")
    membership = Membership.objects.get(user__email=owner)  # the only one yet
    assert membership.role == "owner"
    assert CreditAccount.objects.get(organization=membership.organization).balance == Decimal("5.00")
    screenshot(page, "dashboard-owner")
    check_page(page)

    # A second organisation brings the header's switcher; switching back is a plain form post.
    page.get_by_role("link", name="Create another organisation").click()
    page.get_by_label("Name:", exact=True).fill("Looking Glass")
    page.get_by_label("Short name").fill(f"looking-glass-{width}")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/dashboard/")
    assert page.get_by_role("heading", name="Looking Glass", level=1).count() == 1
    page.get_by_label("Organisation").select_option(f"wonderland-{width}")
    screenshot(page, "switcher")
    check_page(page)
    page.get_by_role("button", name="Switch").click()
    page.wait_for_url("**/dashboard/")
    assert page.get_by_role("heading", name="Wonderland", level=1).count() == 1

    page.get_by_role("link", name="Team").click()
    page.wait_for_url("**/dashboard/team/")
    page.get_by_label("Email address").fill(viewer)
    page.get_by_label("Role:", exact=True).select_option("viewer")
    page.get_by_role("button", name="Send the invitation").click()
    page.wait_for_url("**/dashboard/team/")
    assert f"Invitation sent to {viewer}." in page.inner_text("main")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/")  # the home page, before the next goto cuts it off

    page.goto(link_to(viewer, "/dashboard/invitations/"))
    assert "Join Wonderland" in page.inner_text("main") and "Viewer" in page.inner_text("main")
    screenshot(page, "invitation")
    check_page(page)
    page.get_by_role("link", name="Sign up").last.click()  # the page's button, not the header's
    sign_up_and_verify(page, viewer, prefilled=True)
    page.wait_for_url("**/dashboard/invitations/*/")
    screenshot(page, "invitation-signed-in")
    page.get_by_role("button", name="Accept the invitation").click()
    page.wait_for_url("**/dashboard/")
    main = page.inner_text("main")
    assert "You joined Wonderland as Viewer." in main and "You are a member as Viewer." in main
    page.get_by_role("link", name="Team").click()
    page.wait_for_url("**/dashboard/team/")
    assert page.get_by_role("button", name="Send the invitation").count() == 0
    assert Membership.objects.get(user__email=viewer).role == "viewer"
    screenshot(page, "dashboard-viewer")
    check_page(page)
