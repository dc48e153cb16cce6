"""What the sign-in tests share (tests/test_signup.py, test_signin_lockout.py, test_social_login.py,
test_trusted_proxies.py): a browser's steps through /accounts/, and the mail they send."""

import re

import pytest
from django.core import mail
from django.test import Client

PASSWORD = "a long and unusual passphrase"


@pytest.fixture(autouse=True)
def fresh_throttles():
    """allauth keeps its throttles in the cache (one verification mail an address per three minutes, failed logins
    an address per minute): a test signing up the address another just did must not be throttled by it."""
    from django.core.cache import cache

    cache.clear()


def link_in(message, prefix: str = "/accounts/") -> str:
    """The path of the first link under `prefix` in a mail."""
    found = re.search(rf"https?://testserver({re.escape(prefix)}\S+)", message.body)
    assert found, message.body
    return found.group(1)


def sign_up(browser: Client, email: str, password: str = PASSWORD):
    return browser.post("/accounts/signup/", {"email": email, "password1": password, "password2": password})


def log_in(browser: Client, login: str, password: str = PASSWORD):
    return browser.post("/accounts/login/", {"login": login, "password": password})


def signed_in(browser: Client):
    """The signed-in user's id in the browser's session, or None."""
    return browser.session.get("_auth_user_id")


def verified_user(email: str, password: str = PASSWORD, **fields):
    """A user whose email is verified, as one who finished sign-up is."""
    from allauth.account.models import EmailAddress

    from accounts.models import User

    user = User.objects.create_user(username=email.split("@")[0], email=email, password=password, **fields)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def mails_to(address: str) -> list:
    return [message for message in mail.outbox if address in message.to]


def totp_code(user, at: float | None = None) -> str:
    """The code an authenticator app shows now for the user's TOTP (allauth.mfa), from the stored secret."""
    import time

    from allauth.mfa.adapter import get_adapter
    from allauth.mfa.models import Authenticator
    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    secret = get_adapter().decrypt(Authenticator.objects.get(user=user, type="totp").data["secret"])
    if at is None:
        # A code read in a period's last seconds may be typed in the next, where it no longer counts (allauth
        # allows no drift): wait for the next period then, as a person would wait for the app's new code.
        if time.time() % 30 > 25:
            time.sleep(30.2 - time.time() % 30)
        at = time.time()
    return format_hotp_value(hotp_value(secret, int(at) // 30))


def wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def sign_in_page(page, login: str, password: str = PASSWORD, *, landing: str = "**/dashboard/") -> None:
    """Sign in through the login form in a browser page (Playwright) and wait for the page it lands on."""
    page.goto("/accounts/login/")
    page.get_by_label("Email or username").fill(login)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(landing)
