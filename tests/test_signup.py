"""End users' accounts by HTTP (django-allauth under /accounts/): sign up, verify the email by link, log in and
out, reset the password, change the email; the sign-up modes (HUB_SIGNUP_MODE); the layout every page uses."""

import re
import time
from datetime import timedelta

import httpx
import pytest
from allauth.account import app_settings
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.core import mail, signing
from django.test import Client

from accounts import services
from accounts.models import User
from tests import factories
from tests.signin import PASSWORD, fresh_throttles, link_in, log_in, mails_to, sign_up, signed_in, verified_user

pytestmark = pytest.mark.django_db
__all__ = ["fresh_throttles"]  # the autouse fixture, imported


def confirm(browser: Client, link: str):
    """Open a verification link, then press its button: the link alone confirms nothing (a mail scanner's GET)."""
    page = browser.get(link)
    assert page.status_code == 200 and '<form method="post"' in page.content.decode()
    return browser.post(link)


# Sign-up and verification.


def test_signing_up_sends_a_link_that_verifies_the_email_and_logs_in():
    browser = Client()
    page = browser.get("/accounts/signup/")
    assert page.status_code == 200 and 'name="csrfmiddlewaretoken"' in page.content.decode()
    response = sign_up(browser, "Alice@Example.com")
    assert response.status_code == 302 and response.url == "/accounts/confirm-email/"
    assert signed_in(browser) is None  # not before the email is verified
    user = User.objects.get()
    assert user.email == "alice@example.com" and user.username  # made from the email: no username asked
    assert user.check_password(PASSWORD) and not EmailAddress.objects.get(user=user).verified
    (message,) = mail.outbox
    assert message.to == ["alice@example.com"] and message.subject.startswith("[The hub] ")
    link = link_in(message, "/accounts/confirm-email/")
    assert browser.get(link).status_code == 200 and not EmailAddress.objects.get(user=user).verified
    done = browser.post(link)
    assert done.status_code == 302 and done.url == "/dashboard/"
    assert EmailAddress.objects.get(user=user).verified
    assert signed_in(browser) == str(user.pk)
    home = browser.get("/").content.decode()
    assert "alice@example.com" in home and "Sign out" in home and "Sign in" not in home


def test_logging_in_before_verifying_gives_no_session():
    sign_up(Client(), "bob@example.com")
    browser = Client()
    response = log_in(browser, "bob@example.com")
    assert response.status_code == 302 and response.url == "/accounts/confirm-email/"
    assert signed_in(browser) is None


def test_a_wrong_link_says_so_and_verifies_nothing():
    sign_up(Client(), "carol@example.com")
    link = link_in(mail.outbox[0], "/accounts/confirm-email/")
    wrong = link[:-3] + ("x" if link[-3] != "x" else "y") + link[-2:]
    browser = Client()
    page = browser.get(wrong)
    assert page.status_code == 200 and "expired or is invalid" in page.content.decode()
    browser.post(wrong)
    assert not EmailAddress.objects.get().verified and signed_in(browser) is None


def test_an_expired_link_says_so_and_verifies_nothing(monkeypatch):
    sign_up(Client(), "dave@example.com")
    link = link_in(mail.outbox[0], "/accounts/confirm-email/")
    later = time.time() + timedelta(days=app_settings.EMAIL_CONFIRMATION_EXPIRE_DAYS, hours=1).total_seconds()
    monkeypatch.setattr(signing.time, "time", lambda: later)  # the link's signature carries its time
    browser = Client()
    assert "expired or is invalid" in browser.get(link).content.decode()
    browser.post(link)
    assert not EmailAddress.objects.get().verified
    monkeypatch.undo()
    assert confirm(Client(), link).status_code == 302 and EmailAddress.objects.get().verified  # in time: fine


def test_an_address_already_taken_gets_no_second_account():
    verified_user("erin@example.com")
    response = sign_up(Client(), "erin@example.com", "another long passphrase")
    assert response.status_code == 302  # the same answer as a new address: sign-up tells no one who has an account
    assert User.objects.count() == 1
    (message,) = mail.outbox
    assert message.to == ["erin@example.com"] and "already" in message.body


# Log in and out.


def test_logging_in_and_out():
    user = verified_user("frank@example.com")
    browser = Client()
    wrong = log_in(browser, "frank@example.com", "not the passphrase")
    assert wrong.status_code == 200 and "not correct" in wrong.content.decode() and signed_in(browser) is None
    response = log_in(browser, "FRANK@example.com")
    assert response.status_code == 302 and response.url == "/dashboard/" and signed_in(browser) == str(user.pk)
    assert browser.get("/accounts/logout/").status_code == 200 and signed_in(browser)  # a GET only asks
    out = browser.post("/accounts/logout/")
    assert out.status_code == 302 and out.url == "/" and signed_in(browser) is None


def test_every_form_needs_its_csrf_token():
    verified_user("grace@example.com")
    browser = Client(enforce_csrf_checks=True)
    assert log_in(browser, "grace@example.com").status_code == 403
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', browser.get("/accounts/login/").content.decode())
    response = browser.post(
        "/accounts/login/", {"login": "grace@example.com", "password": PASSWORD, "csrfmiddlewaretoken": token[1]}
    )
    assert response.status_code == 302 and signed_in(browser)
    assert browser.post("/accounts/logout/").status_code == 403 and signed_in(browser)


def test_an_operator_with_an_authenticator_is_asked_for_the_code_here():
    operator = verified_user("root@example.com", is_staff=True)
    TOTP.activate(operator, generate_totp_secret())
    browser = Client()
    response = log_in(browser, "root@example.com")
    assert response.status_code == 302 and response.url.startswith("/accounts/2fa/authenticate/")
    assert signed_in(browser) is None
    staff_without_code, other = verified_user("helper@example.com", is_staff=True), Client()
    assert log_in(other, "helper@example.com").status_code == 302 and signed_in(other) == str(staff_without_code.pk)


# Password reset and change of email.


def test_a_password_reset_by_mail():
    user = verified_user("heidi@example.com")
    browser = Client()
    assert browser.post("/accounts/password/reset/", {"email": "heidi@example.com"}).status_code == 302
    (message,) = mail.outbox
    assert message.to == ["heidi@example.com"]
    link = link_in(message, "/accounts/password/reset/key/")
    form_page = browser.get(link)  # the key moves into the session, out of the address bar
    assert form_page.status_code == 302 and form_page.url.endswith("-set-password/")
    assert browser.get(form_page.url).status_code == 200
    new = "an entirely new passphrase"
    done = browser.post(form_page.url, {"password1": new, "password2": new})
    assert done.status_code == 302 and done.url == "/accounts/password/reset/key/done/"
    user.refresh_from_db()
    assert user.check_password(new) and not user.check_password(PASSWORD)
    assert "invalid" in Client().get(link, follow=True).content.decode()  # a used link is spent
    assert log_in(Client(), "heidi@example.com", new).status_code == 302


def test_changing_the_email_takes_effect_once_the_new_one_is_verified():
    user = verified_user("ivan@example.com")
    browser = Client()
    log_in(browser, "ivan@example.com")
    assert browser.get("/accounts/email/").status_code == 200
    response = browser.post("/accounts/email/", {"action_add": "", "email": "ivan@new.example.com"})
    assert response.status_code == 302 and response.url.startswith("/accounts/reauthenticate/")  # a stolen session
    assert not mails_to("ivan@new.example.com")  # is not enough to take the account
    assert browser.post(response.url, {"password": "a guess"}).status_code == 200
    assert not mails_to("ivan@new.example.com")
    resumed = browser.post(response.url, {"password": PASSWORD})  # the change asked for goes ahead
    assert resumed.status_code == 302 and resumed.url == "/accounts/email/"
    (verification,) = mails_to("ivan@new.example.com")
    user.refresh_from_db()
    assert user.email == "ivan@example.com"  # not yet
    assert confirm(browser, link_in(verification, "/accounts/confirm-email/")).status_code == 302
    user.refresh_from_db()
    assert user.email == "ivan@new.example.com"
    assert list(EmailAddress.objects.filter(user=user).values_list("email", "verified")) == [
        ("ivan@new.example.com", True)
    ]
    assert mails_to("ivan@example.com"), "the old address is told of the change"
    assert log_in(Client(), "ivan@example.com").status_code == 200
    assert log_in(Client(), "ivan@new.example.com").status_code == 302


# Who may sign up.


def test_closed_sign_up_shows_a_closed_page_and_makes_no_account(settings):
    settings.HUB_SIGNUP_MODE = "closed"
    browser = Client()
    page = browser.get("/accounts/signup/").content.decode()
    assert "Sign Up Closed" in page and 'name="password1"' not in page
    sign_up(browser, "judy@example.com")
    assert not User.objects.exists() and not mail.outbox
    assert 'href="/accounts/signup/"' not in browser.get("/accounts/login/").content.decode()


def test_invite_only_sign_up_takes_an_address_with_a_pending_invitation(settings):
    settings.HUB_SIGNUP_MODE = "invite"
    organization = factories.organization("Acme")
    services.invitation_create(organization=organization, email="Kim@Example.com", role="developer", actor_role="owner")
    mail.outbox.clear()
    refused = sign_up(Client(), "stranger@example.com")
    assert refused.status_code == 200 and "by invitation only" in refused.content.decode()
    assert not User.objects.exists() and not mail.outbox
    assert sign_up(Client(), "kim@example.com").status_code == 302
    assert User.objects.get().email == "kim@example.com" and mails_to("kim@example.com")


@pytest.mark.parametrize("ended", ["expired", "revoked", "accepted", "declined"])
def test_an_invitation_no_longer_pending_opens_no_sign_up(settings, ended):
    settings.HUB_SIGNUP_MODE = "invite"
    organization = factories.organization("Acme")
    invitation, _ = services.invitation_create(
        organization=organization, email="lee@example.com", role="viewer", actor_role="owner"
    )
    invitation.__class__.objects.filter(pk=invitation.pk).update(
        **{"expired": {"expires_at": invitation.created_at}}.get(ended, {f"{ended}_at": invitation.created_at})
    )
    response = sign_up(Client(), "lee@example.com")
    assert response.status_code == 200 and "by invitation only" in response.content.decode()
    assert not User.objects.exists()


def test_open_sign_up_is_the_default(settings):
    assert settings.HUB_SIGNUP_MODE == "open"
    assert sign_up(Client(), "mallory@example.com").status_code == 302 and User.objects.count() == 1


# The layout.


@pytest.mark.parametrize("path", ["/accounts/login/", "/accounts/signup/", "/accounts/password/reset/", "/"])
def test_pages_use_the_hub_layout_with_labelled_controls_and_only_the_hubs_own_scripts(path):
    page = Client().get(path).content.decode()
    assert '<header class="site-header">' in page and ">The hub</a>" in page
    assert '<link rel="stylesheet" href="/static/hub/hub.css">' in page
    # htmx (vendored by django-htmx) and hub.js, both files the hub serves; nothing inline, nothing from a CDN.
    scripts = re.findall(r"<script\b[^>]*>", page)
    assert [re.search(r'src="([^"]+)"', tag)[1] for tag in scripts] == [
        "/static/django_htmx/htmx-2.min.js",
        "/static/hub/hub.js",
    ], scripts
    assert "//cdn" not in page and "https://" not in "".join(scripts)
    assert 'href="/accounts/login/"' in page and 'href="/accounts/signup/"' in page
    for control in re.findall(r"<(?:input|select|textarea)\b[^>]*>", page):
        if 'type="hidden"' in control:
            continue
        control_id = re.search(r'id="([^"]+)"', control)
        assert control_id and f'for="{control_id[1]}"' in page, control


def test_a_signed_in_page_offers_sign_out_as_a_form():
    verified_user("nina@example.com")
    browser = Client()
    log_in(browser, "nina@example.com")
    page = browser.get("/accounts/email/").content.decode()
    assert re.search(r'<form class="inline" method="post" action="/accounts/logout/">\s*<input type="hidden"', page)
    assert 'href="/accounts/login/"' not in page


# Under the ASGI server `make run` uses.


def test_signing_up_and_the_lockout_under_asgi(hub):
    def post(browser, path, data):
        browser.get(path)
        return browser.post(path, data={**data, "csrfmiddlewaretoken": browser.cookies["csrftoken"]})

    with httpx.Client(base_url=hub.url) as browser:
        assert (
            post(
                browser,
                "/accounts/signup/",
                {"email": "olga@example.com", "password1": PASSWORD, "password2": PASSWORD},
            ).status_code
            == 302
        )
        link = re.search(r"https?://[^/\s]+(/accounts/confirm-email/\S+)", mails_to("olga@example.com")[0].body)[1]
        assert post(browser, link, {}).headers["location"] == "/dashboard/"
        assert "olga@example.com" in browser.get("/").text
    with httpx.Client(base_url=hub.url) as attacker:
        statuses = [
            post(attacker, "/accounts/login/", {"login": "olga@example.com", "password": "x"}).status_code
            for _ in range(5)
        ]
        assert statuses == [200, 200, 200, 200, 429]
        locked = post(attacker, "/accounts/login/", {"login": "olga@example.com", "password": PASSWORD})
        assert locked.status_code == 429 and "Too many failed logins" in locked.text
