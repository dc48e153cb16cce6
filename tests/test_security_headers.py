"""The site's security headers and cookies (hub/settings.py; README: "Languages and security headers"): a strict
Content-Security-Policy on every page and none on the gateway's answers, no inline script or style in the hub's
templates for it to refuse, and session and CSRF cookies HttpOnly/SameSite, Secure behind HTTPS."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from asgiref.sync import async_to_sync

from tests.signin import PASSWORD, fresh_throttles, log_in, verified_user

__all__ = ["fresh_throttles"]  # the autouse fixture, imported

ROOT = Path(__file__).resolve().parent.parent
CSP = "Content-Security-Policy"


def get(path: str, headers: dict | None = None) -> httpx.Response:
    """A GET through the hub's ASGI application, as gunicorn's workers serve it: the gateway's stack for /v1/ and
    /api/, the site's for the rest (hub/asgi.py)."""
    from hub.asgi import application

    async def fetch():
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.get(path, headers=headers)

    return async_to_sync(fetch)()


def directives(policy: str) -> dict[str, list[str]]:
    return {name: sources for name, *sources in (part.split() for part in policy.split(";") if part.strip())}


@pytest.mark.parametrize(
    "path", ["/", "/accounts/login/", "/accounts/signup/", "/accounts/password/reset/", "/no-such-page/"]
)
def test_the_sites_pages_have_a_strict_content_security_policy(transactional_db, path):
    response = get(path)
    assert response.status_code in (200, 404)
    policy = directives(response.headers[CSP])
    assert policy["default-src"] == ["'self'"] and policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"][0] == "'self'" and policy["object-src"] == ["'none'"]
    assert "script-src" not in policy and "style-src" not in policy  # default-src: 'self' only, nothing inline
    assert "unsafe" not in response.headers[CSP] and "*" not in response.headers[CSP]


@pytest.mark.parametrize("path", ["/v1/models", "/api/models", "/v1/no-such-endpoint"])
def test_the_gateways_answers_have_no_content_security_policy(transactional_db, path):
    from hub import db

    try:
        response = get(path, headers={"Authorization": "Bearer sk-hub-wrong"})
    finally:
        db.close()  # the gateway's database threads keep their connections: the test database is dropped later
    assert response.status_code in (401, 404) and response.headers["content-type"].startswith("application/json")
    assert CSP not in response.headers


def test_the_management_apis_documentation_loads_its_script_from_the_hub(transactional_db):
    """Swagger UI's setup script is a file of its own (?script): the policy would refuse it inline."""
    from django.test import Client

    from accounts.api import docs

    browser = Client(HTTP_HOST="127.0.0.1")
    browser.force_login(verified_user("ops@example.com"))
    page = browser.get("/manage/v1/docs/")
    assert page.status_code == 200
    policy = directives(page.headers[CSP])  # the site's, and Swagger UI's one run-time style by its hash
    assert policy["default-src"] == ["'self'"] and "script-src" not in policy
    assert policy["style-src"] == ["'self'", docs.SWAGGER_UI_STYLE] and "unsafe" not in page.headers[CSP]
    html = page.content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline script"
    assert browser.get("/manage/v1/docs/?script").status_code == 200


# No inline script or style in the hub's templates: the policy would refuse them (and the browser tests fail on
# the console error). The admin's TOTP enrolment page is django-otp's, on its way out (allauth MFA).
INLINE = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+=", re.IGNORECASE)
INLINE_LEFT = {"templates/admin/otp_enrol.html"}


def test_no_template_has_an_inline_script_or_style():
    found = {
        path.relative_to(ROOT).as_posix(): INLINE.findall(path.read_text(encoding="utf-8"))
        for folder in [ROOT / "templates", *ROOT.glob("*/templates")]
        for path in folder.rglob("*.html")
    }
    assert {path: hits for path, hits in found.items() if hits and path not in INLINE_LEFT} == {}
    assert INLINE.findall('<p style="x">') and INLINE.findall("<script>") and INLINE.findall('<a onclick="x">')
    assert not INLINE.findall('<script src="/static/a.js"></script>')


# Cookies.


@pytest.mark.django_db
def test_the_session_and_csrf_cookies_are_httponly_and_same_site_and_not_secure_on_plain_http():
    from django.test import Client

    verified_user("lin@example.com")
    browser = Client(HTTP_HOST="127.0.0.1", enforce_csrf_checks=False)
    browser.get("/accounts/login/")
    response = log_in(browser, "lin@example.com", PASSWORD)
    assert response.status_code == 302
    session = browser.cookies["sessionid"]
    assert session["httponly"] and session["samesite"] == "Lax" and not session["secure"]
    assert browser.cookies["csrftoken"]["samesite"] == "Lax"


def settings_under(**environment) -> dict:
    """hub/settings.py read in a process of its own, under `environment`."""
    code = (
        "import json, hub.settings as s; print(json.dumps({name: getattr(s, name) for name in ("
        "'HUB_HTTPS', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'LANGUAGE_COOKIE_SECURE')}"
        " | {'form-action': s.CONTENT_SECURITY_POLICY['DIRECTIVES']['form-action']}))"
    )
    keep = {name: value for name, value in os.environ.items() if not name.startswith(("HUB_", "STRIPE_"))}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**keep, "HUB_VAR_DIR": os.environ["HUB_VAR_DIR"], **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_behind_https_the_cookies_are_secure_and_forms_may_post_to_the_sign_in_providers():
    plain = settings_under()
    assert not plain["HUB_HTTPS"] and not plain["SESSION_COOKIE_SECURE"] and plain["form-action"] == ["'self'"]
    public = settings_under(
        HUB_PUBLIC_URL="https://hub.example.com",
        HUB_GITHUB_CLIENT_ID="id",
        HUB_GITHUB_CLIENT_SECRET="secret",
        HUB_OIDC_CLIENT_ID="id",
        HUB_OIDC_CLIENT_SECRET="secret",
        HUB_OIDC_SERVER_URL="https://sso.example.com/realms/acme",
        STRIPE_SECRET_KEY="sk_test_x",
    )
    assert public["HUB_HTTPS"] and public["SESSION_COOKIE_SECURE"] and public["CSRF_COOKIE_SECURE"]
    assert public["LANGUAGE_COOKIE_SECURE"]
    assert public["form-action"] == [
        "'self'",
        "https://github.com",
        "https://sso.example.com",
        "https://checkout.stripe.com",
    ]
    explicit = settings_under(HUB_HTTPS="on")
    assert explicit["HUB_HTTPS"] and explicit["SESSION_COOKIE_SECURE"]
