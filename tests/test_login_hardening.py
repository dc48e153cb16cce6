"""Logins are rate-limited per username + address (django-axes) on the one login (/accounts/login/, where the
admin's login sends operators); operators with an authenticator (allauth.mfa TOTP) open the admin only after its
code, and with HUB_OPERATOR_2FA_REQUIRED every staff user enrols one first."""

import io
import logging
from datetime import timedelta

import httpx
import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from axes.models import AccessAttempt
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import F
from django.test import Client

from accounts.models import User
from tests.signin import fresh_throttles, totp_code, wrong_code

PASSWORD = "correct horse battery staple"
__all__ = ["fresh_throttles"]  # the autouse fixture, imported: allauth keeps used codes and throttles in the cache


@pytest.fixture
def operator(transactional_db):
    return User.objects.create_superuser("operator", "op@example.com", PASSWORD)


@pytest.fixture
def colleague(transactional_db):
    return User.objects.create_superuser("colleague", "col@example.com", PASSWORD)


@pytest.fixture
def device(operator):
    return TOTP.activate(operator, generate_totp_secret()).instance


def code_of(device) -> str:
    return totp_code(device.user)


def log_in(browser, username, password=PASSWORD, code=None):
    """The admin's login, which is allauth's: the password, then (when asked, and given) the code."""
    response = browser.post("/accounts/login/?next=/admin/", {"login": username, "password": password})
    if code is not None and response.status_code == 302 and response.url.startswith("/accounts/2fa/authenticate/"):
        response = browser.post("/accounts/2fa/authenticate/", {"code": code})
    return response


def signed_in(browser) -> bool:
    return browser.get("/admin/").status_code == 200


def errors_of(response) -> str:
    return " ".join(str(error) for errors in response.context["form"].errors.values() for error in errors)


def test_the_admin_login_is_the_accounts_login(transactional_db):
    browser = Client()
    response = browser.get("/admin/")
    assert response.status_code == 302 and response.url == "/admin/login/?next=/admin/"
    response = browser.get(response.url)
    assert response.status_code == 302 and response.url == "/accounts/login/?next=%2Fadmin%2F"
    assert browser.post("/admin/login/", {"username": "operator", "password": PASSWORD}).url.startswith(
        "/accounts/login/"
    )  # the old form is gone: nothing is checked there
    off_site = browser.get("/admin/login/?next=https://evil.example/")
    assert off_site.url == "/accounts/login/?next=%2Fadmin%2F"


# Rate limiting.


def test_five_bad_passwords_lock_the_account_out_even_for_the_right_password(operator, settings):
    assert settings.HUB_LOGIN_FAILURE_LIMIT == 5
    browser = Client()
    for _ in range(4):
        assert log_in(browser, "operator", "guess").status_code == 200
    locked = log_in(browser, "operator", "guess")
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode() and "15 minutes" in locked.content.decode()
    refused = log_in(browser, "operator")
    assert refused.status_code == 429 and not signed_in(browser)
    attempt = AccessAttempt.objects.get()
    assert (attempt.username, attempt.ip_address) == ("operator", "127.0.0.1")
    assert "guess" not in attempt.post_data and PASSWORD not in attempt.post_data


def test_the_lock_lifts_after_the_cool_off(operator, settings):
    browser = Client()
    for _ in range(5):
        log_in(browser, "operator", "guess")
    assert log_in(browser, "operator").status_code == 429
    # Time travel: the failures are now older than the cool-off.
    AccessAttempt.objects.update(
        attempt_time=F("attempt_time") - timedelta(minutes=settings.HUB_LOGIN_COOLOFF_MINUTES, seconds=1)
    )
    response = log_in(browser, "operator")
    assert response.status_code == 302 and response.url == "/admin/"
    assert signed_in(browser)


def test_an_operator_can_lift_a_lock_with_axes_reset(operator):
    browser = Client()
    for _ in range(5):
        log_in(browser, "operator", "guess")
    call_command("axes_reset_username", "operator", stdout=io.StringIO())
    assert log_in(browser, "operator").status_code == 302 and signed_in(browser)


def test_a_lock_holds_one_username_from_one_address_only(operator, colleague):
    attacker = Client()
    for _ in range(5):
        log_in(attacker, "operator", "guess")
    assert log_in(attacker, "operator").status_code == 429
    assert log_in(attacker, "colleague").status_code == 302 and signed_in(attacker)  # another user, same address
    elsewhere = Client(REMOTE_ADDR="203.0.113.9")
    assert log_in(elsewhere, "operator").status_code == 302 and signed_in(elsewhere)  # same user, another address


def test_a_successful_login_forgets_earlier_failures(operator):
    browser = Client()
    for _ in range(4):
        log_in(browser, "operator", "guess")
    assert log_in(browser, "operator").status_code == 302
    assert log_in(Client(), "operator", "guess").status_code == 200  # counting starts again


def test_the_lockout_page_is_served_under_asgi_and_the_gateway_is_not_counted(hub, operator, api_key):
    for _ in range(6):
        reply = httpx.post(
            f"{hub.url}/v1/chat/completions",
            headers={"Authorization": "Bearer sk-hub-wrong"},
            json={"model": "demo", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert reply.status_code == 401
    assert AccessAttempt.objects.count() == 0  # API keys never go through authenticate()
    with httpx.Client(base_url=hub.url) as browser:
        statuses = []
        for _ in range(5):
            token = browser.get("/accounts/login/").cookies.get("csrftoken") or browser.cookies["csrftoken"]
            statuses.append(
                browser.post(
                    "/accounts/login/", data={"login": "operator", "password": "guess", "csrfmiddlewaretoken": token}
                ).status_code
            )
        assert statuses == [200, 200, 200, 200, 429]
    models = httpx.get(f"{hub.url}/v1/models", headers={"Authorization": f"Bearer {api_key}"})
    assert models.status_code == 200  # the same address still uses the API


def test_the_gateway_has_no_login_middleware(settings):
    from hub.asgi import gateway_app

    assert not any(word in m for m in settings.HUB_GATEWAY_MIDDLEWARE for word in ("axes", "otp", "allauth"))
    assert "axes.middleware.AxesMiddleware" in settings.MIDDLEWARE
    assert gateway_app._middleware_chain is not None


# Two-factor sign-in.


def test_an_operator_with_a_device_needs_a_code(operator, device):
    browser = Client()
    response = log_in(browser, "operator")
    assert response.status_code == 302 and response.url.startswith("/accounts/2fa/authenticate/")
    page = browser.get(response.url)
    assert page.status_code == 200 and 'name="code"' in page.content.decode()
    assert not signed_in(browser)


def test_a_password_session_without_a_code_does_not_reach_the_admin(operator, device):
    browser = Client()
    browser.force_login(operator)
    response = browser.get("/admin/")
    assert response.status_code == 302 and response.url.startswith("/admin/login/")
    onward = browser.get(response.url)
    assert onward.status_code == 302 and onward.url == "/accounts/2fa/reauthenticate/?next=%2Fadmin%2F"
    assert not signed_in(browser)
    given = browser.post(onward.url, {"code": code_of(device)})  # the code, once, opens it
    assert given.status_code == 302 and given.url == "/admin/" and signed_in(browser)


def test_regenerating_recovery_codes_is_not_the_mfa_step(operator, device):
    browser = Client()
    browser.force_login(operator)
    asked = browser.get("/accounts/2fa/recovery-codes/generate/")
    assert browser.post(asked.url, {"password": PASSWORD}).status_code == 302  # the password again, not a code
    assert browser.post("/accounts/2fa/recovery-codes/generate/").status_code == 302
    assert Authenticator.objects.filter(user=operator, type="recovery_codes").exists()
    assert not signed_in(browser)


def test_the_right_code_lets_the_operator_in_once(operator, device):
    browser = Client()
    code = code_of(device)
    response = log_in(browser, "operator", code=code)
    assert response.status_code == 302 and response.url == "/admin/"
    assert signed_in(browser)
    replayed = log_in(Client(), "operator", code=code)
    assert replayed.status_code == 200 and "Incorrect code" in errors_of(replayed)


def test_a_wrong_code_is_refused_and_counts_toward_the_lockout(operator, device):
    browser = Client()
    wrong = wrong_code(code_of(device))
    response = log_in(browser, "operator", code=wrong)
    assert response.status_code == 200 and "Incorrect code" in errors_of(response) and not signed_in(browser)
    for _ in range(4):
        last = log_in(browser, "operator", code=wrong)
    assert last.status_code == 429
    assert AccessAttempt.objects.get().failures_since_start == 5
    # Locked out: the password is refused, and so is the right code on a login already past its password.
    assert log_in(browser, "operator", code=code_of(device)).status_code == 429 and not signed_in(browser)


def test_codes_guessed_on_one_pending_login_are_counted_too(operator, device):
    browser = Client()
    assert log_in(browser, "operator").url.startswith("/accounts/2fa/authenticate/")
    wrong = wrong_code(code_of(device))
    statuses = [browser.post("/accounts/2fa/authenticate/", {"code": wrong}).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    right = browser.post("/accounts/2fa/authenticate/", {"code": code_of(device)})
    assert right.status_code == 429 and not signed_in(browser)


def test_an_operator_without_a_device_logs_in_as_before(operator):
    browser = Client()
    assert log_in(browser, "operator").status_code == 302 and signed_in(browser)
    forced = Client()
    forced.force_login(operator)
    assert signed_in(forced)


def test_when_required_an_operator_without_a_device_is_sent_to_enrol(operator, settings, caplog):
    settings.HUB_OPERATOR_2FA_REQUIRED = True
    caplog.set_level(logging.DEBUG)
    browser = Client()
    response = log_in(browser, "operator")
    assert response.status_code == 302
    assert browser.get("/admin/").url == "/accounts/2fa/totp/activate/"
    assert browser.get("/admin/accounts/apikey/").url == "/accounts/2fa/totp/activate/"
    asked = browser.get("/accounts/2fa/totp/activate/")  # allauth asks for the password again before MFA changes
    assert asked.url == "/accounts/reauthenticate/?next=%2Faccounts%2F2fa%2Ftotp%2Factivate%2F"
    assert browser.post(asked.url, {"password": PASSWORD}).url == "/accounts/2fa/totp/activate/"
    page = browser.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    secret = page.context["form"].secret
    assert secret in page.content.decode()  # for apps that cannot scan
    assert 'src="data:image/svg+xml;base64,' in page.content.decode()  # the QR code (of the otpauth:// URL)
    assert '<header class="site-header">' in page.content.decode()  # the hub's layout

    import time

    from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value

    good = format_hotp_value(hotp_value(secret, int(time.time()) // 30))
    wrong = browser.post("/accounts/2fa/totp/activate/", {"code": wrong_code(good)})
    assert wrong.status_code == 200 and not Authenticator.objects.exists()
    confirmed = browser.post("/accounts/2fa/totp/activate/", {"code": good})
    assert confirmed.status_code == 302 and confirmed.url == "/accounts/2fa/recovery-codes/"
    assert signed_in(browser)  # the confirming code was the MFA step

    # After enrolment the secret is on no page and in no log line.
    device = Authenticator.objects.get(user=operator, type="totp")
    assert browser.get("/accounts/2fa/totp/activate/").status_code == 302
    for url in ["/accounts/2fa/", "/admin/mfa/authenticator/", f"/admin/mfa/authenticator/{device.pk}/change/"]:
        shown = browser.get(url)
        assert shown.status_code == 200 and secret not in shown.content.decode(), url
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert secret not in logged


def test_when_required_a_password_session_is_sent_to_enrol(operator, settings):
    settings.HUB_OPERATOR_2FA_REQUIRED = True
    browser = Client()
    browser.force_login(operator)
    assert browser.get("/admin/").url == "/accounts/2fa/totp/activate/"
    assert browser.get("/admin/login/").url == "/accounts/2fa/totp/activate/"
    assert browser.post("/admin/logout/").status_code == 200  # leaving without enrolling
    assert browser.get("/admin/").url.startswith("/admin/login/")


def test_a_non_staff_session_is_unaffected(transactional_db, settings):
    settings.HUB_OPERATOR_2FA_REQUIRED = True
    tenant = User.objects.create_user("tenant", "t@example.com", PASSWORD)
    browser = Client()
    browser.force_login(tenant)
    assert browser.get("/manage/v1/orgs/").status_code == 200
    assert browser.get("/admin/login/").status_code == 403  # no admin, and no loop back to a login it has done
    assert browser.get("/accounts/2fa/").status_code == 200  # enrolling is the tenant's choice
    assert not Authenticator.objects.exists()


def test_hub_totp_enrol_prints_the_url_once(operator, caplog):
    caplog.set_level(logging.DEBUG)
    out = io.StringIO()
    call_command("hub_totp_enrol", "operator", stdout=out)
    url = out.getvalue().strip()
    assert url.startswith("otpauth://totp/op%40example.com?secret=") and url.endswith("&issuer=The%20hub")
    device = Authenticator.objects.get(user=operator)
    assert not any(url in r.getMessage() for r in caplog.records)
    with pytest.raises(CommandError, match="already has"):
        call_command("hub_totp_enrol", "operator", stdout=io.StringIO())
    call_command("hub_totp_enrol", "operator", "--replace", stdout=io.StringIO())
    assert Authenticator.objects.get(user=operator).pk != device.pk
    response = log_in(Client(), "operator")
    assert response.url.startswith("/accounts/2fa/authenticate/")  # a code is now needed


def test_hub_totp_enrol_refuses_a_non_staff_user(transactional_db):
    User.objects.create_user("tenant", "t@example.com", PASSWORD)
    with pytest.raises(CommandError, match="not staff"):
        call_command("hub_totp_enrol", "tenant", stdout=io.StringIO())


def test_createsuperuser_still_works(transactional_db, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    call_command("createsuperuser", interactive=False, username="root", email="root@example.com", stdout=io.StringIO())
    browser = Client()
    assert log_in(browser, "root").url == "/admin/" and signed_in(browser)  # no email to verify first
