"""The dashboard's API keys page by HTTP (accounts/views/keys.py): every role × every page and action, as the
management API's rules say (accounts/api/keys.py). What a role may do works and shows its control; what it may
not is neither shown nor done (403, nothing changed); another organisation's key is not found (404). A key's
secret is in the one answer that made it, marked no-store, and nowhere after."""

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from accounts.forms.keys import ONCE_KEY
from accounts.models import ApiKey, AuditEvent, KeyScope
from accounts.services import api_key_create, hash_api_key
from accounts.signals import keys_changed
from tests.actors import ROLES

pytestmark = pytest.mark.django_db

MAY_VIEW = {"owner", "admin", "developer", "viewer"}
MAY_CREATE = {"owner", "admin", "developer"}
MAY_CREATE_ADMIN = {"owner", "admin"}
MAY_REVOKE = {"owner", "admin"}
MAY_ROTATE = MAY_REVOKE & MAY_CREATE


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def once_token(browser: Client) -> str:
    """The create form's one-time token, as the form page gives it."""
    page = browser.get("/dashboard/keys/new").content.decode()
    found = re.search(r'name="once" value="([^"]+)"', page)
    assert found, page
    return found[1]


def new_key_form(**fields) -> dict:
    return {
        "name": "ci",
        "scope": "inference",
        "allowed_models": "",
        "allowed_ips": "",
        "rpm_limit": "",
        "tpm_limit": "",
        "budget": "",
        "budget_period": "monthly",
        "expires_at": "",
        **fields,
    }


def limits_form(api_key, **fields) -> dict:
    base = {
        "allowed_models": "",
        "allowed_ips": "",
        "rpm_limit": "",
        "tpm_limit": "",
        "budget": "",
        "budget_period": "monthly",
        "expires_at": "",
        **fields,
    }
    return {f"key-{api_key.pk}-{name}": value for name, value in base.items()}


def raw_key_in(page: str) -> str | None:
    found = re.search(r'value="(sk-hub-[^"]+)"', page)
    return found[1] if found else None


# The list.


@pytest.mark.parametrize("role", ROLES)
def test_the_list_shows_the_keys_to_who_may_view_them_and_the_create_button_to_who_may_create(world, role):
    world.acme_key.allowed_models, world.acme_key.rpm_limit = ["openai/*"], 60
    world.acme_key.save()
    response = client_of(getattr(world, role)).get("/dashboard/keys/")
    if role not in MAY_VIEW:
        assert response.status_code == 403
        return
    page = response.content.decode()
    assert response.status_code == 200
    assert world.acme_key.prefix in page and "acme app" in page
    assert "1 model" in page and "60 requests/min" in page
    assert world.globex_key.prefix not in page and "globex app" not in page  # another organisation's
    assert ('href="/dashboard/keys/new"' in page) is (role in MAY_CREATE)
    assert ("Create a key" in page) is (role in MAY_CREATE)
    assert world.acme_raw_key not in page and world.acme_key.hashed_key not in page


@pytest.mark.parametrize("role", ROLES)
def test_the_nav_lists_the_keys_section_to_who_may_view_them(world, role):
    page = client_of(getattr(world, role)).get("/dashboard/").content.decode()
    assert ('href="/dashboard/keys/"' in page) is (role in MAY_VIEW)


def test_the_list_needs_a_signed_in_user():
    response = Client().get("/dashboard/keys/")
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


def test_time_stamps_are_shown_in_the_current_time_zone(world, settings):
    world.acme_key.last_used_at = datetime(2026, 3, 4, 23, 30, tzinfo=UTC)
    world.acme_key.save()
    settings.TIME_ZONE = "Asia/Tokyo"
    page = client_of(world.owner).get("/dashboard/keys/").content.decode()
    assert 'datetime="2026-03-05T08:30:00+09:00"' in page and "March 5, 2026, 8:30 a.m." in page


# Creating a key.


@pytest.mark.parametrize("role", ROLES)
def test_creating_a_key_shows_it_once_to_who_may_and_refuses_the_others(world, role):
    browser = client_of(getattr(world, role))
    before = ApiKey.objects.count()
    if role not in MAY_CREATE:
        assert browser.get("/dashboard/keys/new").status_code == 403
        response = browser.post("/dashboard/keys/new", new_key_form(name=f"forged by {role}", once="x"))
        assert response.status_code == 403
        assert ApiKey.objects.count() == before
        return
    response = browser.post("/dashboard/keys/new", new_key_form(name=f"made by {role}", once=once_token(browser)))
    page = response.content.decode()
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw = raw_key_in(page)
    assert raw and raw.startswith("sk-hub-")
    assert 'data-copy="#new-key"' in page and 'id="new-key"' in page
    key = ApiKey.objects.get(name=f"made by {role}")
    assert key.organization == world.acme and key.hashed_key == hash_api_key(raw) and key.created_by.username == role
    assert key.scope == KeyScope.INFERENCE
    assert AuditEvent.objects.filter(action="key.create", target_id=str(key.pk), actor_user__username=role).exists()
    # Nowhere after: not the list, not the key's page, not the session.
    assert raw not in browser.get("/dashboard/keys/").content.decode()
    assert raw not in browser.get(f"/dashboard/keys/{key.pk}/").content.decode()
    assert raw not in str(dict(browser.session.items()))


def test_the_same_form_sent_twice_at_once_makes_one_key(world, transactional_db):
    """A double click: two requests carry the same token before either is answered. The session cannot tell them
    apart (both read it before either writes it), so the claim is the shared cache's atomic add."""
    from threading import Barrier, Thread

    first, second = client_of(world.owner), client_of(world.owner)
    second.cookies = first.cookies  # one browser, one session
    form = new_key_form(name="double click", once=once_token(first))
    barrier, answers = Barrier(2), []

    def send(browser):
        from django.db import connection

        barrier.wait()
        try:
            answers.append(browser.post("/dashboard/keys/new", form))
        finally:
            connection.close()  # the thread's own connection, or the test database cannot be dropped

    threads = [Thread(target=send, args=(browser,)) for browser in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answer.status_code for answer in answers) == [200, 302]
    assert ApiKey.objects.filter(name="double click").count() == 1
    assert sum(raw_key_in(answer.content.decode()) is not None for answer in answers) == 1


def test_the_limits_of_a_new_key_are_those_the_form_gives(world):
    browser = client_of(world.developer)
    expires = (timezone.localtime() + timedelta(days=30)).replace(second=0, microsecond=0)
    response = browser.post(
        "/dashboard/keys/new",
        new_key_form(
            name="limited",
            allowed_models="openai/*\nclaude-*, gemini-*",
            allowed_ips="203.0.113.7\n2001:db8::/32",
            rpm_limit="60",
            tpm_limit="10000",
            budget="12.5",
            budget_period="weekly",
            expires_at=expires.strftime("%Y-%m-%dT%H:%M"),
            once=once_token(browser),
        ),
    )
    assert response.status_code == 200
    key = ApiKey.objects.get(name="limited")
    assert key.allowed_models == ["openai/*", "claude-*", "gemini-*"]
    assert key.allowed_ips == ["203.0.113.7/32", "2001:db8::/32"]  # as the API normalises them
    assert (key.rpm_limit, key.tpm_limit, key.budget, key.budget_period) == (60, 10000, Decimal("12.5"), "weekly")
    assert key.expires_at == expires


@pytest.mark.parametrize(
    "fields, error",
    [
        ({"name": ""}, "This field is required."),
        ({"allowed_ips": "not-an-address"}, "does not appear to be an IPv4 or IPv6 network"),
        ({"rpm_limit": "0"}, "Ensure this value is greater than or equal to 1."),
        ({"tpm_limit": "2147483648"}, "Ensure this value is less than or equal to 2147483647."),
        ({"rpm_limit": "lots"}, "A valid integer is required."),
        ({"budget": "-1"}, "Ensure this value is greater than or equal to 0."),
        ({"budget_period": "hourly"}, "Select a valid choice."),
        ({"expires_at": "2001-01-01T00:00"}, "Choose a time in the future."),
        ({"response_cache_seconds": "-1"}, "Ensure this value is greater than or equal to 0."),
        ({"response_cache_seconds": "2592001"}, "Ensure this value is less than or equal to 2592000."),
        ({"response_cache_seconds": "9" * 400}, "Ensure this value is less than or equal to 2592000."),
        ({"response_cache_seconds": "1.5"}, "A valid integer is required."),
        ({"response_cache_seconds": "6\x000"}, "Null characters are not allowed."),
    ],
)
def test_the_form_refuses_what_the_management_api_refuses_and_says_why(world, fields, error):
    browser = client_of(world.owner)
    response = browser.post("/dashboard/keys/new", new_key_form(name="bad", once=once_token(browser)) | fields)
    page = response.content.decode()
    assert response.status_code == 400 and error in page and 'class="errorlist"' in page
    assert raw_key_in(page) is None
    assert not ApiKey.objects.filter(name__in=["bad", ""]).exists()


@pytest.mark.parametrize("role", ROLES)
def test_an_admin_scoped_key_is_offered_and_made_only_for_who_may_make_one(world, role):
    browser = client_of(getattr(world, role))
    if role not in MAY_CREATE:
        return  # refused the page itself (above)
    page = browser.get("/dashboard/keys/new").content.decode()
    assert ('<option value="admin"' in page) is (role in MAY_CREATE_ADMIN)
    response = browser.post(
        "/dashboard/keys/new", new_key_form(name="admin key", scope="admin", once=once_token(browser))
    )
    if role in MAY_CREATE_ADMIN:
        assert response.status_code == 200 and ApiKey.objects.get(name="admin key").scope == KeyScope.ADMIN
    else:
        assert response.status_code == 403 and not ApiKey.objects.filter(name="admin key").exists()


def test_sending_the_form_again_makes_no_second_key_and_shows_no_secret(world):
    browser = client_of(world.developer)
    form = new_key_form(name="once only", once=once_token(browser))
    raw = raw_key_in(browser.post("/dashboard/keys/new", form).content.decode())
    assert raw
    again = browser.post("/dashboard/keys/new", form)  # a reload of the answer
    key = ApiKey.objects.get(name="once only")  # one key, not two
    assert again.status_code == 302 and again.url == f"/dashboard/keys/{key.pk}/"
    page = browser.get(again.url).content.decode()
    assert raw not in page and raw_key_in(page) is None and "shown once" in page


def test_a_form_without_its_token_makes_nothing(world):
    browser = client_of(world.owner)
    response = browser.post("/dashboard/keys/new", new_key_form(name="no token", once="made-up"))
    page = response.content.decode()
    assert response.status_code == 400 and "This form has expired" in page
    assert not ApiKey.objects.filter(name="no token").exists()
    # The answer's form carries a fresh token, so sending it again works.
    token = re.search(r'name="once" value="([^"]+)"', page)[1]
    assert token != "made-up" and token in browser.session[ONCE_KEY]


# A key's page and its limits.


@pytest.mark.parametrize("role", ROLES)
def test_a_keys_page_shows_the_controls_the_role_may_use(world, role):
    response = client_of(getattr(world, role)).get(f"/dashboard/keys/{world.acme_key.pk}/")
    if role not in MAY_VIEW:
        assert response.status_code == 403
        return
    page = response.content.decode()
    assert response.status_code == 200 and world.acme_key.prefix in page and "Limits" in page
    assert (f'action="/dashboard/keys/{world.acme_key.pk}/limits"' in page) is (role in MAY_CREATE)
    assert (f'action="/dashboard/keys/{world.acme_key.pk}/revoke"' in page) is (role in MAY_REVOKE)
    assert (f'action="/dashboard/keys/{world.acme_key.pk}/rotate"' in page) is (role in MAY_ROTATE)
    assert world.acme_raw_key not in page


@pytest.mark.parametrize("role", ROLES)
def test_changing_a_keys_limits_works_for_who_may_create_keys_only(world, role):
    key = world.acme_key
    browser = client_of(getattr(world, role))
    form = limits_form(key, allowed_models="openai/*", allowed_ips="10.0.0.0/8", rpm_limit="5", budget="3")
    response = browser.post(f"/dashboard/keys/{key.pk}/limits", form)
    key.refresh_from_db()
    if role in MAY_CREATE:
        assert response.status_code == 302 and response.url == f"/dashboard/keys/{key.pk}/"
        assert (key.allowed_models, key.allowed_ips, key.rpm_limit, key.budget) == (
            ["openai/*"],
            ["10.0.0.0/8"],
            5,
            Decimal("3"),
        )
        assert AuditEvent.objects.filter(action="key.update", target_id=str(key.pk)).exists()
        assert "limits are saved" in browser.get(response.url).content.decode()
    else:
        assert response.status_code == 403
        assert (key.allowed_models, key.rpm_limit) == ([], None)
        assert not AuditEvent.objects.filter(action="key.update").exists()


@pytest.mark.parametrize("role", ROLES)
def test_a_keys_response_cache_time_is_set_by_who_may_create_keys_and_shown_to_who_may_view(world, role):
    key = world.acme_key
    browser = client_of(getattr(world, role))
    response = browser.post(f"/dashboard/keys/{key.pk}/limits", limits_form(key, response_cache_seconds="600"))
    key.refresh_from_db()
    if role not in MAY_CREATE:
        assert response.status_code == 403 and key.response_cache_seconds is None
        key.response_cache_seconds = 600
        key.save(update_fields=["response_cache_seconds"])
    else:
        assert response.status_code == 302 and key.response_cache_seconds == 600
        assert AuditEvent.objects.filter(action="key.update", target_id=str(key.pk)).exists()
    page = browser.get(f"/dashboard/keys/{key.pk}/")
    if role not in MAY_VIEW:
        assert page.status_code == 403
        return
    shown = page.content.decode()
    assert "Response cache" in shown
    if role in MAY_CREATE:
        assert re.search(r'name="key-\d+-response_cache_seconds" value="600"', shown)
    else:
        assert "600 seconds" in shown and 'name="key-' not in shown
    assert "response cache: 600 seconds" in browser.get("/dashboard/keys/").content.decode()


@pytest.mark.parametrize("sent, kept, shown", [("0", 0, "off"), ("", None, "the organisation's default")])
def test_a_keys_response_cache_is_turned_off_with_0_and_left_to_the_organisation_when_empty(world, sent, kept, shown):
    key = world.acme_key
    key.response_cache_seconds = 60
    key.save(update_fields=["response_cache_seconds"])
    response = client_of(world.admin).post(
        f"/dashboard/keys/{key.pk}/limits", limits_form(key, response_cache_seconds=sent)
    )
    key.refresh_from_db()
    assert response.status_code == 302 and key.response_cache_seconds == kept
    page = client_of(world.viewer).get(f"/dashboard/keys/{key.pk}/").content.decode()
    assert re.search(r"<dt>Response cache</dt>\s*<dd>(<span class=\"muted\">)?" + shown, page)


def test_a_new_key_gets_the_response_cache_time_the_form_gives(world):
    browser = client_of(world.developer)
    page = browser.get("/dashboard/keys/new").content.decode()
    assert 'name="response_cache_seconds"' in page and 'max="2592000"' in page
    form = new_key_form(name="cached", response_cache_seconds="2592000", once=once_token(browser))
    assert browser.post("/dashboard/keys/new", form).status_code == 200
    assert ApiKey.objects.get(name="cached").response_cache_seconds == 2592000


def test_with_htmx_the_limits_form_answers_with_its_own_section(world):
    key = world.acme_key
    browser = client_of(world.admin)
    ok = browser.post(f"/dashboard/keys/{key.pk}/limits", limits_form(key, tpm_limit="900"), HTTP_HX_REQUEST="true")
    page = ok.content.decode()
    assert ok.status_code == 200 and page.lstrip().startswith('<section class="panel key-limits-panel" id="key-limits"')
    assert "<html" not in page and "limits are saved" in page and 'value="900"' in page
    bad = browser.post(f"/dashboard/keys/{key.pk}/limits", limits_form(key, tpm_limit="-3"), HTTP_HX_REQUEST="true")
    assert bad.status_code == 200 and "greater than or equal to 1" in bad.content.decode()
    key.refresh_from_db()
    assert key.tpm_limit == 900


def test_a_refused_limit_is_not_saved_and_the_page_says_why(world):
    key = world.acme_key
    response = client_of(world.owner).post(
        f"/dashboard/keys/{key.pk}/limits", limits_form(key, allowed_ips="300.1.1.1")
    )
    assert response.status_code == 400 and 'class="errorlist"' in response.content.decode()
    key.refresh_from_db()
    assert key.allowed_ips == []


@pytest.mark.parametrize("role", ["developer", "admin"])
def test_an_admin_scoped_keys_limits_are_changed_only_by_who_may_make_one(world, role):
    key, _ = api_key_create(organization=world.acme, name="robot", scope=KeyScope.ADMIN)
    browser = client_of(getattr(world, role))
    page = browser.get(f"/dashboard/keys/{key.pk}/").content.decode()
    assert (f'action="/dashboard/keys/{key.pk}/limits"' in page) is (role == "admin")
    response = browser.post(f"/dashboard/keys/{key.pk}/limits", limits_form(key, rpm_limit="1"))
    key.refresh_from_db()
    assert response.status_code == (302 if role == "admin" else 403)
    assert key.rpm_limit == (1 if role == "admin" else None)


def test_a_revoked_keys_limits_cannot_be_changed(world):
    key = world.acme_key
    key.revoked_at = timezone.now()
    key.save()
    browser = client_of(world.owner)
    assert f'action="/dashboard/keys/{key.pk}/limits"' not in browser.get(f"/dashboard/keys/{key.pk}/").content.decode()
    response = browser.post(f"/dashboard/keys/{key.pk}/limits", limits_form(key, rpm_limit="1"))
    assert response.status_code == 400 and "This key is revoked" in response.content.decode()
    key.refresh_from_db()
    assert key.rpm_limit is None


# Revoking and rotating.


@pytest.mark.parametrize("role", ROLES)
def test_revoking_works_for_who_may_revoke_only(world, role):
    key = world.acme_key
    response = client_of(getattr(world, role)).post(f"/dashboard/keys/{key.pk}/revoke")
    key.refresh_from_db()
    if role in MAY_REVOKE:
        assert response.status_code == 302 and response.url == f"/dashboard/keys/{key.pk}/"
        assert key.revoked_at is not None
    else:
        assert response.status_code == 403 and key.revoked_at is None


@pytest.mark.parametrize("role", ROLES)
def test_rotating_shows_the_new_key_once_to_who_may_and_refuses_the_others(world, role):
    key = world.acme_key
    key.rpm_limit = 7
    key.save()
    browser = client_of(getattr(world, role))
    response = browser.post(f"/dashboard/keys/{key.pk}/rotate")
    key.refresh_from_db()
    if role not in MAY_ROTATE:
        assert response.status_code == 403 and key.revoked_at is None
        assert ApiKey.objects.filter(organization=world.acme).count() == 1
        return
    page = response.content.decode()
    raw = raw_key_in(page)
    assert response.status_code == 200 and "no-store" in response["Cache-Control"] and raw
    new = ApiKey.objects.get(hashed_key=hash_api_key(raw))
    assert key.revoked_at is not None and new.name == key.name and new.rpm_limit == 7 and new.revoked_at is None
    assert "Key rotated" in page and 'data-copy="#new-key"' in page
    again = browser.post(f"/dashboard/keys/{key.pk}/rotate")  # a reload: the old key is revoked now
    assert again.status_code == 400 and raw_key_in(again.content.decode()) is None
    assert ApiKey.objects.filter(organization=world.acme).count() == 2


def test_an_admin_scoped_key_is_rotated_only_by_who_may_make_one(world):
    key, _ = api_key_create(organization=world.acme, name="robot", scope=KeyScope.ADMIN)
    # Developers may not rotate at all (revoke_keys); an admin may, as the API lets them.
    assert client_of(world.developer).post(f"/dashboard/keys/{key.pk}/rotate").status_code == 403
    assert client_of(world.admin).post(f"/dashboard/keys/{key.pk}/rotate").status_code == 200


# Another organisation's key.


@pytest.mark.parametrize(
    "method, path",
    [("get", ""), ("post", "limits"), ("post", "revoke"), ("post", "rotate")],
)
def test_another_organisations_key_is_not_found(world, method, path):
    key = world.globex_key
    response = getattr(client_of(world.owner), method)(f"/dashboard/keys/{key.pk}/{path}", limits_form(key))
    assert response.status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None and key.rpm_limit is None
    assert ApiKey.objects.filter(organization=world.globex).count() == 1


def test_the_pages_refuse_the_wrong_method(world):
    browser = client_of(world.owner)
    assert browser.get(f"/dashboard/keys/{world.acme_key.pk}/revoke").status_code == 405
    assert browser.get(f"/dashboard/keys/{world.acme_key.pk}/rotate").status_code == 405
    assert browser.post("/dashboard/keys/").status_code == 405


def test_new_limits_reach_the_gateway_at_once(world, django_capture_on_commit_callbacks):
    """The gateway caches keys (hub/auth.py): a change of limits tells it, on commit, to forget this one."""
    heard = []

    def receiver(sender, hashed=None, **kwargs):
        heard.append(hashed)

    keys_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            form = limits_form(world.acme_key, rpm_limit="3")
            client_of(world.owner).post(f"/dashboard/keys/{world.acme_key.pk}/limits", form)
    finally:
        keys_changed.disconnect(receiver)
    assert heard == [world.acme_key.hashed_key]


def test_the_create_form_starts_with_the_models_budget_period(world):
    page = client_of(world.owner).get("/dashboard/keys/new").content.decode()
    assert '<option value="monthly" selected>' in page


def test_with_htmx_a_revoked_keys_limits_are_refused_in_the_section(world):
    key = world.acme_key
    key.revoked_at = timezone.now()
    key.save()
    response = client_of(world.owner).post(
        f"/dashboard/keys/{key.pk}/limits", limits_form(key, rpm_limit="1"), HTTP_HX_REQUEST="true"
    )
    page = response.content.decode()
    assert "This key is revoked" in page and f'action="/dashboard/keys/{key.pk}/limits"' not in page
    key.refresh_from_db()
    assert key.rpm_limit is None
