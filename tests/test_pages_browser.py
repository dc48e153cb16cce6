"""The site's pages in a real browser, at desktop and phone widths (tests/browser.py): the home page, the
operator admin's login (allauth's), an operator signing in with password and TOTP code, the language
switch, and the pages' Content-Security-Policy at work."""

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

from accounts.models import User
from tests.browser import check_page, screenshot, watch_of
from tests.signin import totp_code

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"


def test_home_page(page):
    page.goto("/")
    assert page.title() and page.locator("body").inner_text().strip()
    assert page.url.rstrip("/") + "/v1" in page.content()  # the base URL to give an OpenAI client
    screenshot(page, "home")  # first: a page that fails the checks is one to look at
    check_page(page)


def test_admin_login_page(page):
    page.goto("/admin/")
    assert "/accounts/login/?next=%2Fadmin%2F" in page.url  # the one login
    for field in ("Email or username", "Password"):
        assert page.get_by_label(field).count() == 1, field
    screenshot(page, "admin-login")
    check_page(page)


@pytest.fixture
def operator(transactional_db):
    user = User.objects.create_superuser("operator", "op@example.com", PASSWORD)
    TOTP.activate(user, generate_totp_secret())
    return user


def test_an_operator_logs_in_with_a_totp_code_and_sees_the_admin_index(page, operator):
    page.goto("/admin/")
    page.get_by_label("Email or username").fill("operator")
    page.get_by_label("Password").fill(PASSWORD)
    screenshot(page, "admin-login-filled")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/accounts/2fa/authenticate/")
    page.get_by_label("Code").fill(totp_code(operator))
    screenshot(page, "admin-login-code")
    check_page(page)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/admin/")
    assert page.get_by_role("heading", name="Site administration").count() == 1
    assert page.get_by_role("link", name="Log out").count() + page.get_by_role("button", name="Log out").count()
    screenshot(page, "admin-index")
    check_page(page)


def sign_in(page, login: str, password: str) -> None:
    """Through the one login form, to where signing in lands: the dashboard (asking for an organisation first)."""
    page.goto("/accounts/login/")
    page.get_by_label("Email or username").fill(login)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard/**")


def test_enrolling_an_authenticator_shows_the_qr_code_and_the_secret(page, transactional_db):
    User.objects.create_superuser("operator", "op@example.com", PASSWORD)
    sign_in(page, "operator", PASSWORD)
    page.goto("/accounts/2fa/totp/activate/")
    page.get_by_label("Password").fill(PASSWORD)  # allauth asks again before an MFA change
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url("**/accounts/2fa/totp/activate/")
    qr = page.locator('img[src^="data:image/svg+xml"]')
    assert qr.count() == 1 and qr.evaluate("img => img.complete && img.naturalWidth > 0")  # drawn, not blocked
    assert page.get_by_label("Authenticator secret").input_value()
    screenshot(page, "totp-activate")
    check_page(page)


# The checks themselves catch what they are for.


def test_the_checks_catch_a_page_that_scrolls_sideways_or_has_an_unlabelled_control(page):
    page.goto("about:blank")  # not a hub page: its Content-Security-Policy would refuse these inline styles
    page.set_content('<main><p style="width: 2000px">wide</p></main>')
    with pytest.raises(AssertionError, match=r"scrolls sideways[\s\S]*p reaches 2\d\d\dpx"):
        check_page(page)
    page.set_content('<pre style="overflow: auto"><code style="display: block; width: 2000px">x</code></pre>')
    check_page(page)  # a box that scrolls by itself is fine
    page.set_content('<label>Name <input name="a"></label> <input name="b" aria-label="B"> <select name="c"></select>')
    with pytest.raises(AssertionError, match=r"without a label:\s+<select"):
        check_page(page)


def test_a_failed_request_and_a_script_error_are_problems_of_the_page(page):
    """The problems that fail a test (tests/browser.py's pytest_runtest_call)."""
    page.goto("/no-such-page/")
    page.evaluate("setTimeout(() => { throw new Error('boom'); })")
    page.wait_for_timeout(100)
    problems = "\n".join(watch_of(page).problems)
    assert "404 for GET" in problems and "/no-such-page/" in problems
    assert "console error" in problems and "script error" in problems and "boom" in problems
    watch_of(page).problems.clear()  # seen: this test's page is not a failure


def test_the_language_switch_changes_the_pages_language_without_script(page):
    page.goto("/accounts/login/")
    page.get_by_label("Language").select_option("ja")
    page.get_by_role("button", name="Change language").click()
    page.wait_for_load_state()
    assert page.url.endswith("/accounts/login/") and page.locator("html").get_attribute("lang") == "ja"
    assert page.get_by_role("heading", name="ログイン").count() == 1
    assert page.get_by_label("言語").count() == 1  # the switch itself, now in Japanese
    screenshot(page, "login-ja")
    check_page(page)
    page.get_by_label("言語").select_option("zh-hans")
    page.get_by_role("button", name="言語を変更").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "zh-hans" and page.get_by_role("heading", name="登录").count()
    screenshot(page, "login-zh-hans")
    check_page(page)


def test_a_pages_content_security_policy_refuses_an_inline_style_and_the_test_sees_it(page):
    page.goto("/")
    page.evaluate("""document.body.insertAdjacentHTML("beforeend", '<p style="color: red">inline</p>')""")
    page.wait_for_timeout(100)
    problems = "\n".join(watch_of(page).problems)
    assert "console error" in problems and "Content Security Policy" in problems, problems
    watch_of(page).problems.clear()  # seen: this test's page is not a failure


def test_the_management_apis_documentation_runs_under_the_pages_policy(page, transactional_db):
    """Swagger UI (drf-spectacular's sidecar) with its setup script from a file: no refused script or style."""
    from tests.signin import PASSWORD as USER_PASSWORD
    from tests.signin import verified_user

    verified_user("docs@example.com")
    sign_in(page, "docs@example.com", USER_PASSWORD)
    page.goto("/manage/v1/docs/")
    page.locator(".swagger-ui .info").wait_for()
    assert page.get_by_text("The hub: management API").count()
