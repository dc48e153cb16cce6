"""The playground by HTTP, against the live hub and the fake OpenAI upstream (hub/playground.py): each answer goes
through the gateway with the member's own playground key, made once per member and organisation and never shown;
policy refuses what it refuses for an API client (the OpenAI-style error shown), credit is held and the usage
metered and charged as for any request; a stopped stream bills what was produced. Owners, admins and developers
may use it; billing and viewers get 403, no link, and change nothing. Another organisation's request is not found.
"""

import base64
import json
import re
import time
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey, KeyPurpose, Membership
from accounts.playground import playground_key_for
from accounts.services import api_key_revoke, organization_create
from billing.models import LedgerEntry, UsageRecord
from billing.services import credit_grant
from tests import factories
from tests.actors import ROLES, make_user
from tests.concurrency import at_once

PRICE_IN, PRICE_OUT = Decimal(2), Decimal(4)  # tests/factories.py DEFAULT_RATE, per million tokens
MAY_USE = {"owner", "admin", "developer"}


class Member:
    """A signed-in browser on the live hub: the session cookie (made by Django's test client) and the CSRF
    token the page sets, as the page's own script sends them."""

    def __init__(self, hub, user):
        signed_in = Client()
        signed_in.force_login(user)
        self.http = httpx.Client(base_url=hub.url, timeout=10, follow_redirects=False)
        self.http.cookies.set("sessionid", signed_in.cookies["sessionid"].value)
        self.user = user

    def page(self) -> httpx.Response:
        return self.http.get("/dashboard/playground/")

    def csrf(self) -> dict:
        if "csrftoken" not in self.http.cookies:
            assert self.page().status_code == 200
        return {"x-csrftoken": self.http.cookies["csrftoken"]}

    def post(self, path: str, **fields) -> httpx.Response:
        form = {"model": "gpt-4o-mini", "prompt": "hi", **fields}
        return self.http.post(path, data=form, headers=self.csrf())

    def usage(self, request_id: str) -> httpx.Response:
        return self.http.get(f"/dashboard/playground/usage/{request_id}")


@pytest.fixture
def team(transactional_db):
    """Acme, with 10 credits and one member of each role."""
    owner = make_user("owner")
    acme = organization_create(name="Acme", owner=owner)
    credit_grant(organization=acme, amount=Decimal("10"), description="test credit")
    users = {"owner": owner}
    for role in ROLES[1:]:
        users[role] = make_user(role)
        Membership.objects.create(user=users[role], organization=acme, role=role)
    return acme, users


def data_chunks(text: str) -> list[str]:
    return [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]


def record_of(hub, request_id: str, timeout: float = 5.0) -> UsageRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hub.drain()
        record = UsageRecord.objects.filter(request_id=request_id).select_related("api_key").first()
        if record is not None:
            return record
        time.sleep(0.05)
    raise AssertionError(f"no usage record for {request_id}")


def charged(record: UsageRecord) -> Decimal:
    return (record.prompt_tokens * PRICE_IN + record.completion_tokens * PRICE_OUT) / 10**6


def test_a_streamed_answer_goes_through_the_gateway_under_the_members_playground_key(hub, team, chat_model, upstream):
    acme, users = team
    owner = Member(hub, users["owner"])
    response = owner.post(
        "/dashboard/playground/chat", system="Be brief.", temperature="0.3", max_tokens="50", prompt="hello there"
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = data_chunks(response.text)
    assert chunks[-1] == "[DONE]"
    events = [json.loads(chunk) for chunk in chunks[:-1]]
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"]) == (
        "Hello! You said: hello there"
    )
    assert events[-1]["usage"]["completion_tokens"] > 0  # stream_options.include_usage: the last chunk

    sent = upstream.requests[-1]
    assert sent.headers["authorization"] == "Bearer sk-upstream-test"
    assert sent.json["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello there"},
    ]
    assert (sent.json["temperature"], sent.json["stream"]) == (0.3, True)
    assert sent.json.get("max_completion_tokens", sent.json.get("max_tokens")) == 50

    record = record_of(hub, response.headers["x-request-id"])
    key = record.api_key
    assert (key.purpose, key.name, key.created_by, key.organization) == (
        KeyPurpose.PLAYGROUND,
        "Playground · owner",
        users["owner"],
        acme,
    )
    assert record.status == "ok" and record.stream and not record.usage_estimated
    assert record.endpoint == "chat.completions" and record.served_model == "openai/gpt-4o-mini"
    assert record.price == charged(record) > 0
    assert LedgerEntry.objects.get(kind="usage").amount == -record.price

    shown = owner.usage(record.request_id)
    assert shown.status_code == 200
    tokens = f"{record.prompt_tokens} prompt + {record.completion_tokens} completion tokens"
    assert shown.json()["line"] == f"{tokens} · {record.price.normalize():f} USD"


def test_the_key_is_made_once_per_member_and_organisation_never_shown_and_listed_on_the_keys_page(
    hub, team, chat_model, upstream
):
    _, users = team
    owner, admin = Member(hub, users["owner"]), Member(hub, users["admin"])
    assert owner.page().status_code == 200
    assert not ApiKey.objects.exists()  # the page alone makes no key: the first answer does

    texts = [owner.post("/dashboard/playground/chat").text for _ in range(2)]
    texts.append(admin.post("/dashboard/playground/chat").text)
    keys = ApiKey.objects.filter(purpose=KeyPurpose.PLAYGROUND)
    assert sorted(keys.values_list("name", flat=True)) == ["Playground · admin", "Playground · owner"]
    hub.drain()
    assert UsageRecord.objects.filter(api_key__in=keys).count() == 3

    # Its secret is nowhere: not in the playground's pages or answers, not on the keys page (the prefix only).
    keys_page = owner.http.get("/dashboard/keys/").text
    assert "Playground · owner" in keys_page and "Playground · admin" in keys_page
    for text in [*texts, owner.page().text, keys_page]:
        assert not re.search(r"sk-hub-[A-Za-z0-9_-]{20,}", text)

    # Revoked on the keys page, it stops; the next answer makes a new one.
    old = keys.get(created_by=users["owner"])
    api_key_revoke(api_key=old)
    assert owner.post("/dashboard/playground/chat").status_code == 200
    new = ApiKey.objects.get(purpose=KeyPurpose.PLAYGROUND, created_by=users["owner"], revoked_at__isnull=True)
    assert new.pk != old.pk


def test_two_first_uses_at_once_make_one_key(team):
    acme, users = team
    made = at_once(*[lambda: playground_key_for(user=users["developer"], organization=acme)] * 4)
    assert len({key.pk for key in made}) == 1
    assert ApiKey.objects.filter(purpose=KeyPurpose.PLAYGROUND).count() == 1


def test_a_model_the_organisation_may_not_use_is_refused_by_the_gateways_policy(hub, team, chat_model, upstream):
    acme, users = team
    acme.allowed_models = ["anthropic/*"]
    acme.save()
    developer = Member(hub, users["developer"])
    assert "gpt-4o-mini" not in developer.page().text  # not offered

    refused = developer.post("/dashboard/playground/chat")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_allowed"
    record = record_of(hub, refused.headers["x-request-id"])
    assert record.status == "client_error" and record.api_key.purpose == KeyPurpose.PLAYGROUND
    assert record.price == 0

    # Without the script: the page itself shows the gateway's message.
    page = developer.post("/dashboard/playground/")
    assert page.status_code == 403
    assert "This API key may not use the model `gpt-4o-mini`." in page.text.replace("&#x60;", "`")
    assert not upstream.requests and not LedgerEntry.objects.filter(kind="usage").exists()


def test_without_credit_the_hold_refuses_the_answer(hub, chat_model, upstream):
    broke = make_user("broke")
    organization_create(name="Broke", owner=broke)  # no credit at all
    refused = Member(hub, broke).post("/dashboard/playground/chat")
    assert refused.status_code == 402 and refused.json()["error"]["code"] == "insufficient_quota"
    assert not upstream.requests


def test_a_stopped_stream_cancels_the_upstream_and_bills_what_was_produced(hub, team, openai_provider, upstream):
    _, users = team
    factories.add_model(openai_provider, "openai/slow", "fake-slow")
    owner = Member(hub, users["owner"])
    form = {"model": "openai/slow", "prompt": "a long story"}
    with owner.http.stream("POST", "/dashboard/playground/chat", data=form, headers=owner.csrf()) as response:
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        received = 0
        for line in response.iter_lines():
            received += line.startswith("data:")
            if received == 6:
                break  # the stop button: the browser drops the request
    assert upstream.wait_for_disconnect(timeout=5), "the hub must cancel the upstream request"
    record = record_of(hub, request_id)
    assert record.status == "cancelled" and record.api_key.purpose == KeyPurpose.PLAYGROUND
    assert record.usage_estimated and 1 <= record.completion_tokens < 60  # of 200 words
    assert record.price == charged(record) > 0
    assert LedgerEntry.objects.get(kind="usage").amount == -record.price
    assert owner.usage(request_id).json()["line"].endswith("(estimated: the provider reported no usage) (stopped)")


def test_without_javascript_the_form_posts_and_the_page_shows_the_whole_answer_and_its_price(
    hub, team, chat_model, upstream
):
    _, users = team
    page = Member(hub, users["admin"]).post("/dashboard/playground/", prompt="plain <b>form</b>")
    assert page.status_code == 200
    assert "Hello! You said: plain &lt;b&gt;form&lt;/b&gt;" in page.text  # model output is escaped
    record = UsageRecord.objects.get()
    assert record.stream is False and record.api_key.name == "Playground · admin"
    assert (
        f"{record.prompt_tokens} prompt + {record.completion_tokens} completion tokens · "
        f"{record.price.normalize():f} USD" in page.text
    )


@pytest.fixture
def image_model(openai_provider):
    model = factories.catalog_model("openai/dall-e-2", kind="image")
    factories.route(model, openai_provider, "dall-e-2")
    factories.rate(model, image_cost=Decimal("0.01"), margin=Decimal(1))
    return model


def test_an_image_model_draws_through_the_images_path_and_is_billed_per_image(hub, team, image_model, upstream):
    _, users = team
    developer = Member(hub, users["developer"])
    assert 'data-kind="image"' in developer.page().text

    answer = developer.post("/dashboard/playground/image", model="openai/dall-e-2", prompt="a red fox")
    assert answer.status_code == 200, answer.text
    png = base64.b64decode(answer.json()["data"][0]["b64_json"])
    assert png.startswith(b"\x89PNG")
    assert upstream.requests[-1].path == "/v1/images/generations"
    record = record_of(hub, answer.headers["x-request-id"])
    assert (record.endpoint, record.unit, record.images, record.price) == (
        "images.generations",
        "images",
        1,
        Decimal("0.02"),
    )
    assert record.api_key.purpose == KeyPurpose.PLAYGROUND
    assert developer.usage(record.request_id).json()["line"] == "1 image · 0.02 USD"

    page = developer.post("/dashboard/playground/", model="openai/dall-e-2", prompt="a blue fox")
    assert page.status_code == 200
    assert re.search(r'<img class="playground-image" src="data:image/png;base64,[A-Za-z0-9+/=]+"', page.text)


def test_another_organisations_request_is_not_found(hub, team, chat_model, upstream):
    _, users = team
    outsider = make_user("outsider")
    globex = organization_create(name="Globex", owner=outsider)
    credit_grant(organization=globex, amount=Decimal("10"), description="test credit")
    theirs = Member(hub, outsider).post("/dashboard/playground/chat").headers["x-request-id"]
    mine = Member(hub, users["owner"])
    ours = mine.post("/dashboard/playground/chat").headers["x-request-id"]
    record_of(hub, theirs)
    assert mine.usage(theirs).status_code == 404
    assert mine.usage("req_0123456789abcdef").status_code == 404
    assert mine.usage(ours).status_code == 200
    assert Member(hub, outsider).usage(ours).status_code == 404


@pytest.mark.parametrize("role", ROLES)
def test_each_role_may_use_the_playground_or_gets_403_and_no_link(role, team, chat_model, image_model):
    _, users = team
    browser = Client()
    browser.force_login(users[role])
    dashboard = browser.get("/dashboard/").content.decode()
    if role in MAY_USE:
        assert 'href="/dashboard/playground/"' in dashboard
        page = browser.get("/dashboard/playground/").content.decode()
        assert '<option value="openai/gpt-4o-mini" data-kind="chat" selected>' in page
        assert '<option value="openai/dall-e-2" data-kind="image">' in page
        return  # what they may do is shown above, against the live hub
    assert 'href="/dashboard/playground/"' not in dashboard
    form = {"model": "gpt-4o-mini", "prompt": "hi"}
    assert browser.get("/dashboard/playground/").status_code == 403
    assert browser.post("/dashboard/playground/", form).status_code == 403
    assert browser.post("/dashboard/playground/chat", form).status_code == 403
    assert browser.post("/dashboard/playground/image", {**form, "model": "openai/dall-e-2"}).status_code == 403
    assert browser.get("/dashboard/playground/usage/req_x").status_code == 403
    assert not ApiKey.objects.exists() and not UsageRecord.objects.exists()


def test_a_stranger_is_sent_to_sign_in(transactional_db):
    response = Client().get("/dashboard/playground/")
    assert response.status_code == 302 and response["location"].startswith("/accounts/login/")


def test_a_form_the_playground_refuses_says_why_in_the_gateways_shape(hub, team, chat_model, upstream):
    _, users = team
    refused = Member(hub, users["owner"]).post("/dashboard/playground/chat", temperature="3")
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "temperature"
    assert not upstream.requests and not ApiKey.objects.exists()


def test_a_post_without_the_csrf_token_is_refused(hub, team, chat_model, upstream):
    _, users = team
    owner = Member(hub, users["owner"])
    owner.csrf()  # the cookie is there; the token is not sent
    refused = owner.http.post("/dashboard/playground/chat", data={"model": "gpt-4o-mini", "prompt": "hi"})
    assert refused.status_code == 403
    assert not upstream.requests and not ApiKey.objects.exists()


def test_an_expired_playground_key_is_refused_as_the_gateway_refuses_it(hub, team, chat_model, upstream):
    acme, users = team
    key = playground_key_for(user=users["owner"], organization=acme)
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    refused = Member(hub, users["owner"]).post("/dashboard/playground/chat")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "expired_api_key"
    assert not upstream.requests
