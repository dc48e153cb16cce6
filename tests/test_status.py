"""GET /v1/status: service health and which of the caller's models can serve now."""

import time

import httpx

from accounts.services import api_key_create
from hub import route_health
from providers.models import Credential
from tests.conftest import UPSTREAM_KEY
from tests.factories import add_model


def status(hub, key, path="/v1/status"):
    return httpx.get(f"{hub.url}{path}", headers={"authorization": f"Bearer {key}"})


def test_status_lists_the_callers_models_and_the_services(hub, api_key, chat_model, openai_provider):
    response = status(hub, api_key)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["services"]["database"] == "ok"
    assert body["models"] == [
        {"id": "openai/gpt-4o-mini", "object": "model.status", "available": True, "routes": 1, "routes_available": 1}
    ]
    assert UPSTREAM_KEY not in response.text and openai_provider.base_url not in response.text
    assert status(hub, api_key, "/api/status").json()["models"] == body["models"]


def test_a_model_whose_credentials_are_out_is_unavailable(hub, api_key, chat_model):
    credential = Credential.objects.get()
    route_health.store().write(credential.pk, route_health.Health(cooldown_until=time.time() + 60, reason="down"))
    body = status(hub, api_key).json()
    assert body["status"] == "degraded" and body["models"][0]["available"] is False
    assert "down" not in str(body)  # why is for operators, not tenants


def test_a_failed_health_check_makes_a_route_unavailable(hub, api_key, chat_model):
    Credential.objects.update(last_check_ok=False)
    assert status(hub, api_key).json()["models"][0]["routes_available"] == 0


def test_a_key_sees_only_the_models_it_may_use(hub, organization, chat_model, openai_provider):
    add_model(openai_provider, "other/model", "gpt-4o-mini")
    _, raw = api_key_create(organization=organization, name="narrow", limits={"allowed_models": ["other/*"]})
    assert [m["id"] for m in status(hub, raw).json()["models"]] == ["other/model"]


def test_status_needs_a_key(hub, chat_model):
    assert httpx.get(f"{hub.url}/v1/status").status_code == 401
