"""The dashboard's organisations by HTTP (accounts/views/, accounts/dashboard.py): a new user creates one and
gets the starter credits, a member of several switches, every page is scoped to the current one, and what a
role may not do is neither shown nor allowed."""

from decimal import Decimal

import pytest
from django.test import Client

from accounts.dashboard import SESSION_KEY
from accounts.models import Invitation, Membership, Organization
from billing.models import CreditAccount
from tests.actors import ROLES, make_user
from tests.signin import log_in, verified_user

pytestmark = pytest.mark.django_db


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_signing_in_goes_to_the_dashboard_which_sends_a_user_without_an_organisation_to_create_one():
    verified_user("alice@example.com")
    browser = Client()
    response = log_in(browser, "alice@example.com")
    assert response.status_code == 302 and response.url == "/dashboard/"
    response = browser.get("/dashboard/")
    assert response.status_code == 302 and response.url == "/dashboard/organisations/new"
    page = browser.get(response.url).content.decode()
    assert 'name="name"' in page and 'name="slug"' in page and "csrfmiddlewaretoken" in page


def test_the_dashboard_needs_a_signed_in_user():
    response = Client().get("/dashboard/")
    assert response.status_code == 302 and response.url.startswith("/accounts/login/?next=/dashboard/")
    assert Client().get("/dashboard/organisations/new").status_code == 302


def test_creating_an_organisation_makes_the_user_its_owner_with_the_starter_credits(settings):
    settings.HUB_STARTER_CREDITS = "5.00"
    user = make_user("alice")
    browser = client_of(user)
    response = browser.post("/dashboard/organisations/new", {"name": "Wonderland", "slug": "Wonder-Land"})
    assert response.status_code == 302 and response.url == "/dashboard/"
    organization = Organization.objects.get(slug="wonder-land")
    assert Membership.objects.get(user=user, organization=organization).role == "owner"
    assert CreditAccount.objects.get(organization=organization).balance == Decimal("5.00")
    assert browser.session[SESSION_KEY] == organization.pk
    page = browser.get("/dashboard/").content.decode()
    assert "<h1>Wonderland</h1>" in page and "<strong>Owner</strong>" in page and "Wonderland is ready." in page


def test_the_form_shows_what_is_wrong(world):
    browser = client_of(make_user("alice"))
    taken = browser.post("/dashboard/organisations/new", {"name": "Another Acme", "slug": "acme"})
    assert taken.status_code == 200 and "This short name is taken" in taken.content.decode()
    bad = browser.post("/dashboard/organisations/new", {"name": "", "slug": "not a slug!"})
    page = bad.content.decode()
    assert bad.status_code == 200 and "This field is required." in page and 'class="errorlist"' in page
    assert "Enter a valid “slug”" in page
    assert Organization.objects.count() == 2  # Acme and Globex only


def test_a_member_of_several_switches_and_every_page_follows(world):
    Membership.objects.create(user=world.admin, organization=world.globex, role="viewer")
    browser = client_of(world.admin)
    page = browser.get("/dashboard/").content.decode()
    assert "<h1>Acme</h1>" in page and "<strong>Admin</strong>" in page  # the first, by name
    assert 'action="/dashboard/organisations/switch"' in page and '<option value="globex"' in page
    response = browser.post("/dashboard/organisations/switch", {"organization": "globex"})
    assert response.status_code == 302 and response.url == "/dashboard/"
    page = browser.get("/dashboard/").content.decode()
    assert "<h1>Globex</h1>" in page and "<strong>Viewer</strong>" in page
    # Scoped to Globex, where an admin of Acme is a viewer: inviting is refused there.
    assert browser.post("/dashboard/invitations/new", {"email": "x@example.com", "role": "viewer"}).status_code == 403
    assert not Invitation.objects.filter(email="x@example.com").exists()


def test_a_member_of_one_sees_no_switcher():
    user = make_user("solo")
    client_of(user).post("/dashboard/organisations/new", {"name": "Solo", "slug": "solo"})
    assert "dashboard-switch" not in client_of(user).get("/dashboard/").content.decode()
    assert 'action="/dashboard/organisations/switch"' not in client_of(user).get("/dashboard/").content.decode()


def test_switching_to_an_organisation_one_is_not_in_is_refused(world):
    browser = client_of(world.admin)
    assert browser.post("/dashboard/organisations/switch", {"organization": "globex"}).status_code == 403
    assert browser.post("/dashboard/organisations/switch", {"organization": "nope"}).status_code == 403
    assert browser.get("/dashboard/organisations/switch").status_code == 405  # a POST form only
    assert "<h1>Acme</h1>" in browser.get("/dashboard/").content.decode()


def test_a_member_removed_from_the_current_organisation_falls_back_to_another(world):
    Membership.objects.create(user=world.admin, organization=world.globex, role="viewer")
    browser = client_of(world.admin)
    browser.post("/dashboard/organisations/switch", {"organization": "globex"})
    Membership.objects.filter(user=world.admin, organization=world.globex).delete()
    assert "<h1>Acme</h1>" in browser.get("/dashboard/").content.decode()
    Membership.objects.filter(user=world.admin).delete()
    assert browser.get("/dashboard/").url == "/dashboard/organisations/new"


@pytest.mark.parametrize("role", ROLES)
def test_the_invite_form_is_shown_only_to_roles_that_may_invite_and_refused_to_the_others(world, role, mailoutbox):
    may = role in ("owner", "admin")
    browser = client_of(getattr(world, role))
    assert 'action="/dashboard/invitations/new"' not in browser.get("/dashboard/").content.decode()  # the team page's
    page = browser.get("/dashboard/team/").content.decode()
    assert ('action="/dashboard/invitations/new"' in page) is may
    assert ("Invite someone" in page) is may
    response = browser.post("/dashboard/invitations/new", {"email": f"new-{role}@example.com", "role": "viewer"})
    assert response.status_code == (302 if may else 403)
    assert not may or response.url == "/dashboard/team/"
    assert Invitation.objects.filter(email=f"new-{role}@example.com").exists() is may


def test_an_admin_cannot_invite_an_owner_and_is_told_so(world):
    response = client_of(world.admin).post("/dashboard/invitations/new", {"email": "boss@example.com", "role": "owner"})
    assert response.status_code == 400 and "Only an owner can invite an owner." in response.content.decode()
    assert not Invitation.objects.filter(email="boss@example.com").exists()


def test_inviting_a_member_says_so_on_the_form(world):
    response = client_of(world.owner).post(
        "/dashboard/invitations/new", {"email": "viewer@example.com", "role": "viewer"}
    )
    assert response.status_code == 400 and "viewer@example.com is already a member." in response.content.decode()
