"""Admin logins are rate-limited per username + address (django-axes); operators sign in with TOTP (django-otp)."""

import io
import logging
import re
from datetime import timedelta

import httpx
import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import F
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User

PASSWORD = "correct horse battery staple"


@pytest.fixture
def operator(transactional_db):
    return User.objects.create_superuser("operator", "op@example.com", PASSWORD)


@pytest.fixture
def colleague(transactional_db):
    return User.objects.create_superuser("colleague", "col@example.com", PASSWORD)


@pytest.fixture
def device(operator):
    return TOTPDevice.objects.create(user=operator, name="phone", confirmed=True)


def code_of(device) -> str:
    device.refresh_from_db()
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):0{device.digits}d}"


def log_in(browser, username, password=PASSWORD, code=None):
    form = {"username": username, "password": password, "next": "/admin/"}
    if code is not None:
        form["otp_token"] = code
    return browser.post("/admin/login/?next=/admin/", form)


def signed_in(browser) -> bool:
    return browser.get("/admin/").status_code == 200


def errors_of(response) -> str:
    return " ".join(re.findall(r'class="errornote">\s*(.*?)\s*</p>', response.content.decode(), re.DOTALL))


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
            token = browser.get("/admin/login/").cookies.get("csrftoken") or browser.cookies["csrftoken"]
            statuses.append(
                browser.post(
                    "/admin/login/", data={"username": "operator", "password": "guess", "csrfmiddlewaretoken": token}
                ).status_code
            )
        assert statuses == [200, 200, 200, 200, 429]
    models = httpx.get(f"{hub.url}/v1/models", headers={"Authorization": f"Bearer {api_key}"})
    assert models.status_code == 200  # the same address still uses the API


def test_the_gateway_has_no_login_middleware(settings):
    from hub.asgi import gateway_app

    assert not any("axes" in m or "otp" in m for m in settings.HUB_GATEWAY_MIDDLEWARE)
    assert "axes.middleware.AxesMiddleware" in settings.MIDDLEWARE
    assert gateway_app._middleware_chain is not None


# Two-factor sign-in.


def test_an_operator_with_a_device_needs_a_code(operator, device):
    browser = Client()
    response = log_in(browser, "operator")
    assert response.status_code == 200 and "Enter the code from your authenticator app" in errors_of(response)
    assert not signed_in(browser)


def test_a_password_session_without_a_code_does_not_reach_the_admin(operator, device):
    browser = Client()
    browser.force_login(operator)
    response = browser.get("/admin/")
    assert response.status_code == 302 and response.url.startswith("/admin/login/")


def test_the_right_code_lets_the_operator_in_once(operator, device):
    browser = Client()
    code = code_of(device)
    response = log_in(browser, "operator", code=code)
    assert response.status_code == 302 and response.url == "/admin/"
    assert signed_in(browser)
    replayed = log_in(Client(), "operator", code=code)
    assert replayed.status_code == 200 and "already used" in errors_of(replayed)


def test_a_wrong_code_is_refused_and_counts_toward_the_lockout(operator, device):
    browser = Client()
    good = code_of(device)
    wrong = f"{(int(good) + 1) % 10**6:06d}"
    response = log_in(browser, "operator", code=wrong)
    assert response.status_code == 200 and "wrong" in errors_of(response) and not signed_in(browser)
    for _ in range(4):
        last = log_in(browser, "operator", code=wrong)
    assert last.status_code == 429
    assert AccessAttempt.objects.get().failures_since_start == 5


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
    assert browser.get("/admin/").url == "/admin/otp/enrol/"
    assert browser.get("/admin/accounts/apikey/").url == "/admin/otp/enrol/"
    page = browser.get("/admin/otp/enrol/")
    assert page.status_code == 200
    pending = TOTPDevice.objects.get(user=operator, confirmed=False)
    secret = page.context["secret"]
    assert "otpauth://totp/" in page.content.decode() and secret in page.content.decode()
    assert "<svg" in page.content.decode()  # a QR code to scan

    wrong = browser.post("/admin/otp/enrol/", {"otp_token": "000000" if code_of(pending) != "000000" else "111111"})
    assert wrong.status_code == 200 and not TOTPDevice.objects.filter(confirmed=True).exists()
    pending.throttle_reset()
    confirmed = browser.post("/admin/otp/enrol/", {"otp_token": code_of(pending)})
    assert confirmed.status_code == 302 and confirmed.url == "/admin/"
    assert signed_in(browser)

    # After enrolment the secret is on no page and in no log line.
    device = TOTPDevice.objects.get(user=operator)
    assert device.confirmed
    assert browser.get("/admin/otp/enrol/").status_code == 302
    for url in ["/admin/otp_totp/totpdevice/", f"/admin/otp_totp/totpdevice/{device.pk}/change/"]:
        shown = browser.get(url)
        assert shown.status_code == 200 and device.key not in shown.content.decode()
        assert secret not in shown.content.decode(), url
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert device.key not in logged and secret not in logged


def test_when_required_a_password_session_is_sent_to_enrol(operator, settings):
    settings.HUB_OPERATOR_2FA_REQUIRED = True
    browser = Client()
    browser.force_login(operator)
    assert browser.get("/admin/").url == "/admin/otp/enrol/"
    assert browser.get("/admin/login/").url == "/admin/otp/enrol/"
    assert browser.post("/admin/logout/").status_code == 200  # leaving without enrolling
    assert browser.get("/admin/").url.startswith("/admin/login/")


def test_a_non_staff_session_is_unaffected(transactional_db, settings):
    settings.HUB_OPERATOR_2FA_REQUIRED = True
    tenant = User.objects.create_user("tenant", "t@example.com", PASSWORD)
    browser = Client()
    browser.force_login(tenant)
    assert browser.get("/manage/v1/orgs/").status_code == 200
    assert browser.get("/admin/otp/enrol/").status_code == 302
    assert not TOTPDevice.objects.exists()


def test_hub_totp_enrol_prints_the_url_once(operator, caplog):
    caplog.set_level(logging.DEBUG)
    out = io.StringIO()
    call_command("hub_totp_enrol", "operator", stdout=out)
    url = out.getvalue().strip()
    assert url.startswith("otpauth://totp/The%20hub%3Aoperator?secret=")
    device = TOTPDevice.objects.get(user=operator)
    assert device.confirmed
    assert not any(url in r.getMessage() for r in caplog.records)
    with pytest.raises(CommandError, match="already has"):
        call_command("hub_totp_enrol", "operator", stdout=io.StringIO())
    call_command("hub_totp_enrol", "operator", "--replace", stdout=io.StringIO())
    assert TOTPDevice.objects.get(user=operator).pk != device.pk
    assert log_in(Client(), "operator").status_code == 200  # a code is now needed


def test_hub_totp_enrol_refuses_a_non_staff_user(transactional_db):
    User.objects.create_user("tenant", "t@example.com", PASSWORD)
    with pytest.raises(CommandError, match="not staff"):
        call_command("hub_totp_enrol", "tenant", stdout=io.StringIO())


def test_createsuperuser_still_works(transactional_db, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    call_command("createsuperuser", interactive=False, username="root", email="root@example.com", stdout=io.StringIO())
    assert log_in(Client(), "root").status_code == 302
