"""Failed logins on /accounts/login/ count in the admin's lockout (django-axes): one account, one address, the same
limit and cool-off, whichever form the attempts came through."""

import pytest
from axes.models import AccessAttempt
from django.test import Client

from tests.signin import PASSWORD, fresh_throttles, log_in, signed_in, verified_user

pytestmark = pytest.mark.django_db
__all__ = ["fresh_throttles"]


def admin_log_in(browser, username, password=PASSWORD):
    """An operator's login, by username (the admin's login is this one, with next=/admin/)."""
    return browser.post("/accounts/login/?next=/admin/", {"login": username, "password": password})


@pytest.fixture
def alice():
    return verified_user("alice@example.com")


def test_failed_logins_lock_the_account_out_even_for_the_right_password(alice, settings):
    browser = Client()
    statuses = [log_in(browser, "alice@example.com", "guess").status_code for _ in range(settings.AXES_FAILURE_LIMIT)]
    assert statuses == [200] * (settings.HUB_LOGIN_FAILURE_LIMIT - 1) + [429]
    refused = log_in(browser, "alice@example.com")
    page = refused.content.decode()
    assert refused.status_code == 429 and signed_in(browser) is None
    assert "Too many failed logins" in page and "15 minutes" in page
    assert '<header class="site-header">' in page and 'href="/accounts/password/reset/"' in page  # not the admin's
    attempt = AccessAttempt.objects.get()
    # Counted under the account's username; the refused right password counted too (the wait starts again).
    assert (attempt.username, attempt.ip_address, attempt.failures_since_start) == ("alice", "127.0.0.1", 6)
    assert "guess" not in attempt.post_data and "alice@example.com" not in attempt.post_data


def test_the_lock_takes_the_email_in_any_case_and_holds_on_the_admin_too(alice):
    alice.is_staff = True
    alice.save()
    browser = Client()
    for login in ["alice@example.com", "ALICE@example.com", "Alice@Example.com"]:
        log_in(browser, login, "guess")
    admin_log_in(browser, "alice", "guess")
    assert log_in(browser, "alice@example.com", "guess").status_code == 429
    assert admin_log_in(browser, "alice").status_code == 429  # one account, whichever door
    assert log_in(Client(REMOTE_ADDR="198.51.100.4"), "alice@example.com").status_code == 302  # another address


def test_a_success_forgets_earlier_failures(alice):
    browser = Client()
    for _ in range(4):
        log_in(browser, "alice@example.com", "guess")
    assert log_in(browser, "alice@example.com").status_code == 302
    assert not AccessAttempt.objects.exists()
    assert log_in(Client(), "alice@example.com", "guess").status_code == 200  # counting starts again


def test_an_unknown_email_is_counted_as_itself():
    browser = Client()
    for _ in range(5):
        last = log_in(browser, "Nobody@Example.com", "guess")
    assert last.status_code == 429
    assert AccessAttempt.objects.get().username == "nobody@example.com"
