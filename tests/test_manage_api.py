"""The management API: keys, authentication, usage, balance, schema and docs."""

from datetime import timedelta

from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke, hash_api_key
from tests.actors import as_key, as_user, usage

KEYS = "/manage/v1/orgs/acme/keys/"


def test_a_created_key_is_shown_once_and_only_its_hash_is_kept(world):
    developer = as_user(world.developer)

    created = developer.post(KEYS, {"name": "ci"}, format="json").json()
    listed = developer.get(KEYS).json()

    assert created["key"].startswith("sk-hub-") and created["scope"] == "inference"
    assert created["created_by"] == "developer"
    assert ApiKey.objects.get(pk=created["id"]).hashed_key == hash_api_key(created["key"])
    assert all("key" not in k for k in listed) and {k["name"] for k in listed} == {"ci", "acme app"}


def test_a_revoked_key_stops_working_at_once_on_the_gateway(world):
    from hub import auth

    as_user(world.admin).post(f"{KEYS}{world.acme_key.pk}/revoke")

    world.acme_key.refresh_from_db()
    assert world.acme_key.revoked_at is not None and auth._load(world.acme_key.hashed_key) is None


def test_rotating_a_key_gives_a_new_one_and_revokes_the_old(world):
    rotated = as_user(world.admin).post(f"{KEYS}{world.acme_key.pk}/rotate").json()

    world.acme_key.refresh_from_db()
    assert world.acme_key.revoked_at is not None
    assert rotated["name"] == "acme app" and rotated["id"] != world.acme_key.pk and rotated["key"].startswith("sk-hub-")
    again = as_user(world.admin).post(f"{KEYS}{world.acme_key.pk}/rotate")
    assert again.status_code == 400 and again.json()["error"]["code"] == "key_revoked"


def test_a_developer_cannot_mint_an_admin_key_nor_rotate_one(world):
    admin_key, _ = api_key_create(organization=world.acme, name="ops", scope="admin")

    assert as_user(world.developer).post(KEYS, {"name": "x", "scope": "admin"}, format="json").status_code == 403
    assert as_user(world.developer).post(f"{KEYS}{admin_key.pk}/rotate").status_code == 403


def test_an_admin_key_manages_its_organisation_without_csrf(world):
    _, raw = api_key_create(organization=world.acme, name="ops", scope="admin")
    client = APIClient(enforce_csrf_checks=True)

    response = client.post(KEYS, {"name": "from a script"}, format="json", HTTP_X_API_KEY=raw)

    assert response.status_code == 201
    assert response.json()["created_by"] is None


def test_an_inference_key_cannot_use_the_management_api(world):
    response = as_key(world.acme_raw_key).get(KEYS)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert "admin-scoped" in response.json()["error"]["message"]


def test_a_revoked_or_expired_admin_key_is_refused(world):
    revoked, raw_revoked = api_key_create(organization=world.acme, name="old", scope="admin")
    api_key_revoke(api_key=revoked)
    _, raw_expired = api_key_create(
        organization=world.acme, name="exp", scope="admin", expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert as_key(raw_revoked).get(KEYS).status_code == 401
    assert as_key(raw_expired).get(KEYS).status_code == 401
    assert as_key("sk-hub-" + "x" * 40).get(KEYS).status_code == 401


def test_nobody_signed_in_gets_401_in_openai_shape(world):
    response = APIClient().get(KEYS)

    assert response.status_code == 401
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_a_session_write_needs_the_csrf_token(world):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(world.owner)

    refused = client.post(KEYS, {"name": "csrf"}, format="json")
    client.get("/accounts/email/")  # any page that sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    accepted = client.post(KEYS, {"name": "csrf"}, format="json", HTTP_X_CSRFTOKEN=token)

    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    assert accepted.status_code == 201


def test_usage_records_and_totals_per_model_and_day_for_a_date_range(world):
    usage(world.acme, model="m-a", when=timezone.now() - timedelta(days=1), prompt=100, completion=50, price="1.5")
    usage(world.acme, model="m-a", when=timezone.now() - timedelta(days=1), prompt=1, completion=1, price="0.5")
    usage(world.acme, model="m-b", when=timezone.now() - timedelta(days=40), price="9")
    viewer = as_user(world.viewer)
    day = world.yesterday.isoformat()

    records = viewer.get(f"/manage/v1/orgs/acme/usage/?start={day}&end={day}").json()
    totals = viewer.get(f"/manage/v1/orgs/acme/usage/totals?start={day}&end={day}").json()
    default_totals = viewer.get("/manage/v1/orgs/acme/usage/totals").json()

    assert [r["model"] for r in records["results"]] == ["m-a", "m-a"]
    assert totals == [
        {
            "day": day,
            "model": "m-a",
            "requests": 2,
            "prompt_tokens": 101,
            "completion_tokens": 51,
            "total_tokens": 152,
            "price": "2.0000000000",
        }
    ]
    assert "m-b" not in {t["model"] for t in default_totals}  # 30 days by default


def test_usage_pages_with_a_cursor(world):
    for _ in range(3):
        usage(world.acme)
    viewer = as_user(world.viewer)

    first = viewer.get("/manage/v1/orgs/acme/usage/?limit=2").json()
    second = viewer.get(first["next"]).json()

    assert len(first["results"]) == 2 and len(second["results"]) == 2 and second["next"] is None


def test_usage_records_say_which_were_answered_from_the_response_cache(world):
    usage(world.acme, model="m-miss")
    hit = usage(world.acme, model="m-hit")
    hit.cache_hit = True
    hit.save(update_fields=["cache_hit"])

    records = as_user(world.viewer).get("/manage/v1/orgs/acme/usage/").json()["results"]

    cached = {r["model"]: r["cache_hit"] for r in records if r["model"].startswith("m-")}
    assert cached == {"m-miss": False, "m-hit": True}


def test_a_bad_date_range_is_a_400_naming_the_parameter(world):
    response = as_user(world.viewer).get("/manage/v1/orgs/acme/usage/?start=2026-02-01&end=2026-01-01")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "start"


def test_the_balance(world):
    assert as_user(world.billing).get("/manage/v1/orgs/acme/balance").json()["balance"] == "10.0000000000"


def test_the_openapi_schema_lists_the_management_endpoints(world):
    response = APIClient().get("/manage/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    paths = response.json()["paths"]
    assert "/manage/v1/orgs/{slug}/keys/" in paths and "/manage/v1/orgs/{slug}/usage/totals" in paths
    assert "adminKey" in response.json()["components"]["securitySchemes"]


def test_the_docs_page_loads_swagger_ui_from_the_hub_not_a_cdn(world):
    import drf_spectacular_sidecar

    html = APIClient().get("/manage/v1/docs/").content.decode()

    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower() and "https://" not in html
    from pathlib import Path

    assert (
        Path(drf_spectacular_sidecar.__file__).parent
        / "static/drf_spectacular_sidecar/swagger-ui-dist"
        / "swagger-ui-bundle.js"
    ).exists()


def test_a_rotated_key_keeps_its_limits_and_team(world):
    from decimal import Decimal

    from accounts.models import ApiKey, Team

    team = Team.objects.create(organization=world.acme, name="ml")
    ApiKey.objects.filter(pk=world.acme_key.pk).update(
        allowed_models=["openai/*"],
        allowed_ips=["203.0.113.0/24"],
        rpm_limit=7,
        tpm_limit=700,
        budget=Decimal("12.5"),
        budget_period="daily",
        team=team,
    )
    rotated = as_user(world.admin).post(f"{KEYS}{world.acme_key.pk}/rotate").json()
    new = ApiKey.objects.get(pk=rotated["id"])
    assert (
        new.allowed_models,
        new.allowed_ips,
        new.rpm_limit,
        new.tpm_limit,
        new.budget,
        new.budget_period,
        new.team_id,
    ) == (["openai/*"], ["203.0.113.0/24"], 7, 700, Decimal("12.5"), "daily", team.pk)


def test_an_admin_key_is_held_to_its_allowed_addresses_on_the_management_api(world):
    # The attack: a key limited to 10.0.0.0/8 (refused on the gateway) listed keys and minted an unrestricted
    # admin key from 127.0.0.1 (the test client's address) on /manage/v1/.
    _, raw = api_key_create(organization=world.acme, name="ops", scope="admin", limits={"allowed_ips": ["10.0.0.0/8"]})
    outside = as_key(raw)

    listed = outside.get(KEYS)
    minted = outside.post(KEYS, {"name": "escape", "scope": "admin"}, format="json")
    invoices = outside.get("/manage/v1/orgs/acme/invoices/")
    inside = as_key(raw).get(KEYS, REMOTE_ADDR="10.20.30.40")

    for refused in (listed, minted, invoices):
        assert refused.status_code == 403, refused.content
        assert refused.json()["error"]["code"] == "ip_not_allowed"
    assert not ApiKey.objects.filter(name="escape").exists()
    assert inside.status_code == 200


def test_an_admin_key_without_its_own_addresses_is_held_to_its_organisations(world):
    _, raw = api_key_create(organization=world.acme, name="ops", scope="admin")
    world.acme.allowed_ips = ["192.0.2.0/24"]
    world.acme.save()

    assert as_key(raw).get(KEYS).status_code == 403
    assert as_key(raw).get(KEYS, REMOTE_ADDR="192.0.2.7").status_code == 200


def test_an_organisation_is_renamed_by_its_owners_and_admins_and_keeps_its_slug(world):
    from accounts.models import AuditEvent, Organization

    url = "/manage/v1/orgs/acme/"
    assert as_user(world.viewer).get(url).json() == {"slug": "acme", "name": "Acme", "role": "viewer"}
    refused = as_user(world.developer).patch(url, {"name": "Mine now"}, format="json")
    assert refused.status_code == 403 and Organization.objects.get(slug="acme").name == "Acme"
    for bad in ({"name": "  "}, {"name": "x" * 500}, {}, {"name": None}):
        answer = as_user(world.admin).patch(url, bad, format="json")
        assert answer.status_code == 400 and answer.json()["error"]["type"] == "invalid_request_error", bad
    renamed = as_user(world.admin).patch(url, {"name": "Acme Corporation", "slug": "taken"}, format="json")
    assert renamed.status_code == 200 and renamed.json() == {
        "slug": "acme",
        "name": "Acme Corporation",
        "role": "admin",
    }
    assert Organization.objects.get(slug="acme").name == "Acme Corporation"
    event = AuditEvent.objects.get(action="organization.rename")
    assert event.details == {"from": "Acme", "to": "Acme Corporation"} and event.actor_user == world.admin
    assert as_user(world.owner).patch("/manage/v1/orgs/globex/", {"name": "x"}, format="json").status_code == 404
