"""Key policies: which models, from where, how fast and how much — per key, with the
organisation's limits as its keys' defaults; 403 for what is forbidden, 429 with
retry-after and x-ratelimit-* headers for what is over a limit."""

from datetime import timedelta
from decimal import Decimal

import openai
import pytest
from django.utils import timezone

from accounts.models import ApiKey
from accounts.services import api_key_create
from billing.models import UsageRecord
from tests.factories import add_model

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def key_with(organization, chat_model, upstream, hub):
    """A client for a new key with the given limits."""

    def make(**limits):
        _, raw = api_key_create(organization=organization, name="limited", limits=limits)
        return openai.OpenAI(base_url=f"{hub.url}/v1", api_key=raw, max_retries=0)

    return make


def test_a_key_without_limits_sends_no_rate_headers(client):
    reply = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
    assert not [h for h in reply.headers if h.startswith("x-ratelimit")]


def test_allowed_models_match_the_public_id_or_the_alias(key_with, openai_provider):
    add_model(openai_provider, "other/model", "gpt-4o-mini")
    client = key_with(allowed_models=["openai/*"])
    assert client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO).choices
    assert client.chat.completions.create(model="gpt-4o-mini", messages=HELLO).choices  # alias of openai/…
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client.chat.completions.create(model="other/model", messages=HELLO)
    assert raised.value.body["code"] == "model_not_allowed"


def test_an_address_outside_the_allow_list_is_403(key_with, upstream, hub):
    with pytest.raises(openai.PermissionDeniedError) as raised:
        key_with(allowed_ips=["203.0.113.0/24"]).chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert raised.value.body["code"] == "ip_not_allowed"
    assert upstream.requests == []
    assert (
        key_with(allowed_ips=["127.0.0.0/8", "::1/128"])
        .chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        .choices
    )
    hub.drain()
    assert UsageRecord.objects.filter(http_status=403).count() == 1


def test_requests_per_minute_are_counted_and_refused_with_openai_headers(key_with, upstream):
    client = key_with(rpm_limit=2)
    first = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
    assert (first.headers["x-ratelimit-limit-requests"], first.headers["x-ratelimit-remaining-requests"]) == ("2", "1")
    assert first.headers["x-ratelimit-reset-requests"].endswith("s")
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert raised.value.body["code"] == "rate_limit_exceeded"
    headers = raised.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60 and headers["x-ratelimit-remaining-requests"] == "0"
    assert len(upstream.requests) == 2


def test_tokens_per_minute_refuse_once_the_minute_is_used_up(key_with, hub):
    client = key_with(tpm_limit=8)
    used = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO).usage.total_tokens
    assert used >= 8
    hub.drain()
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert raised.value.body["code"] == "tokens_rate_limit_exceeded"
    assert raised.value.response.headers["x-ratelimit-remaining-tokens"] == "0"


def test_a_budget_stops_the_key_until_its_period_resets(key_with, hub):
    client = key_with(budget=Decimal("0.00001"), budget_period="daily")
    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # costs more than the budget
    hub.drain()
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert raised.value.body["code"] == "budget_exceeded"
    tomorrow = (timezone.now() + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert abs(int(raised.value.response.headers["retry-after"]) - (tomorrow - timezone.now()).total_seconds()) < 5


def test_a_budget_counts_what_was_spent_before_this_process_started(key_with, organization):
    client = key_with(budget=Decimal("1"), budget_period="monthly")
    key = ApiKey.objects.get(name="limited")
    UsageRecord.objects.create(
        request_id="req_earlier",
        organization=organization,
        api_key=key,
        model_name="m",
        status="ok",
        price=Decimal("1.5"),
        created_at=timezone.now(),
    )
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)


def test_the_organisation_limits_are_its_keys_defaults_and_a_key_may_override_them(organization, key_with):
    organization.rpm_limit = 1
    organization.allowed_models = ["nothing/*"]
    organization.save()
    defaulted = key_with()
    with pytest.raises(openai.PermissionDeniedError):
        defaulted.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    own = key_with(allowed_models=["openai/*"])
    own.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    with pytest.raises(openai.RateLimitError):  # the organisation's rpm still applies to it
        own.chat.completions.create(model="gpt-4o-mini", messages=HELLO)


def test_the_management_api_creates_a_key_with_limits(organization, transactional_db):
    from rest_framework.test import APIClient

    from accounts.models import Membership, User

    owner = User.objects.create_user("olivia", "o@example.com", "pw")
    Membership.objects.create(user=owner, organization=organization, role="owner")
    api = APIClient()
    api.force_authenticate(owner)
    response = api.post(
        f"/manage/v1/orgs/{organization.slug}/keys/",
        {
            "name": "ci",
            "allowed_models": ["openai/*"],
            "allowed_ips": ["10.1.2.3"],
            "rpm_limit": 60,
            "budget": "5.00",
            "budget_period": "weekly",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["allowed_ips"], body["rpm_limit"], body["budget_period"]) == (["10.1.2.3/32"], 60, "weekly")
    key = ApiKey.objects.get(name="ci")
    assert key.budget == Decimal("5") and key.allowed_models == ["openai/*"]
    bad = api.post(f"/manage/v1/orgs/{organization.slug}/keys/", {"name": "x", "allowed_ips": ["nope"]}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "allowed_ips"
