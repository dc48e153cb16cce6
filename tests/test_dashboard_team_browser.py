"""The team page in a real browser, at desktop and phone widths (tests/browser.py): an owner invites someone,
changes a member's role and removes another in place (htmx swaps their row), creates a team and moves a key
into it; the developer, who may do none of that, sees none of those controls. With JavaScript off the same forms
post and the page comes back."""

import pytest

from accounts import services
from accounts.models import Invitation, Membership
from tests.browser import WIDTHS, check_page, screenshot
from tests.signin import PASSWORD, fresh_throttles, verified_user

pytestmark = pytest.mark.browser
__all__ = ["fresh_throttles"]


@pytest.fixture
def wonderland(transactional_db):
    """Alice owns Wonderland, with Bob a developer, Carol a viewer and one key."""
    alice = verified_user("alice@example.com")
    organization = services.organization_create(name="Wonderland", slug="wonderland", owner=alice)
    for name, role in (("bob", "developer"), ("carol", "viewer")):
        Membership.objects.create(user=verified_user(f"{name}@example.com"), organization=organization, role=role)
    key, _ = services.api_key_create(organization=organization, name="rabbit hole", created_by=alice)
    return organization, key


def sign_in(page, login: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Email or username").fill(login)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard/")


def test_an_owner_invites_changes_a_role_removes_a_member_and_moves_a_key_to_a_new_team(page, wonderland, width):
    organization, key = wonderland
    page.on("dialog", lambda dialog: dialog.accept())  # htmx's hx-confirm before a removal
    sign_in(page, "alice@example.com")
    page.get_by_role("link", name="Team").click()
    page.wait_for_url("**/dashboard/team/")
    assert page.get_by_role("heading", name="Team", level=1).count() == 1
    screenshot(page, "team-owner")
    check_page(page)

    page.get_by_label("Email address").fill("dinah@example.com")
    page.get_by_label("Role:", exact=True).select_option("developer")
    page.get_by_role("button", name="Send the invitation").click()
    page.wait_for_url("**/dashboard/team/")
    assert "Invitation sent to dinah@example.com." in page.inner_text("main")
    assert page.locator("table.invitations").get_by_text("dinah@example.com").count() == 1
    assert Invitation.objects.get(email="dinah@example.com").role == "developer"

    # The role changes in place: the row is swapped, the page is not reloaded.
    page.evaluate("window.notReloaded = true")
    page.get_by_label("Role of bob", exact=True).select_option("admin")
    page.get_by_role("button", name="Change the role of bob").click()
    page.get_by_text("bob is now Admin.").wait_for()
    assert page.evaluate("window.notReloaded") is True
    assert Membership.objects.get(organization=organization, user__username="bob").role == "admin"

    page.get_by_role("button", name="Remove carol").click()
    page.get_by_role("button", name="Remove carol").wait_for(state="detached")
    assert page.evaluate("window.notReloaded") is True
    assert not Membership.objects.filter(organization=organization, user__username="carol").exists()
    screenshot(page, "team-changed")

    page.get_by_label("Team name").fill("Looking Glass")
    page.get_by_role("button", name="Create the team").click()
    page.wait_for_url("**/dashboard/team/")
    assert "The team Looking Glass was created." in page.inner_text("main")
    page.get_by_label("Key:", exact=True).select_option(label=f"rabbit hole ({key.prefix}…)")
    page.get_by_label("Team:", exact=True).select_option(label="Looking Glass")
    page.get_by_role("button", name="Move the key").click()
    page.wait_for_url("**/dashboard/team/")
    assert "The key rabbit hole is in the team Looking Glass now." in page.inner_text("main")
    team_row = page.locator("table.teams tr", has=page.get_by_role("rowheader", name="Looking Glass"))
    assert "rabbit hole" in team_row.inner_text() and key.prefix in team_row.inner_text()
    key.refresh_from_db()
    assert key.team is not None and key.team.name == "Looking Glass"
    screenshot(page, "team-with-a-team")
    check_page(page)


def test_a_developer_sees_the_members_and_teams_without_the_controls(page, wonderland, width):
    sign_in(page, "bob@example.com")
    page.goto("/dashboard/team/")
    main = page.inner_text("main")
    assert "alice" in main and "carol" in main and "rabbit hole" in main
    for name in ("Send the invitation", "Change the role of carol", "Remove carol", "Create the team", "Move the key"):
        assert page.get_by_role("button", name=name).count() == 0, name
    assert page.get_by_role("button", name="Leave").count() == 1
    screenshot(page, "team-developer")
    check_page(page)


def test_without_javascript_the_forms_post_and_the_page_comes_back(chromium, hub, wonderland):
    organization, key = wonderland
    context = chromium.new_context(viewport=WIDTHS["phone"], base_url=hub.url, java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, "alice@example.com")
        page.goto("/dashboard/team/")
        page.get_by_label("Role of bob", exact=True).select_option("billing")
        page.get_by_role("button", name="Change the role of bob").click()
        page.wait_for_url("**/dashboard/team/")
        assert "bob is now Billing." in page.inner_text("main")
        assert Membership.objects.get(organization=organization, user__username="bob").role == "billing"
        page.get_by_role("button", name="Remove carol").click()  # no confirmation without script
        page.wait_for_url("**/dashboard/team/")
        assert "carol was removed from the organisation." in page.inner_text("main")
        assert not Membership.objects.filter(organization=organization, user__username="carol").exists()
        page.get_by_label("Team name").fill("Tea Party")
        page.get_by_role("button", name="Create the team").click()
        page.wait_for_url("**/dashboard/team/")
        page.get_by_label("Key:", exact=True).select_option(str(key.pk))
        page.get_by_label("Team:", exact=True).select_option(label="Tea Party")
        page.get_by_role("button", name="Move the key").click()
        page.wait_for_url("**/dashboard/team/")
        key.refresh_from_db()
        assert key.team is not None and key.team.name == "Tea Party"
    finally:
        context.close()
