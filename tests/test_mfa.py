"""Multi-factor sign-in for every user (allauth.mfa under /accounts/2fa/, accounts/mfa.py): enrolling a TOTP app,
the recovery codes, removing it, logging in with a code or a recovery code, the lockout counting wrong codes, and
operators' django-otp devices carried over by the data migration. The admin's side (staff required to enrol, a
session without the MFA step refused) is in tests/test_login_hardening.py."""

import hashlib
import hmac
import importlib
import struct
import time

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
from axes.models import AccessAttempt
from django.apps import apps
from django.db import connection
from django.test import Client
from django.urls import reverse

from tests.signin import PASSWORD, fresh_throttles, log_in, signed_in, totp_code, verified_user, wrong_code

pytestmark = pytest.mark.django_db
__all__ = ["fresh_throttles"]  # the autouse fixture, imported: used codes and throttles live in the cache


@pytest.fixture
def alice():
    return verified_user("alice@example.com")


@pytest.fixture
def enrolled(alice):
    TOTP.activate(alice, generate_totp_secret())
    return alice


def now_code(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def reauthenticated(browser: Client, path: str):
    """allauth asks for the password again before any change to a user's MFA (ACCOUNT_REAUTHENTICATION_REQUIRED)."""
    asked = browser.get(path)
    assert asked.status_code == 302 and asked.url.startswith("/accounts/reauthenticate/")
    assert browser.post(asked.url, {"password": PASSWORD}).url == path
    return browser.get(path)


def test_a_user_enrols_sees_and_regenerates_recovery_codes_and_removes_it(alice):
    browser = Client()
    log_in(browser, "alice@example.com")
    index = browser.get("/accounts/2fa/")
    assert index.status_code == 200 and 'href="/accounts/2fa/totp/activate/"' in index.content.decode()
    page = reauthenticated(browser, "/accounts/2fa/totp/activate/")
    html = page.content.decode()
    secret = page.context["form"].secret
    assert '<header class="site-header">' in html  # the hub's layout (templates/allauth/layouts)
    assert secret in html and 'src="data:image/svg+xml;base64,' in html  # the secret and its QR code

    refused = browser.post("/accounts/2fa/totp/activate/", {"code": wrong_code(now_code(secret))})
    assert refused.status_code == 200 and refused.context["form"].errors and not Authenticator.objects.exists()
    done = browser.post("/accounts/2fa/totp/activate/", {"code": now_code(secret)})
    assert done.status_code == 302 and done.url == "/accounts/2fa/recovery-codes/"
    assert Authenticator.objects.get(user=alice, type="totp").wrap().instance.data["secret"] == secret

    codes_page = browser.get("/accounts/2fa/recovery-codes/")
    codes = codes_page.context["unused_codes"]
    assert (
        codes_page.status_code == 200
        and len(codes) == 10
        and all(code in codes_page.content.decode() for code in codes)
    )
    regenerated = browser.post("/accounts/2fa/recovery-codes/generate/")
    assert regenerated.status_code == 302
    fresh = browser.get("/accounts/2fa/recovery-codes/").context["unused_codes"]
    assert len(fresh) == 10 and not set(fresh) & set(codes)  # the old ones are void

    removed = browser.post("/accounts/2fa/totp/deactivate/")
    assert removed.status_code == 302 and not Authenticator.objects.filter(user=alice).exists()  # codes go too
    browser.post("/accounts/logout/")
    assert log_in(Client(), "alice@example.com").status_code == 302  # no code asked any more


def test_logging_in_asks_for_the_code_and_takes_it_once(enrolled):
    browser = Client()
    response = log_in(browser, "alice@example.com")
    assert response.status_code == 302 and response.url == "/accounts/2fa/authenticate/"
    assert signed_in(browser) is None
    page = browser.get(response.url)
    assert page.status_code == 200 and '<header class="site-header">' in page.content.decode()
    code = totp_code(enrolled)
    done = browser.post("/accounts/2fa/authenticate/", {"code": code})
    assert done.status_code == 302 and done.url == reverse("dashboard") and signed_in(browser) == str(enrolled.pk)
    other = Client()
    log_in(other, "alice@example.com")
    replayed = other.post("/accounts/2fa/authenticate/", {"code": code})
    assert replayed.status_code == 200 and "Incorrect code" in replayed.content.decode() and signed_in(other) is None


def test_a_recovery_code_logs_in_once(enrolled):
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes

    (code, *_) = RecoveryCodes.activate(enrolled).get_unused_codes()
    browser = Client()
    log_in(browser, "alice@example.com")
    done = browser.post("/accounts/2fa/authenticate/", {"code": code})
    assert done.status_code == 302 and signed_in(browser) == str(enrolled.pk)
    again = Client()
    log_in(again, "alice@example.com")
    reused = again.post("/accounts/2fa/authenticate/", {"code": code})
    assert reused.status_code == 200 and signed_in(again) is None
    assert code not in Authenticator.objects.get(type="recovery_codes").wrap().get_unused_codes()


def test_wrong_codes_are_refused_and_counted_by_the_lockout(enrolled, settings):
    browser = Client()
    log_in(browser, "alice@example.com")
    wrong = wrong_code(totp_code(enrolled))
    statuses = [
        browser.post("/accounts/2fa/authenticate/", {"code": wrong}).status_code
        for _ in range(settings.HUB_LOGIN_FAILURE_LIMIT)
    ]
    assert statuses == [200] * (settings.HUB_LOGIN_FAILURE_LIMIT - 1) + [429]
    attempt = AccessAttempt.objects.get()
    assert (attempt.username, attempt.failures_since_start) == ("alice", settings.HUB_LOGIN_FAILURE_LIMIT)
    assert wrong not in attempt.post_data
    locked = browser.post("/accounts/2fa/authenticate/", {"code": totp_code(enrolled)})
    assert locked.status_code == 429 and "Too many failed logins" in locked.content.decode()
    assert signed_in(browser) is None
    assert log_in(Client(), "alice@example.com").status_code == 429  # the password too, as for wrong passwords


def test_a_success_with_the_code_forgets_earlier_failures(enrolled):
    browser = Client()
    log_in(browser, "alice@example.com")
    browser.post("/accounts/2fa/authenticate/", {"code": wrong_code(totp_code(enrolled))})
    assert AccessAttempt.objects.get().failures_since_start == 1
    assert browser.post("/accounts/2fa/authenticate/", {"code": totp_code(enrolled)}).status_code == 302
    assert not AccessAttempt.objects.exists()


# The data migration from django-otp.

OTP_TABLE_SQL = """CREATE TABLE otp_totp_totpdevice (
    id serial PRIMARY KEY, user_id bigint NOT NULL, name varchar(64) NOT NULL, confirmed boolean NOT NULL,
    key varchar(80) NOT NULL, step smallint NOT NULL, t0 bigint NOT NULL, digits smallint NOT NULL,
    tolerance smallint NOT NULL, drift smallint NOT NULL, last_t bigint NOT NULL)"""


def django_otp_code(hex_key: str, at: float) -> str:
    """RFC 6238 from django-otp's stored key, computed here without allauth: what the operator's app shows."""
    digest = hmac.new(bytes.fromhex(hex_key), struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    return f"{(struct.unpack('>I', digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 10**6:06d}"


def test_an_operators_django_otp_device_keeps_working_after_the_migration(alice):
    migration = importlib.import_module("accounts.migrations.0008_totp_devices_to_allauth")
    alice.is_staff = True
    alice.save()
    bob, carol = verified_user("bob@example.com"), verified_user("carol@example.com")
    key = "3132333435363738393031323334353637383930"  # RFC 6238's test secret, as django-otp stores it (hex)
    with connection.cursor() as cursor:
        cursor.execute(OTP_TABLE_SQL)
        rows = [(alice.pk, True, key, 30, 0, 6), (bob.pk, False, key, 30, 0, 6), (carol.pk, True, key, 60, 0, 6)]
        for user_id, confirmed, hex_key, step, t0, digits in rows:
            cursor.execute(
                "INSERT INTO otp_totp_totpdevice (user_id, name, confirmed, key, step, t0, digits, tolerance, drift,"
                " last_t) VALUES (%s, 'phone', %s, %s, %s, %s, %s, 1, 0, -1)",
                [user_id, confirmed, hex_key, step, t0, digits],
            )
    with connection.schema_editor() as editor:
        migration.forwards(apps, editor)
    (migrated,) = Authenticator.objects.all()  # bob's was never confirmed, carol's steps allauth cannot follow
    assert migrated.user_id == alice.pk and migrated.type == "totp"
    assert "otp_totp_totpdevice" not in connection.introspection.table_names()  # its FK would block deleting users

    browser = Client()
    assert log_in(browser, "alice@example.com").url.startswith("/accounts/2fa/authenticate/")
    done = browser.post("/accounts/2fa/authenticate/", {"code": django_otp_code(key, time.time())})
    assert done.status_code == 302 and signed_in(browser) == str(alice.pk)
    assert browser.get("/admin/").status_code == 200  # the code was the MFA step the admin wants


def test_the_migration_does_nothing_without_django_otp_tables(alice):
    migration = importlib.import_module("accounts.migrations.0008_totp_devices_to_allauth")
    with connection.schema_editor() as editor:
        migration.forwards(apps, editor)
    assert not Authenticator.objects.exists()
