"""Invitations end to end by HTTP: the email's link opens the dashboard's page, which shows the organisation and
role, signs the invitee up (the email prefilled; in invite mode this address may sign up) or in, then accepts
by POST into the organisation with the invited role. Each state that cannot be accepted says which."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.models import Invitation, Membership
from tests.signin import PASSWORD, fresh_throttles, link_in, mails_to, sign_up, verified_user

pytestmark = pytest.mark.django_db
__all__ = ["fresh_throttles"]


@pytest.fixture
def invitation(world, django_capture_on_commit_callbacks):
    """Acme's owner invites newcomer@example.com as a viewer; the email's link, as a path."""
    with django_capture_on_commit_callbacks(execute=True):
        response = Client()
        response.force_login(world.owner)
        assert (
            response.post("/dashboard/invitations/new", {"email": "newcomer@example.com", "role": "viewer"}).status_code
            == 302
        )
    (message,) = mails_to("newcomer@example.com")
    return Invitation.objects.get(email="newcomer@example.com"), link_in(message, "/dashboard/invitations/")


def test_the_email_links_the_page_which_shows_the_organisation_and_role_and_asks_to_sign_up_or_in(invitation):
    _, link = invitation
    assert re.fullmatch(r"/dashboard/invitations/[\w-]+/", link)
    response = Client().get(link)
    page = response.content.decode()
    assert response.status_code == 200 and "Join Acme" in page and "<strong>Viewer</strong>" in page
    assert f'href="/accounts/signup/?email=newcomer%40example.com&amp;next={link}"' in page
    assert f'href="/accounts/login/?next={link}"' in page
    assert "Accept the invitation" not in page  # not before signing in


def test_a_newcomer_signs_up_from_the_link_verifies_and_accepts_as_a_viewer(invitation, settings):
    settings.HUB_SIGNUP_MODE = "invite"  # the invited address may sign up even so
    _, link = invitation
    browser = Client()
    browser.get(link)
    signup = browser.get(f"/accounts/signup/?email=newcomer%40example.com&next={link}").content.decode()
    assert 'value="newcomer@example.com"' in signup
    assert sign_up(browser, "newcomer@example.com").status_code == 302
    verify = link_in(mails_to("newcomer@example.com")[-1], "/accounts/confirm-email/")
    done = browser.post(verify)
    assert done.status_code == 302
    # Wherever allauth sends the new user, the dashboard brings them back to the invitation they opened.
    page = browser.get("/dashboard/", follow=True)
    assert page.redirect_chain[-1][0] == link and "Accept the invitation" in page.content.decode()
    accepted = browser.post(link + "accept")
    assert accepted.status_code == 302 and accepted.url == "/dashboard/"
    user = Membership.objects.get(organization__slug="acme", user__email="newcomer@example.com")
    assert user.role == "viewer"
    home = browser.get("/dashboard/").content.decode()
    assert "<h1>Acme</h1>" in home and "<strong>Viewer</strong>" in home and "You joined Acme as Viewer." in home
    assert "Invite someone" not in browser.get("/dashboard/team/").content.decode()  # a viewer may not invite


def test_an_existing_user_signs_in_from_the_link_and_comes_back_to_accept(invitation, world):
    verified_user("newcomer@example.com")
    _, link = invitation
    browser = Client()
    response = browser.post(
        f"/accounts/login/?next={link}", {"login": "newcomer@example.com", "password": PASSWORD, "next": link}
    )
    assert response.status_code == 302 and response.url == link
    assert browser.post(link + "accept").status_code == 302
    assert Membership.objects.get(organization=world.acme, user__email="newcomer@example.com").role == "viewer"


def test_a_user_signed_in_with_another_address_is_told_so_and_refused(invitation, world):
    _, link = invitation
    browser = Client()
    browser.force_login(world.outsider)
    page = browser.get(link).content.decode()
    assert "This invitation was sent to newcomer@example.com, but you are signed in as outsider@example.com" in page
    assert "Accept the invitation" not in page
    refused = browser.post(link + "accept")
    assert refused.status_code == 403 and "sent to another email address" in refused.content.decode()
    assert not Membership.objects.filter(organization=world.acme, user=world.outsider).exists()


def test_someone_else_who_opened_the_link_is_not_sent_back_to_it(invitation):
    _, link = invitation
    browser = Client()
    browser.get(link)  # before signing in: the dashboard would bring them back here after
    browser.force_login(verified_user("stranger@example.com"))
    assert browser.get("/dashboard/").url == link
    assert "you are signed in as stranger@example.com" in browser.get(link).content.decode()
    assert browser.get("/dashboard/").url == "/dashboard/organisations/new"  # free to start their own


def test_accepting_needs_a_signed_in_user_and_a_post(invitation):
    _, link = invitation
    assert Client().post(link + "accept").url.startswith("/accounts/login/")
    browser = Client()
    browser.force_login(verified_user("newcomer@example.com"))
    assert browser.get(link + "accept").status_code == 405


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"accepted_at": timezone.now()}, "This invitation has already been accepted."),
        ({"declined_at": timezone.now()}, "This invitation was declined."),
        ({"revoked_at": timezone.now()}, "This invitation was withdrawn by the organisation."),
        ({"expires_at": timezone.now() - timedelta(minutes=1)}, "This invitation has expired: ask for a new one."),
    ],
)
def test_used_revoked_or_expired_invitations_say_so_each_its_own_way(invitation, change, message):
    row, link = invitation
    Invitation.objects.filter(pk=row.pk).update(**change)
    for browser in (Client(), Client()):
        response = browser.get(link)
        assert response.status_code == 410 and message in response.content.decode()
    browser = Client()
    browser.force_login(verified_user("newcomer@example.com"))
    page = browser.get(link).content.decode()
    assert message in page and "Accept the invitation" not in page and "Decline" not in page
    refused = browser.post(link + "accept")
    assert refused.status_code == 410 and message in refused.content.decode()
    assert not Membership.objects.filter(user__email="newcomer@example.com").exists()


def test_a_revoked_invitation_from_the_service_reads_as_withdrawn(invitation):
    row, link = invitation
    services.invitation_revoke(invitation=row)
    assert "withdrawn" in Client().get(link).content.decode()


def test_an_unknown_link_is_not_found():
    response = Client().get("/dashboard/invitations/nope/")
    assert response.status_code == 404 and "This invitation does not exist." in response.content.decode()


def test_declining_from_the_page(invitation):
    row, link = invitation
    response = Client().post(link + "decline")
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.status == "declined"
    assert "This invitation was declined." in Client().get(link).content.decode()
    assert len(mail.outbox) == 1
