"""Every way a call can go wrong ends in an OpenAI-shaped error with the right status, and a record."""

import json
from datetime import timedelta
from decimal import Decimal

import httpx
import openai
import pytest
from django.utils import timezone

from billing.models import LedgerEntry, UsageRecord
from tests import factories
from tests.conftest import UPSTREAM_KEY
from tests.factories import add_model

HELLO = [{"role": "user", "content": "hello"}]


def post(hub, body, key=None, **headers):
    if key:
        headers["authorization"] = f"Bearer {key}"
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(
        f"{hub.url}/v1/chat/completions",
        content=content,
        headers={"content-type": "application/json", **headers},
        timeout=10,
    )


def assert_openai_error(response, status, code=None):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if code is not None:
        assert error["code"] == code
    return error


def test_no_key_is_401(hub, chat_model):
    assert_openai_error(post(hub, {"model": "gpt-4o-mini", "messages": HELLO}), 401)


def test_a_wrong_key_is_401_for_the_sdk(hub, chat_model):
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key="sk-hub-" + "x" * 40, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert raised.value.body["code"] == "invalid_api_key"


def test_a_revoked_key_is_refused_at_once(client, hub, api_key):
    from accounts.models import ApiKey
    from accounts.services import api_key_revoke

    client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # now cached by the hub
    api_key_revoke(api_key=ApiKey.objects.get())
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)


def test_an_expired_key_is_401(hub, organization, chat_model):
    from accounts.services import api_key_create

    _, raw = api_key_create(organization=organization, name="old", expires_at=timezone.now() - timedelta(seconds=1))
    assert_openai_error(post(hub, {"model": "gpt-4o-mini", "messages": HELLO}, raw), 401, "expired_api_key")


def test_an_unknown_model_is_404_and_recorded(client, hub, upstream):
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="no-such-model", messages=HELLO)
    assert raised.value.body["code"] == "model_not_found"
    assert upstream.requests == []
    hub.drain()
    record = UsageRecord.objects.get()
    assert (record.status, record.http_status, record.model_name, record.price) == (
        "client_error",
        404,
        "no-such-model",
        0,
    )


@pytest.mark.parametrize(
    "body, param",
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b"", None),
        ({"messages": HELLO}, "model"),
        ({"model": "gpt-4o-mini"}, "messages"),
        ({"model": "gpt-4o-mini", "messages": []}, "messages"),
        ({"model": "gpt-4o-mini", "messages": [{"content": "no role"}]}, "messages[0].role"),
        ({"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
        ({"model": "gpt-4o-mini", "messages": HELLO, "temperature": 7}, "temperature"),
    ],
)
def test_a_malformed_body_is_400(hub, api_key, chat_model, upstream, body, param):
    error = assert_openai_error(post(hub, body, api_key), 400)
    assert error["type"] == "invalid_request_error" and error["code"]  # every 400 says which kind it is
    if param:
        assert error["param"] == param
    assert upstream.requests == []
    hub.drain()
    assert UsageRecord.objects.get().status == "client_error"


def test_a_body_over_the_limit_is_413(hub, api_key, chat_model, upstream, settings):
    settings.HUB_MAX_BODY_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    big = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 20_000}]}
    assert_openai_error(post(hub, big, api_key), 413, "request_too_large")
    assert upstream.requests == []


def test_get_on_chat_completions_is_405(hub, api_key):
    response = httpx.get(f"{hub.url}/v1/chat/completions", headers={"authorization": f"Bearer {api_key}"})
    assert_openai_error(response, 405)


def test_an_unknown_api_url_is_an_openai_404(hub, api_key):
    assert_openai_error(httpx.post(f"{hub.url}/v1/nothing-here", json={}), 404, "unknown_url")


def test_no_credit_is_402_before_any_upstream_call(client, hub, upstream, organization):
    from billing.services import credit_grant

    credit_grant(organization=organization, amount=Decimal("-10"), kind="adjustment", description="spent")
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert raised.value.status_code == 402
    assert raised.value.body["type"] == "insufficient_quota"
    assert upstream.requests == []


@pytest.mark.parametrize(
    "upstream_model, status, sdk_error",
    [
        ("fake-error-500", 502, openai.APIStatusError),
        ("fake-error-503", 503, openai.InternalServerError),
        ("fake-error-429", 429, openai.RateLimitError),
        ("fake-error-400", 400, openai.BadRequestError),
        ("fake-error-401", 502, openai.APIStatusError),
        ("fake-error-404", 502, openai.APIStatusError),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_failures_map_to_openai_errors_and_are_free(
    hub, api_key, openai_provider, upstream, upstream_model, status, sdk_error, stream
):
    add_model(openai_provider, "openai/broken", upstream_model)
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
    with pytest.raises(sdk_error) as raised:
        result = client.chat.completions.create(model="openai/broken", messages=HELLO, stream=stream)
        list(result)
    assert raised.value.status_code == status
    if upstream_model == "fake-error-429":
        assert raised.value.response.headers["retry-after"] == "7"
    if upstream_model == "fake-error-400":
        assert raised.value.body["code"] == "context_length_exceeded"
        assert "maximum context length" in raised.value.message
    if upstream_model == "fake-error-401":
        # The provider's words quote (part of) the hub's credential: never pass them on.
        assert "sk-" not in raised.value.response.text
    hub.drain()
    record = UsageRecord.objects.get()
    assert (record.status, record.http_status, record.price) == ("upstream_error", status, 0)
    assert not LedgerEntry.objects.filter(kind="usage").exists()


def test_an_unreachable_upstream_is_502(hub, api_key, transactional_db):
    provider = factories.provider("gone", base_url="http://127.0.0.1:9/v1", secret=UPSTREAM_KEY, credential_name="k")
    add_model(provider, "gone/model", "gpt-4o-mini")
    error = assert_openai_error(post(hub, {"model": "gone/model", "messages": HELLO}, api_key), 502)
    assert error["code"] == "upstream_unreachable"


def test_a_hanging_upstream_is_504(hub, api_key, openai_provider, upstream, settings):
    settings.HUB_UPSTREAM_READ_TIMEOUT = 0.5
    add_model(openai_provider, "openai/hang", "fake-hang")
    error = assert_openai_error(post(hub, {"model": "openai/hang", "messages": HELLO}, api_key), 504)
    assert error["code"] == "upstream_timeout"
    assert upstream.wait_for_disconnect(timeout=5)


def test_an_invalid_upstream_answer_is_502(hub, api_key, openai_provider, upstream):
    add_model(openai_provider, "openai/bad", "fake-malformed")
    error = assert_openai_error(post(hub, {"model": "openai/bad", "messages": HELLO}, api_key), 502)
    assert error["code"] == "upstream_invalid_response"


def test_a_provider_without_credential_is_503(hub, api_key, transactional_db, upstream):
    provider = factories.provider("nokey", preset="openai", base_url=upstream.base_url)
    add_model(provider, "nokey/model", "gpt-4o-mini")
    error = assert_openai_error(post(hub, {"model": "nokey/model", "messages": HELLO}, api_key), 503)
    assert error["code"] == "no_credential"
    assert upstream.requests == []


@pytest.mark.parametrize(
    "capability, extra, param",
    [
        ("supports_tools", {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ("supports_json", {"response_format": {"type": "json_object"}}, "response_format"),
        (
            "supports_vision",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "see"},
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                        ],
                    }
                ]
            },
            "messages",
        ),
    ],
)
def test_a_capability_the_model_lacks_is_400_before_any_upstream_call(
    hub, api_key, chat_model, upstream, capability, extra, param
):
    setattr(chat_model, capability, False)
    chat_model.save()
    body = {"model": "gpt-4o-mini", "messages": HELLO, **extra}
    error = assert_openai_error(post(hub, body, api_key), 400, "unsupported_parameter")
    assert error["param"] == param and "gpt-4o-mini" in error["message"]
    assert upstream.requests == []


def test_malformed_json_is_400_invalid_json(hub, api_key):
    assert_openai_error(post(hub, b"{not json", api_key), 400, "invalid_json")


def nested(depth: int) -> str:
    """A body whose containers nest `depth` levels deep, the body itself being the first."""
    return (
        '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "metadata": '
        + "[" * (depth - 1)
        + "1"
        + "]" * (depth - 1)
        + "}"
    )


@pytest.mark.parametrize("depth", [65, 900, 5000])
def test_json_nested_deeper_than_the_limit_is_a_400_naming_it_and_recorded(hub, api_key, chat_model, upstream, depth):
    error = assert_openai_error(post(hub, nested(depth), api_key), 400, "json_too_deep")
    assert "64 levels" in error["message"]
    assert upstream.requests == []
    hub.drain()
    record = UsageRecord.objects.get()
    assert (record.status, record.http_status) == ("client_error", 400)


def test_json_at_the_depth_limit_is_not_refused_for_its_depth(hub, api_key, chat_model):
    response = post(hub, nested(64), api_key)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "body, param",
    [
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi \\ud800"}]}', "messages[0].content"),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\\udfff"}]}', "messages[0].content"),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "user": "\\uD83D"}', "user"),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "metadata": {"\\ud800": 1}}',
            "metadata.\\ud800",
        ),
    ],
)
def test_a_lone_surrogate_anywhere_in_the_body_is_a_400_naming_it_and_recorded(
    hub, api_key, chat_model, upstream, body, param
):
    error = assert_openai_error(post(hub, body, api_key), 400, "invalid_unicode")
    assert error["param"] == param and "surrogate" in error["message"]
    assert upstream.requests == []
    hub.drain()
    assert UsageRecord.objects.get().http_status == 400


def test_a_surrogate_encoded_as_raw_bytes_is_not_utf8_and_a_400(hub, api_key, chat_model, upstream):
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi \xed\xa0\x80"}]}'
    assert_openai_error(post(hub, body, api_key), 400, "invalid_json")
    hub.drain()
    assert UsageRecord.objects.get().http_status == 400


def test_a_surrogate_pair_is_a_character_and_passes(hub, api_key, chat_model, upstream):
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi \\ud83d\\ude00"}]}'
    response = post(hub, body, api_key)
    assert response.status_code == 200, response.text
    assert upstream.requests[0].json["messages"][0]["content"] == "hi \U0001f600"


@pytest.mark.parametrize("path", ["/v1/images/edits", "/v1/audio/transcriptions", "/v1/audio/translations"])
def test_a_form_with_too_many_fields_is_a_400_in_the_api_shape_and_recorded(hub, api_key, upstream, path):
    fields = [(f"f{i}", "x") for i in range(1001)]
    response = httpx.post(
        f"{hub.url}{path}",
        data=dict(fields),
        files={"file": ("a.wav", b"RIFF", "audio/wav")},
        headers={"authorization": f"Bearer {api_key}"},
        timeout=10,
    )
    error = assert_openai_error(response, 400, "too_many_fields")
    assert "1000" in error["message"]
    hub.drain()
    record = UsageRecord.objects.get()
    assert (record.status, record.http_status) == ("client_error", 400)


def test_an_upstream_400_without_a_code_still_names_one(hub, api_key, openai_provider, upstream):
    add_model(openai_provider, "openai/picky", "fake-error-400-no-code")
    error = assert_openai_error(
        post(hub, {"model": "openai/picky", "messages": HELLO}, api_key), 400, "invalid_request"
    )
    assert error["param"] == "messages[0].name" and "string too long" in error["message"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "gpt-4o-mini\\u0000", "messages": [{"role": "user", "content": "hi"}]}',
        b'{"model": "gpt-4o-mini", "messages": [{"role": "us\\u0000er", "content": "hi"}]}',  # echoed in the error
    ],
)
def test_a_nul_in_what_the_record_keeps_is_a_400_and_still_recorded(hub, api_key, chat_model, upstream, body):
    # PostgreSQL's text columns refuse NUL: the refusal's record must be written all the same.
    assert_openai_error(post(hub, body, api_key), 400)
    assert upstream.requests == []
    hub.drain()
    assert UsageRecord.objects.get().http_status == 400
