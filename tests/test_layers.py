"""The apps' layers (pyproject.toml's import contracts) and what crosses them: caches forgotten on commit."""

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from asgiref.sync import async_to_sync, markcoroutinefunction
from django.db.models.signals import post_save
from django.test import RequestFactory

from accounts.models import AuditEvent
from accounts.services import api_key_create, api_key_rotate
from hub import auth
from hub.errors import AuthenticationFailed

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold():
    # The layers accounts < providers < billing < gateway, no app importing the
    # gateway, adapters free of models: lint-imports reads them from pyproject.toml.
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_request_during_a_rotation_cannot_cache_the_old_key_as_valid(organization):
    old, raw = api_key_create(organization=organization, name="app")
    request = RequestFactory().get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {raw}")
    auth.forget_all()
    seen = []

    def concurrent_request(sender, instance, **kwargs):
        # The rotation's last write, inside its transaction: another request
        # (the gateway's read thread, its own connection) still reads the old
        # key as valid, and caches it.
        if instance.action == "key.rotate":
            seen.append(async_to_sync(auth.authenticate)(request))

    post_save.connect(concurrent_request, sender=AuditEvent, weak=False)
    try:
        api_key_rotate(api_key=old)
    finally:
        post_save.disconnect(concurrent_request, sender=AuditEvent)
    assert seen and seen[0].key_id == old.pk  # the race happened
    with pytest.raises(AuthenticationFailed):
        async_to_sync(auth.authenticate)(request)


# What runs where: the gateway's stack is HUB_GATEWAY_MIDDLEWARE, the site's MIDDLEWARE.
ran = []


class _Probe:
    async_capable, sync_capable = True, False

    def __init__(self, get_response):
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request):
        ran.append((self.name, request.path))
        return await self.get_response(request)


class GatewayProbe(_Probe):
    name = "gateway"


class SiteProbe(_Probe):
    name = "site"


def _get(app, path: str) -> int:
    async def get():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
            return (await client.get(path)).status_code

    return async_to_sync(get)()


def test_the_gateway_runs_its_own_middleware_and_the_site_its_own(settings, transactional_db):
    from django.core.handlers.asgi import ASGIHandler

    from hub.asgi import GatewayHandler, application, gateway_app, site_app

    # As configured: nothing on the API; the browser stack, login hardening last, on the site.
    assert settings.HUB_GATEWAY_MIDDLEWARE == [] and gateway_app._middleware_chain is not None
    assert site_app._middleware_chain is not None and settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"
    # The site's languages and Content-Security-Policy (issue 14): LocaleMiddleware right after sessions, whose
    # language it reads, and before CommonMiddleware; the API answers in English, with no CSP header.
    stack = settings.MIDDLEWARE
    sessions, locale = (
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.locale.LocaleMiddleware",
    )
    assert stack.index(locale) == stack.index(sessions) + 1 < stack.index("django.middleware.common.CommonMiddleware")
    assert (
        stack.index("csp.middleware.CSPMiddleware") == stack.index("django.middleware.security.SecurityMiddleware") + 1
    )
    # The user's own time zone and language (the settings page): right after auth, whose user it reads, and so
    # after LocaleMiddleware, whose choice the saved language overrides.
    preferences = "accounts.middleware.UserPreferencesMiddleware"
    assert stack.index(preferences) == stack.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1
    assert stack.index(locale) < stack.index(preferences)
    assert application is not None

    site_stack = list(settings.MIDDLEWARE)
    settings.MIDDLEWARE = [*site_stack, "tests.test_layers.SiteProbe"]
    settings.HUB_GATEWAY_MIDDLEWARE = ["tests.test_layers.GatewayProbe"]
    ran.clear()
    gateway, site = GatewayHandler(), ASGIHandler()
    assert [*site_stack, "tests.test_layers.SiteProbe"] == settings.MIDDLEWARE  # read, never swapped
    assert _get(gateway, "/v1/models") == 401
    assert _get(site, "/no-such-page/") == 404
    assert ran == [("gateway", "/v1/models"), ("site", "/no-such-page/")]


class SyncOnly:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)


def test_a_sync_only_middleware_is_refused_on_the_gateway(settings):
    # Django would run it in a thread per request; the gateway refuses to start with it.
    from django.core.exceptions import ImproperlyConfigured

    from hub.asgi import GatewayHandler

    settings.HUB_GATEWAY_MIDDLEWARE = ["tests.test_layers.SyncOnly"]
    with pytest.raises(ImproperlyConfigured, match="not async-capable"):
        GatewayHandler()
