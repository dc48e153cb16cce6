"""Social and OpenID Connect login: off until an operator sets a provider's client id and secret, then its button
is on the login page and the flow starts at the provider's authorize URL (nothing reaches the network here)."""

from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
from allauth.socialaccount.models import SocialLogin
from allauth.socialaccount.providers.openid_connect.views import OpenIDConnectOAuth2Adapter
from django.test import Client, RequestFactory

from accounts import services
from accounts.auth_adapter import SocialAccountAdapter
from accounts.models import User
from hub.settings import social_providers
from tests import factories
from tests.signin import fresh_throttles

pytestmark = pytest.mark.django_db
__all__ = ["fresh_throttles"]

ENVIRONMENTS = {
    "github": {"HUB_GITHUB_CLIENT_ID": "gh-client-id", "HUB_GITHUB_CLIENT_SECRET": "gh-secret"},
    "google": {"HUB_GOOGLE_CLIENT_ID": "google-client-id", "HUB_GOOGLE_CLIENT_SECRET": "google-secret"},
    "oidc": {
        "HUB_OIDC_CLIENT_ID": "oidc-client-id",
        "HUB_OIDC_CLIENT_SECRET": "oidc-secret",
        "HUB_OIDC_SERVER_URL": "https://sso.example.com/realms/acme",
        "HUB_OIDC_NAME": "Acme SSO",
    },
}
# Where each flow starts, with the client id it must carry; the path of its login view on the hub.
AUTHORIZE = {
    "github": ("https://github.com/login/oauth/authorize", "gh-client-id", "/accounts/github/login/"),
    "google": ("https://accounts.google.com/o/oauth2/v2/auth", "google-client-id", "/accounts/google/login/"),
    "oidc": (
        "https://sso.example.com/realms/acme/protocol/openid-connect/auth",
        "oidc-client-id",
        "/accounts/oidc/oidc/login/",
    ),
}
BUTTONS = {"github": "Continue with GitHub", "google": "Continue with Google", "oidc": "Continue with Acme SSO"}
DISCOVERY = {
    "issuer": "https://sso.example.com/realms/acme",
    "authorization_endpoint": AUTHORIZE["oidc"][0],
    "token_endpoint": "https://sso.example.com/realms/acme/protocol/openid-connect/token",
    "userinfo_endpoint": "https://sso.example.com/realms/acme/protocol/openid-connect/userinfo",
    "jwks_uri": "https://sso.example.com/realms/acme/protocol/openid-connect/certs",
}


@pytest.fixture
def provider_on(monkeypatch, settings):
    """Turn one provider on the way an operator does: its environment, read by the settings' own function."""

    def turn_on(name):
        for variable, value in ENVIRONMENTS[name].items():
            monkeypatch.setenv(variable, value)
        settings.SOCIALACCOUNT_PROVIDERS = social_providers()

    return turn_on


@pytest.fixture(autouse=True)
def no_network():
    """The OIDC discovery document comes from here, not from the provider; any other request would fail."""
    with mock.patch.object(OpenIDConnectOAuth2Adapter, "openid_config", DISCOVERY):
        yield


def test_off_by_default(settings):
    assert settings.SOCIALACCOUNT_PROVIDERS == {} and social_providers() == {}
    page = Client().get("/accounts/login/").content.decode()
    assert "Continue with" not in page and "third-party" not in page
    for _, _, path in AUTHORIZE.values():
        assert Client().post(path).status_code == 404, path


@pytest.mark.parametrize("name", ["github", "google", "oidc"])
def test_a_provider_with_a_client_id_gets_a_button_and_starts_at_its_authorize_url(provider_on, name):
    provider_on(name)
    browser = Client()
    page = browser.get("/accounts/login/").content.decode()
    authorize, client_id, path = AUTHORIZE[name]
    assert BUTTONS[name] in page and f'href="{path}?process=login"' in page
    others = [button for other, button in BUTTONS.items() if other != name]
    assert not any(button in page for button in others)
    # The button's page asks before leaving, with a form (a GET alone starts nothing: no login CSRF).
    confirm = browser.get(path).content.decode()
    assert '<form method="post"' in confirm and "csrfmiddlewaretoken" in confirm
    started = browser.post(path)
    assert started.status_code == 302
    where = urlsplit(started.url)
    assert f"{where.scheme}://{where.netloc}{where.path}" == authorize
    query = parse_qs(where.query)
    assert query["client_id"] == [client_id] and query["response_type"] == ["code"] and query["state"]
    assert query["redirect_uri"] == [f"http://testserver{path}callback/"]
    assert "secret" not in started.url


def test_several_providers_at_once(provider_on):
    for name in ENVIRONMENTS:
        provider_on(name)
    page = Client().get("/accounts/login/").content.decode()
    assert all(button in page for button in BUTTONS.values())


def social_login(email: str) -> SocialLogin:
    return SocialLogin(user=User(email=email), email_addresses=[])


@pytest.mark.parametrize(
    "mode,email,opens",
    [
        ("open", "anyone@example.com", True),
        ("closed", "anyone@example.com", False),
        ("invite", "anyone@example.com", False),
        ("invite", "Guest@Example.com", True),
    ],
)
def test_a_social_sign_up_follows_the_sign_up_mode(settings, mode, email, opens):
    settings.HUB_SIGNUP_MODE = mode
    organization = factories.organization("Acme")
    services.invitation_create(organization=organization, email="guest@example.com", role="viewer", actor_role="owner")
    request = RequestFactory().get("/accounts/github/login/callback/")
    assert SocialAccountAdapter().is_open_for_signup(request, social_login(email)) is opens
