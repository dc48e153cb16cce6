"""The dashboard's team page by HTTP (accounts/views/team.py): members with their roles, invitations, teams of keys.

Every role of Acme (tests/actors.py) against every action: an allowed one changes the database and comes back to
the page, a refused one is answered 403 and changes nothing, and the page shows no control the role may not use.
The owners' rules are the services': only an owner makes, unmakes or removes owners, and the last owner stays.
Another organisation's member, invitation or team is not found (404)."""

import pytest
from django.test import Client

from accounts import permissions, services, teams
from accounts.models import ApiKey, Invitation, Membership, Team
from tests.actors import ROLES, membership_of

pytestmark = pytest.mark.django_db

PAGE = "/dashboard/team/"


def client_of(user, **headers) -> Client:
    client = Client(**headers)
    client.force_login(user)
    return client


def may(role: str, action: str) -> bool:
    return permissions.allows(role, action)


def member_row(page: str, membership) -> str:
    start = page.index(f'<tr id="member-{membership.pk}">')
    return page[start : page.index("</tr>", start)]


def role_url(membership) -> str:
    return f"/dashboard/team/members/{membership.pk}/role"


def remove_url(membership) -> str:
    return f"/dashboard/team/members/{membership.pk}/remove"


@pytest.fixture
def sales(world):
    """Acme's team "Sales", holding Acme's key."""
    team = teams.team_create(organization=world.acme, name="Sales")
    teams.api_key_team_set(api_key=world.acme_key, team=team)
    return team


@pytest.fixture
def pending(world):
    invitation, _ = services.invitation_create(
        organization=world.acme, email="pending@example.com", role="developer", actor_role="owner"
    )
    return invitation


# The page, as each role sees it.


@pytest.mark.parametrize("role", ROLES)
def test_every_member_sees_the_members_and_their_roles_and_only_the_controls_of_their_role(world, role, sales, pending):
    response = client_of(getattr(world, role)).get(PAGE)
    page = response.content.decode()
    assert response.status_code == 200 and "<h1>Team</h1>" in page
    for name in ROLES:
        assert f"<strong>{name}</strong>" in page
    developer = membership_of(world.developer, world.acme)
    row = member_row(page, developer)
    if may(role, "change_roles"):
        assert '<option value="developer" selected>Developer</option>' in row
    else:
        assert "Developer" in row and "<select" not in row
    assert (f'action="{role_url(developer)}"' in page) is may(role, "change_roles")
    assert (f'action="{remove_url(developer)}"' in page) is may(role, "remove_members")
    assert ('action="/dashboard/invitations/new"' in page) is may(role, "invite_members")
    assert ("pending@example.com" in page) is may(role, "invite_members")
    assert (f'action="/dashboard/team/invitations/{pending.pk}/revoke"' in page) is may(role, "invite_members")
    assert ('<h2 id="teams-heading">Teams</h2>' in page) is may(role, "view_keys")
    assert ("acme app" in page and world.acme_key.prefix in page) is may(role, "view_keys")
    assert ('action="/dashboard/team/teams/new"' in page) is may(role, "manage_teams")
    assert (f'action="/dashboard/team/teams/{sales.pk}/rename"' in page) is may(role, "manage_teams")
    assert (f'action="/dashboard/team/teams/{sales.pk}/delete"' in page) is may(role, "manage_teams")
    assert ('action="/dashboard/team/keys/team"' in page) is may(role, "manage_teams")
    assert 'action="/dashboard/team/leave"' in page  # everyone may leave (the last owner is told no)
    assert "globex" not in page.lower() and "new@example.com" not in page  # another organisation's


def test_the_page_needs_a_signed_in_member(world):
    assert Client().get(PAGE).url.startswith("/accounts/login/")
    from tests.actors import make_user

    assert client_of(make_user("loner")).get(PAGE).url == "/dashboard/organisations/new"


def test_an_admin_is_offered_no_owner_role_and_no_control_over_an_owner(world):
    page = client_of(world.admin).get(PAGE).content.decode()
    owner = membership_of(world.owner, world.acme)
    assert f'action="{role_url(owner)}"' not in page and f'action="{remove_url(owner)}"' not in page
    assert '<option value="owner"' not in page  # neither in a member's role nor in the invitation's
    assert "Only an owner makes, unmakes, invites or removes owners." in page
    owners_page = client_of(world.owner).get(PAGE).content.decode()
    assert '<option value="owner"' in owners_page and "Only an owner makes" not in owners_page


# Changing a role.


@pytest.mark.parametrize("role", ROLES)
def test_changing_a_role_is_for_the_roles_that_may(world, role):
    developer, browser = membership_of(world.developer, world.acme), client_of(getattr(world, role))
    response = browser.post(role_url(developer), {"role": "billing"})
    developer.refresh_from_db()
    if may(role, "change_roles"):
        assert response.status_code == 302 and response.url == PAGE
        assert developer.role == "billing"
        assert "developer is now Billing." in browser.get(PAGE).content.decode()
    else:
        assert response.status_code == 403 and developer.role == "developer"


def test_only_an_owner_makes_or_unmakes_an_owner(world):
    admin, owner = client_of(world.admin), membership_of(world.owner, world.acme)
    developer = membership_of(world.developer, world.acme)
    refused = admin.post(role_url(owner), {"role": "viewer"})
    assert refused.status_code == 400 and "Only an owner can make or unmake owners." in refused.content.decode()
    refused = admin.post(role_url(developer), {"role": "owner"})
    assert refused.status_code == 400 and "Only an owner can make or unmake owners." in refused.content.decode()
    owner.refresh_from_db()
    developer.refresh_from_db()
    assert owner.role == "owner" and developer.role == "developer"
    assert client_of(world.owner).post(role_url(developer), {"role": "owner"}).status_code == 302
    developer.refresh_from_db()
    assert developer.role == "owner"


def test_the_last_owner_cannot_be_demoted_and_is_told_why(world):
    owner = membership_of(world.owner, world.acme)
    refused = client_of(world.owner).post(role_url(owner), {"role": "admin"})
    page = refused.content.decode()
    assert refused.status_code == 400 and "The last owner cannot be demoted" in page and 'role="alert"' in page
    owner.refresh_from_db()
    assert owner.role == "owner"


def test_an_unknown_role_is_refused(world):
    developer = membership_of(world.developer, world.acme)
    refused = client_of(world.owner).post(role_url(developer), {"role": "emperor"})
    assert refused.status_code == 400 and "Select a valid choice." in refused.content.decode()
    developer.refresh_from_db()
    assert developer.role == "developer"


def test_changing_a_role_with_htmx_answers_the_row_alone(world):
    developer = membership_of(world.developer, world.acme)
    browser = client_of(world.owner, HTTP_HX_REQUEST="true")
    response = browser.post(role_url(developer), {"role": "viewer"})
    row = response.content.decode()
    assert response.status_code == 200 and "<html" not in row
    assert row.strip().startswith(f'<tr id="member-{developer.pk}">') and "developer is now Viewer." in row
    assert 'value="viewer" selected' in row
    developer.refresh_from_db()
    assert developer.role == "viewer"
    # A refusal comes back in the row too (htmx swaps only a success's answer, hence 200).
    owner = membership_of(world.owner, world.acme)
    refused = client_of(world.admin, HTTP_HX_REQUEST="true").post(role_url(owner), {"role": "viewer"})
    assert refused.status_code == 200 and "Only an owner can make or unmake owners." in refused.content.decode()
    assert f'<tr id="member-{owner.pk}">' in refused.content.decode()


def test_changing_ones_own_role_with_htmx_reloads_the_page(world):
    Membership.objects.filter(user=world.admin, organization=world.acme).update(role="owner")
    me = membership_of(world.admin, world.acme)
    response = client_of(world.admin, HTTP_HX_REQUEST="true").post(role_url(me), {"role": "viewer"})
    assert response.status_code == 200 and response["HX-Redirect"] == PAGE
    me.refresh_from_db()
    assert me.role == "viewer"


# Removing a member, and leaving.


@pytest.mark.parametrize("role", ROLES)
def test_removing_a_member_is_for_the_roles_that_may(world, role):
    viewer, browser = membership_of(world.viewer, world.acme), client_of(getattr(world, role))
    response = browser.post(remove_url(viewer))
    gone = not Membership.objects.filter(pk=viewer.pk).exists()
    if may(role, "remove_members"):
        assert response.status_code == 302 and gone
        assert "viewer was removed from the organisation." in browser.get(PAGE).content.decode()
    else:
        assert response.status_code == 403 and not gone


def test_an_admin_cannot_remove_an_owner(world):
    owner = membership_of(world.owner, world.acme)
    refused = client_of(world.admin).post(remove_url(owner))
    assert refused.status_code == 400 and "Only an owner can remove an owner." in refused.content.decode()
    assert Membership.objects.filter(pk=owner.pk).exists()


def test_removing_with_htmx_answers_an_empty_row(world):
    viewer = membership_of(world.viewer, world.acme)
    response = client_of(world.admin, HTTP_HX_REQUEST="true").post(remove_url(viewer))
    assert response.status_code == 200 and response.content == b""
    assert not Membership.objects.filter(pk=viewer.pk).exists()


@pytest.mark.parametrize("role", ROLES[1:])
def test_any_member_but_the_last_owner_may_leave(world, role):
    browser = client_of(getattr(world, role))
    response = browser.post("/dashboard/team/leave")
    assert response.status_code == 302 and response.url == "/dashboard/"
    assert not Membership.objects.filter(user=getattr(world, role), organization=world.acme).exists()
    assert browser.get("/dashboard/").url == "/dashboard/organisations/new"  # in no organisation now


def test_the_last_owner_cannot_leave_and_is_told_why(world):
    refused = client_of(world.owner).post("/dashboard/team/leave")
    assert refused.status_code == 400 and "The last owner cannot leave or be removed" in refused.content.decode()
    assert Membership.objects.filter(user=world.owner, organization=world.acme).exists()


def test_an_owner_may_leave_when_another_owner_stays(world):
    Membership.objects.filter(user=world.admin, organization=world.acme).update(role="owner")
    assert client_of(world.owner).post("/dashboard/team/leave").status_code == 302
    assert not Membership.objects.filter(user=world.owner, organization=world.acme).exists()


def test_the_pages_forms_are_posts(world):
    developer = membership_of(world.developer, world.acme)
    browser = client_of(world.owner)
    for url in (role_url(developer), remove_url(developer), "/dashboard/team/leave", "/dashboard/team/teams/new"):
        assert browser.get(url).status_code == 405, url


# Invitations.


@pytest.mark.parametrize("role", ROLES)
def test_inviting_from_the_team_page_is_for_the_roles_that_may(
    world, role, mailoutbox, django_capture_on_commit_callbacks
):
    browser = client_of(getattr(world, role))
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post("/dashboard/invitations/new", {"email": f"new-{role}@example.com", "role": "viewer"})
    invited = Invitation.objects.filter(organization=world.acme, email=f"new-{role}@example.com").exists()
    if may(role, "invite_members"):
        assert response.status_code == 302 and response.url == PAGE and invited
        page = browser.get(PAGE).content.decode()
        assert f"Invitation sent to new-{role}@example.com." in page
        assert f"<td>new-{role}@example.com</td>" in page  # now pending
        assert [message.to for message in mailoutbox] == [[f"new-{role}@example.com"]]
    else:
        assert response.status_code == 403 and not invited and not mailoutbox


def test_an_invalid_invitation_is_shown_on_the_team_page(world):
    response = client_of(world.owner).post("/dashboard/invitations/new", {"email": "not an address", "role": "viewer"})
    page = response.content.decode()
    assert response.status_code == 400 and "<h1>Team</h1>" in page and "Enter a valid email address." in page


@pytest.mark.parametrize("role", ROLES)
def test_withdrawing_an_invitation_is_for_the_roles_that_may(world, role, pending):
    browser = client_of(getattr(world, role))
    response = browser.post(f"/dashboard/team/invitations/{pending.pk}/revoke")
    pending.refresh_from_db()
    if may(role, "invite_members"):
        assert response.status_code == 302 and pending.status == "revoked"
        page = browser.get(PAGE).content.decode()
        assert "The invitation to pending@example.com was withdrawn." in page
        assert "<td>pending@example.com</td>" not in page  # no longer pending
    else:
        assert response.status_code == 403 and pending.status == "pending"


def test_an_invitation_no_longer_pending_cannot_be_withdrawn(world, pending):
    services.invitation_revoke(invitation=pending)
    refused = client_of(world.owner).post(f"/dashboard/team/invitations/{pending.pk}/revoke")
    assert refused.status_code == 400 and "This invitation is revoked." in refused.content.decode()


# Teams of keys.


@pytest.mark.parametrize("role", ROLES)
def test_creating_renaming_and_deleting_a_team_is_for_the_roles_that_may(world, role, sales):
    browser = client_of(getattr(world, role))
    created = browser.post("/dashboard/team/teams/new", {"name": "Research"})
    renamed = browser.post(f"/dashboard/team/teams/{sales.pk}/rename", {"name": "Marketing"})
    names = set(Team.objects.filter(organization=world.acme).values_list("name", flat=True))
    if may(role, "manage_teams"):
        assert created.status_code == renamed.status_code == 302
        assert names == {"Research", "Marketing"}
        assert "The team is now called Marketing." in browser.get(PAGE).content.decode()
    else:
        assert created.status_code == renamed.status_code == 403 and names == {"Sales"}
    deleted = browser.post(f"/dashboard/team/teams/{sales.pk}/delete")
    if may(role, "manage_teams"):
        assert deleted.status_code == 302 and not Team.objects.filter(pk=sales.pk).exists()
        world.acme_key.refresh_from_db()
        assert world.acme_key.team is None  # the key stays, in no team
    else:
        assert deleted.status_code == 403 and Team.objects.filter(pk=sales.pk).exists()


@pytest.mark.parametrize("role", ROLES)
def test_moving_a_key_to_a_team_is_for_the_roles_that_may(world, role, sales):
    research = teams.team_create(organization=world.acme, name="Research")
    response = client_of(getattr(world, role)).post(
        "/dashboard/team/keys/team", {"api_key": world.acme_key.pk, "team": research.pk}
    )
    world.acme_key.refresh_from_db()
    if may(role, "manage_teams"):
        assert response.status_code == 302 and world.acme_key.team == research
    else:
        assert response.status_code == 403 and world.acme_key.team == sales


def test_a_key_moves_to_no_team_and_the_page_lists_it_there(world, sales):
    browser = client_of(world.admin)
    page = browser.get(PAGE).content.decode()
    sales_row = page[page.index(f'<tr id="team-{sales.pk}">') : page.index('<tr class="no-team">')]
    assert "acme app" in sales_row and f"<code>{world.acme_key.prefix}…</code>" in sales_row
    assert browser.post("/dashboard/team/keys/team", {"api_key": world.acme_key.pk, "team": ""}).status_code == 302
    world.acme_key.refresh_from_db()
    assert world.acme_key.team is None
    page = browser.get(PAGE).content.decode()
    assert "The key acme app is in no team now." in page
    no_team = page[page.index('<tr class="no-team">') :]
    assert "acme app" in no_team[: no_team.index("</tr>")]


def test_a_second_team_of_the_same_name_is_refused_on_the_form(world, sales):
    browser = client_of(world.owner)
    refused = browser.post("/dashboard/team/teams/new", {"name": "Sales"})
    assert refused.status_code == 400 and "There is a team named &#x27;Sales&#x27; already." in refused.content.decode()
    research = teams.team_create(organization=world.acme, name="Research")
    refused = browser.post(f"/dashboard/team/teams/{research.pk}/rename", {"name": "Sales"})
    assert refused.status_code == 400 and "There is a team named" in refused.content.decode()
    empty = browser.post("/dashboard/team/teams/new", {"name": "   "})
    assert empty.status_code == 400 and "This field is required." in empty.content.decode()
    assert sorted(Team.objects.filter(organization=world.acme).values_list("name", flat=True)) == ["Research", "Sales"]


def test_a_revoked_key_is_listed_but_cannot_be_moved(world, sales):
    services.api_key_revoke(api_key=world.acme_key)
    browser = client_of(world.owner)
    page = browser.get(PAGE).content.decode()
    assert "Revoked" in page and f'<option value="{world.acme_key.pk}"' not in page
    refused = browser.post("/dashboard/team/keys/team", {"api_key": world.acme_key.pk, "team": ""})
    assert refused.status_code == 400 and "Select a valid choice." in refused.content.decode()
    assert ApiKey.objects.get(pk=world.acme_key.pk).team == sales


# Another organisation's.


def test_another_organisations_member_invitation_and_team_are_not_found(world):
    globex_team = teams.team_create(organization=world.globex, name="Globex team")
    browser = client_of(world.owner)
    member = world.globex_membership
    assert browser.post(role_url(member), {"role": "viewer"}).status_code == 404
    assert browser.post(remove_url(member)).status_code == 404
    assert browser.post(f"/dashboard/team/invitations/{world.globex_invitation.pk}/revoke").status_code == 404
    assert browser.post(f"/dashboard/team/teams/{globex_team.pk}/rename", {"name": "Mine"}).status_code == 404
    assert browser.post(f"/dashboard/team/teams/{globex_team.pk}/delete").status_code == 404
    # A key or team of another organisation is no choice of the move form's.
    moved = browser.post("/dashboard/team/keys/team", {"api_key": world.globex_key.pk, "team": ""})
    assert moved.status_code == 400
    moved = browser.post("/dashboard/team/keys/team", {"api_key": world.acme_key.pk, "team": globex_team.pk})
    assert moved.status_code == 400
    member.refresh_from_db()
    world.globex_invitation.refresh_from_db()
    world.acme_key.refresh_from_db()
    globex_team.refresh_from_db()
    assert member.role == "developer" and world.globex_invitation.status == "pending"
    assert globex_team.name == "Globex team" and world.acme_key.team is None


def test_the_row_forms_swap_their_row_with_htmx_and_post_without_it(world):
    page = client_of(world.owner).get(PAGE).content.decode()
    row = member_row(page, membership_of(world.developer, world.acme))
    developer = membership_of(world.developer, world.acme)
    for url in (role_url(developer), remove_url(developer)):
        assert f'action="{url}" hx-post="{url}" hx-target="closest tr" hx-swap="outerHTML"' in row
    assert 'hx-confirm="Remove developer from the organisation?"' in row


def test_an_admin_removing_themselves_has_left(world):
    me = membership_of(world.admin, world.acme)
    response = client_of(world.admin, HTTP_HX_REQUEST="true").post(remove_url(me))
    assert response.status_code == 200 and response["HX-Redirect"] == "/dashboard/"
    assert not Membership.objects.filter(pk=me.pk).exists()
