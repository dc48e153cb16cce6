"""The dashboard's settings page by HTTP (accounts/views/settings.py, accounts/middleware.py): every role edits their
own name, time zone and language; only an owner or an admin renames the organisation (audited), the others see its
name and get 403 for a forged POST; the saved zone shapes the times shown, the saved language the pages', and the
footer's switch and the settings page keep one language between them."""

from datetime import UTC, datetime

import pytest
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.conf import settings
from django.test import Client, RequestFactory
from django.utils import timezone, translation

from accounts.middleware import UserPreferencesMiddleware
from accounts.models import AuditEvent, Membership, Organization, User
from tests.actors import ROLES, make_user

pytestmark = pytest.mark.django_db

PAGE = "/dashboard/settings/"
RENAMERS = ["owner", "admin"]
OTHERS = ["developer", "billing", "viewer"]
RENAME_FORM = 'action="/dashboard/settings/organisation"'


def client_of(user, **headers) -> Client:
    client = Client(**headers)
    client.force_login(user)
    return client


def page_of(client: Client) -> str:
    response = client.get(PAGE)
    assert response.status_code == 200
    return response.content.decode()


def member(world, role: str) -> User:
    return getattr(world, role)


# The page, for every role.


@pytest.mark.parametrize("role", ROLES)
def test_every_role_sees_their_profile_and_the_organisation_but_only_owners_and_admins_the_rename_form(world, role):
    page = page_of(client_of(member(world, role)))
    assert 'action="/dashboard/settings/profile"' in page and 'name="first_name"' in page
    assert 'action="/dashboard/settings/preferences"' in page and 'name="time_zone"' in page
    assert f"{role}@example.com" in page and 'href="/accounts/email/"' in page
    assert 'href="/accounts/password/change/"' in page
    assert "<code>acme</code>" in page and "Acme" in page
    if role in RENAMERS:
        assert RENAME_FORM in page and 'name="name" value="Acme"' in page
        assert "Only an owner or an admin can rename" not in page
    else:
        assert RENAME_FORM not in page and 'name="name"' not in page
        assert "Only an owner or an admin can rename the organisation." in page


def test_the_page_needs_a_signed_in_member():
    response = Client().get(PAGE)
    assert response.status_code == 302 and response.url.startswith("/accounts/login/?next=/dashboard/settings/")
    lonely = client_of(make_user("lonely"))
    response = lonely.get(PAGE)
    assert response.status_code == 302 and response.url == "/dashboard/organisations/new"


def test_the_sections_nav_and_the_header_link_to_the_settings_and_two_factor_pages(world):
    page = page_of(client_of(world.viewer))
    assert f'<a href="{PAGE}" aria-current="page">Settings</a>' in page
    assert '<a href="/accounts/2fa/">Two-factor authentication</a>' in page
    assert "/accounts/2fa/" not in Client().get("/").content.decode()  # not for visitors


# The profile: every role, their own.


@pytest.mark.parametrize("role", ROLES)
def test_every_role_saves_their_own_name(world, role):
    user = member(world, role)
    browser = client_of(user)
    response = browser.post("/dashboard/settings/profile", {"first_name": "Ada", "last_name": "Lovelace"})
    assert response.status_code == 302 and response.url == PAGE
    user.refresh_from_db()
    assert (user.first_name, user.last_name) == ("Ada", "Lovelace")
    page = page_of(browser)
    assert "Your profile is saved." in page and 'value="Ada"' in page and 'value="Lovelace"' in page
    assert User.objects.exclude(pk=user.pk).filter(first_name="Ada").count() == 0


def test_a_name_too_long_is_refused_next_to_the_field(world):
    response = client_of(world.viewer).post("/dashboard/settings/profile", {"first_name": "x" * 200, "last_name": ""})
    assert response.status_code == 400 and "Ensure this value has at most 150 characters" in response.content.decode()
    world.viewer.refresh_from_db()
    assert world.viewer.first_name == ""


def test_a_user_without_a_password_is_offered_to_set_one(world):
    world.viewer.set_unusable_password()
    world.viewer.save()
    page = page_of(client_of(world.viewer))
    assert (
        'href="/accounts/password/set/"' in page and 'href="/accounts/password/change/"' not in page.split("<main")[1]
    )


def test_only_get_and_post_where_each_belongs(world):
    browser = client_of(world.owner)
    assert browser.post(PAGE).status_code == 405
    assert browser.get("/dashboard/settings/profile").status_code == 405
    assert browser.get("/dashboard/settings/organisation").status_code == 405


# Two-factor devices.


def test_without_an_authenticator_the_page_offers_to_set_one_up(world):
    page = page_of(client_of(world.developer))
    assert 'href="/accounts/2fa/totp/activate/"' in page and "Off" in page
    assert 'href="/accounts/2fa/totp/deactivate/"' not in page
    assert 'href="/accounts/2fa/recovery-codes/generate/"' not in page  # nothing to recover yet
    assert 'href="/accounts/2fa/webauthn/' not in page  # not offered (MFA_SUPPORTED_TYPES)


def test_with_an_authenticator_the_page_shows_it_on_and_the_recovery_codes_left(world):
    TOTP.activate(world.developer, generate_totp_secret())
    codes = RecoveryCodes.activate(world.developer)
    codes.validate_code(codes.get_unused_codes()[0])  # one used
    page = page_of(client_of(world.developer))
    assert 'href="/accounts/2fa/totp/deactivate/"' in page and 'href="/accounts/2fa/totp/activate/"' not in page
    assert '<span class="badge ok">On</span>' in page
    assert "9 left" in page and 'href="/accounts/2fa/recovery-codes/"' in page
    assert 'href="/accounts/2fa/recovery-codes/generate/"' in page
    assert 'href="/accounts/2fa/"' in page


def test_security_keys_are_listed_when_the_site_offers_them(world, settings):
    settings.MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
    page = page_of(client_of(world.developer))
    # allauth's routes for them come with the URLconf, which was built without: the page shows the state only.
    assert "<strong>Security keys</strong>" in page and '<span class="badge">None</span>' in page


# The organisation's name.


@pytest.mark.parametrize("role", RENAMERS)
def test_an_owner_or_an_admin_renames_the_organisation_and_it_is_audited(world, role):
    user = member(world, role)
    browser = client_of(user)
    response = browser.post("/dashboard/settings/organisation", {"name": "  Acme Corporation "})
    assert response.status_code == 302 and response.url == PAGE
    world.acme.refresh_from_db()
    assert (world.acme.name, world.acme.slug) == ("Acme Corporation", "acme")  # the slug stays
    event = AuditEvent.objects.get(action="organization.rename")
    assert event.organization == world.acme and event.actor_user == user
    assert event.details == {"from": "Acme", "to": "Acme Corporation"}
    page = page_of(browser)
    assert "The organisation is now called Acme Corporation." in page and "<h1>" in page


@pytest.mark.parametrize("role", OTHERS)
def test_other_roles_are_refused_a_forged_rename_and_nothing_changes(world, role):
    response = client_of(member(world, role)).post("/dashboard/settings/organisation", {"name": "Hijacked"})
    assert response.status_code == 403
    world.acme.refresh_from_db()
    assert world.acme.name == "Acme" and not Organization.objects.filter(name="Hijacked").exists()
    assert not AuditEvent.objects.filter(action="organization.rename").exists()


def test_the_rename_acts_on_the_current_organisation_only_where_the_role_allows(world):
    # An admin of Acme who is a viewer of Globex, switched to Globex: refused there, and Acme untouched too.
    Membership.objects.create(user=world.admin, organization=world.globex, role="viewer")
    browser = client_of(world.admin)
    browser.post("/dashboard/organisations/switch", {"organization": "globex"})
    assert browser.post("/dashboard/settings/organisation", {"name": "Hijacked"}).status_code == 403
    assert set(Organization.objects.values_list("name", flat=True)) == {"Acme", "Globex"}


def test_an_empty_name_is_refused_next_to_the_field(world):
    response = client_of(world.owner).post("/dashboard/settings/organisation", {"name": "   "})
    assert response.status_code == 400 and "This field is required." in response.content.decode()
    world.acme.refresh_from_db()
    assert world.acme.name == "Acme" and not AuditEvent.objects.filter(action="organization.rename").exists()


def test_the_service_refuses_a_role_the_matrix_does_not_allow(world):
    from accounts import services

    with pytest.raises(services.PermissionDenied):
        services.organization_update(organization=world.acme, name="Hijacked", actor_role="developer")
    world.acme.refresh_from_db()
    assert world.acme.name == "Acme"


# Time zone.


def test_the_saved_time_zone_shapes_the_times_shown(world):
    browser = client_of(world.viewer)  # which sets last_login to now: put it at a known instant
    User.objects.filter(pk=world.viewer.pk).update(last_login=datetime(2026, 1, 15, 23, 30, tzinfo=UTC))
    assert "2026-01-15 23:30 UTC" in page_of(browser)
    response = browser.post("/dashboard/settings/preferences", {"time_zone": "Asia/Tokyo", "language": ""})
    assert response.status_code == 302
    world.viewer.refresh_from_db()
    assert world.viewer.time_zone == "Asia/Tokyo"
    page = page_of(browser)
    assert "2026-01-16 08:30 JST" in page and "2026-01-15 23:30" not in page
    assert '<option value="Asia/Tokyo" selected>Asia/Tokyo</option>' in page
    assert "Times are shown in Asia/Tokyo" in page
    # Another user's pages keep the site's zone.
    other = client_of(world.developer)
    assert "Times are shown in UTC" in page_of(other)


@pytest.mark.parametrize("role", ROLES)
def test_every_role_saves_their_own_zone_and_language_and_no_one_elses(world, role):
    user = member(world, role)
    response = client_of(user).post(
        "/dashboard/settings/preferences", {"time_zone": "America/Sao_Paulo", "language": "ja"}
    )
    assert response.status_code == 302 and response.url == PAGE
    user.refresh_from_db()
    assert (user.time_zone, user.language) == ("America/Sao_Paulo", "ja")
    assert User.objects.exclude(pk=user.pk).filter(time_zone="America/Sao_Paulo").count() == 0


def test_only_owners_and_admins_may_manage_the_organisation():
    from accounts import permissions

    assert {role for role in ROLES if permissions.allows(role, "manage_organization")} == set(RENAMERS)


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "localtime", "../../etc/passwd", "x" * 100])
def test_a_zone_that_is_not_one_is_refused(world, zone):
    world.viewer.time_zone = "Europe/Paris"
    world.viewer.save()
    response = client_of(world.viewer).post("/dashboard/settings/preferences", {"time_zone": zone, "language": ""})
    assert response.status_code == 400 and "Select a valid choice." in response.content.decode()
    world.viewer.refresh_from_db()
    assert world.viewer.time_zone == "Europe/Paris"


def test_the_model_refuses_a_zone_or_a_language_that_is_not_one(world):
    from django.core.exceptions import ValidationError

    world.viewer.time_zone, world.viewer.language = "Mars/Olympus_Mons", "fr"
    with pytest.raises(ValidationError) as refused:
        world.viewer.full_clean()
    assert set(refused.value.message_dict) == {"time_zone", "language"}


def test_the_zone_is_the_sites_for_a_visitor_after_a_user_with_their_own():
    # The middleware always sets the zone: a thread serving a Tokyo user next serves a visitor in the site's.
    from django.contrib.auth.models import AnonymousUser

    middleware = UserPreferencesMiddleware(lambda request: None)
    tokyo = User(username="tokyo", time_zone="Asia/Tokyo")
    request = RequestFactory().get("/")
    request.user = tokyo
    middleware.process_request(request)
    assert timezone.get_current_timezone_name() == "Asia/Tokyo"
    request.user = AnonymousUser()
    middleware.process_request(request)
    assert timezone.get_current_timezone_name() == settings.TIME_ZONE
    request.user = User(username="gone", time_zone="Atlantis/Capital")  # saved, then dropped by tzdata
    middleware.process_request(request)
    assert timezone.get_current_timezone_name() == settings.TIME_ZONE


# Language.


def test_the_saved_language_wins_over_the_browsers_and_sets_the_switchs_cookie(world):
    browser = client_of(world.viewer, HTTP_ACCEPT_LANGUAGE="en")
    response = browser.post("/dashboard/settings/preferences", {"time_zone": "", "language": "ja"})
    assert response.status_code == 302
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "ja"
    world.viewer.refresh_from_db()
    assert world.viewer.language == "ja"
    page = page_of(browser)
    assert '<html lang="ja">' in page and "設定" in page
    assert '<option value="ja" lang="ja" selected>' in page  # the footer's switch agrees
    # Even with another language in the cookie (set on another device, say), the saved one wins once signed in.
    browser.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    assert '<html lang="ja">' in page_of(browser)
    # Signed out, the cookie decides again: the one saving set, the same language.
    visitor = Client(HTTP_ACCEPT_LANGUAGE="en")
    visitor.cookies[settings.LANGUAGE_COOKIE_NAME] = "ja"
    assert '<html lang="ja">' in visitor.get("/").content.decode()


def test_choosing_the_browsers_language_clears_the_cookie_so_accept_language_decides(world):
    world.viewer.language = "ja"
    world.viewer.save()
    browser = client_of(world.viewer, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    browser.cookies[settings.LANGUAGE_COOKIE_NAME] = "ja"
    assert '<html lang="ja">' in page_of(browser)
    response = browser.post("/dashboard/settings/preferences", {"time_zone": "", "language": ""})
    assert response.status_code == 302
    cookie = response.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "" and cookie["max-age"] == 0
    world.viewer.refresh_from_db()
    assert world.viewer.language == ""
    assert '<html lang="zh-hans">' in page_of(browser)


def test_the_saved_message_is_in_the_new_language(world):
    browser = client_of(world.viewer)
    browser.post("/dashboard/settings/preferences", {"time_zone": "", "language": "ja"})
    with translation.override("ja"):
        message = translation.gettext("Your time zone and language are saved.")
    page = page_of(browser)
    assert '<html lang="ja">' in page and f'<li class="message success">{message}</li>' in page


def test_a_language_the_site_does_not_offer_is_refused(world):
    response = client_of(world.viewer).post("/dashboard/settings/preferences", {"time_zone": "", "language": "fr"})
    assert response.status_code == 400 and settings.LANGUAGE_COOKIE_NAME not in response.cookies
    world.viewer.refresh_from_db()
    assert world.viewer.language == ""


def test_the_footers_switch_saves_a_signed_in_users_choice(world):
    world.viewer.language = "ja"
    world.viewer.save()
    browser = client_of(world.viewer)
    response = browser.post("/i18n/setlang/", {"language": "zh-hans", "next": PAGE})
    assert response.status_code == 302 and response.url == PAGE
    world.viewer.refresh_from_db()
    assert world.viewer.language == "zh-hans"
    page = page_of(browser)
    assert '<html lang="zh-hans">' in page and '<option value="zh-hans" selected>' in page  # the settings agree
    # A language Django knows but the site does not offer is no choice: nothing is saved.
    browser.post("/i18n/setlang/", {"language": "fr", "next": PAGE})
    world.viewer.refresh_from_db()
    assert world.viewer.language == "zh-hans"


def test_the_footers_switch_still_works_for_a_visitor():
    browser = Client()
    response = browser.post("/i18n/setlang/", {"language": "ja", "next": "/"})
    assert response.status_code == 302 and response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "ja"
    assert '<html lang="ja">' in browser.get("/").content.decode()
