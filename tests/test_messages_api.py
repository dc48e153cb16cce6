"""Anthropic's Messages API inbound (POST /v1/messages), with the official anthropic SDK against the live hub:
to the fake Anthropic upstream natively, to the fake OpenAI upstream and the demo provider translated."""

import asyncio
import json
import time
from decimal import Decimal

import anthropic
import httpx
import pytest

from billing.models import CreditAccount, LedgerEntry, UsageRecord
from tests import factories
from tests.conformance.cases import PIXEL_DATA_URL
from tests.fakes.anthropic_upstream import API_KEY as ANTHROPIC_KEY
from tests.fakes.anthropic_upstream import CACHE_READ, CACHE_WRITE, FakeAnthropic
from tests.fakes.server import server_fixture

PRICE_IN, PRICE_OUT = Decimal(2), Decimal(4)  # per million tokens, see factories.DEFAULT_RATE
PIXEL_B64 = PIXEL_DATA_URL.partition(",")[2]
WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
HELLO = [{"role": "user", "content": "Say hello"}]

anthropic_server = server_fixture(FakeAnthropic, scope="module")


@pytest.fixture
def fake_anthropic(anthropic_server):
    anthropic_server.reset()
    return anthropic_server


@pytest.fixture
def claude(fake_anthropic, transactional_db):
    provider = factories.provider("anthropic", kind="anthropic", base_url=fake_anthropic.base_url, secret=ANTHROPIC_KEY)
    factories.add_model(provider, "anthropic/claude-test", "claude-test-1")
    return "anthropic/claude-test"


@pytest.fixture
def demo(transactional_db):
    factories.add_model(factories.provider("demo", kind="demo"), "demo/echo", "echo")
    return "demo/echo"


@pytest.fixture
def sdk(hub, api_key):
    return anthropic.Anthropic(base_url=hub.url, api_key=api_key, max_retries=0)


def records(hub, count: int = 1, timeout: float = 5.0) -> list[UsageRecord]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hub.drain()
        found = list(UsageRecord.objects.order_by("id"))
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"expected {count} usage records, found {UsageRecord.objects.count()}")


def assert_charged(record: UsageRecord, organization) -> None:
    expected = (Decimal(record.prompt_tokens) * PRICE_IN + Decimal(record.completion_tokens) * PRICE_OUT) / 10**6
    assert record.price == expected > 0
    assert LedgerEntry.objects.get(kind="usage").amount == -record.price
    assert CreditAccount.objects.get(organization=organization).balance == Decimal(10) - record.price


# ----------------------------------------------------------------- translated routes
def test_a_message_to_an_openai_route_is_translated_and_charged(sdk, hub, upstream, chat_model, organization):
    message = sdk.messages.create(
        model="openai/gpt-4o-mini", max_tokens=100, system="Be brief.", messages=HELLO, stop_sequences=["zzz"]
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text == "Hello! You said: Say hello"
    assert message.stop_reason == "end_turn" and message.model == "openai/gpt-4o-mini"
    (sent,) = upstream.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.json["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"},
    ]
    assert (sent.json.get("max_completion_tokens") or sent.json.get("max_tokens"), sent.json["stop"]) == (100, ["zzz"])
    (record,) = records(hub)
    assert (record.endpoint, record.status, record.stream) == ("messages", "ok", False)
    assert (record.prompt_tokens, record.completion_tokens) == (message.usage.input_tokens, message.usage.output_tokens)
    assert_charged(record, organization)


def test_the_api_twin_and_a_bearer_key(hub, api_key, demo):
    reply = httpx.post(
        f"{hub.url}/api/messages",
        json={"model": demo, "max_tokens": 50, "messages": HELLO},
        headers={"authorization": f"Bearer {api_key}"},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["content"][0]["text"]
    assert reply.headers["x-hub-route"].startswith("demo/echo")


def test_the_demo_provider_async(hub, api_key, demo):
    async def ask():
        client = anthropic.AsyncAnthropic(base_url=hub.url, api_key=api_key, max_retries=0)
        return await client.messages.create(model=demo, max_tokens=50, messages=HELLO)

    message = asyncio.run(ask())
    assert message.content[0].type == "text" and "hello" in message.content[0].text.lower()
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert records(hub)[0].endpoint == "messages"


def test_max_tokens_stops_with_max_tokens(sdk, hub, demo):
    message = sdk.messages.create(model=demo, max_tokens=1, messages=[{"role": "user", "content": "one two three"}])
    assert message.stop_reason == "max_tokens" and message.usage.output_tokens == 1


def test_a_stream_to_an_openai_route_has_anthropics_events(sdk, hub, upstream, chat_model, organization):
    with sdk.messages.stream(model="openai/gpt-4o-mini", max_tokens=100, messages=HELLO) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "content_block_delta" in kinds and "content_block_stop" in kinds
    assert kinds[-2] == "message_delta"
    assert final.content[0].text == "Hello! You said: Say hello" and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0
    (record,) = records(hub)
    assert (record.endpoint, record.status, record.stream) == ("messages", "ok", True)
    assert (record.prompt_tokens, record.completion_tokens) == (final.usage.input_tokens, final.usage.output_tokens)
    assert_charged(record, organization)


def test_the_raw_stream_is_framed_as_anthropic_frames_it(hub, api_key, demo):
    body = {"model": demo, "max_tokens": 50, "messages": HELLO, "stream": True}
    with httpx.stream("POST", f"{hub.url}/v1/messages", json=body, headers={"x-api-key": api_key}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    frames = [f for f in raw.split("\n\n") if f]
    for frame in frames:
        name, data = frame.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        assert json.loads(data[6:])["type"] == name[7:]
    names = [f.split("\n")[0][7:] for f in frames]
    assert names[:2] == ["message_start", "ping"] and names[-2:] == ["message_delta", "message_stop"]
    delta = json.loads(frames[-2].split("\n")[1][6:])
    assert delta["delta"]["stop_reason"] == "end_turn" and delta["usage"]["output_tokens"] > 0


def test_tools_round_trip_through_an_openai_route(sdk, hub, upstream, chat_model):
    first = sdk.messages.create(
        model="openai/gpt-4o-mini",
        max_tokens=100,
        tools=[WEATHER],
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )
    assert first.stop_reason == "tool_use"
    (call,) = [b for b in first.content if b.type == "tool_use"]
    assert call.name == "get_weather" and call.input == {"city": "Paris"}
    sent = upstream.requests[0].json
    assert sent["tool_choice"] == "required"
    assert sent["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]
    second = sdk.messages.create(
        model="openai/gpt-4o-mini",
        max_tokens=100,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [c.model_dump() for c in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 21C"}]},
        ],
    )
    assert second.content[0].text == "Tool said: Sunny, 21C"
    sent = upstream.requests[1].json["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21C"}


def test_a_streamed_tool_call_is_assembled_from_input_json_deltas(sdk, hub, upstream, chat_model):
    with sdk.messages.stream(
        model="openai/gpt-4o-mini",
        max_tokens=100,
        tools=[WEATHER],
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    ) as stream:
        deltas = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert "input_json_delta" in deltas
    (call,) = final.content
    assert (call.type, call.name, call.input) == ("tool_use", "get_weather", {"city": "Paris"})
    assert final.stop_reason == "tool_use"


def test_images_base64_and_url_reach_an_openai_route(sdk, hub, upstream, chat_model):
    sdk.messages.create(
        model="openai/gpt-4o-mini",
        max_tokens=100,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL_B64}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
                ],
            }
        ],
    )
    parts = upstream.requests[0].json["messages"][0]["content"]
    assert parts[1] == {"type": "image_url", "image_url": {"url": PIXEL_DATA_URL}}
    assert parts[2] == {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}


# ----------------------------------------------------------------- the native route
def test_an_anthropic_route_gets_the_body_and_beta_header_as_sent(sdk, hub, fake_anthropic, claude, organization):
    message = sdk.messages.create(
        model=claude,
        max_tokens=100,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "Say hello", "cache_control": {"type": "ephemeral"}}]}
        ],
        extra_body={"top_k": 5},
        extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
    )
    assert message.content[0].text == "Hello! You said: Say hello"
    assert message.model == claude  # the hub's public id, not the provider's name
    assert (message.usage.cache_read_input_tokens, message.usage.cache_creation_input_tokens) == (
        CACHE_READ,
        CACHE_WRITE,
    )
    (sent,) = fake_anthropic.requests
    assert sent.path == "/v1/messages" and sent.json["model"] == "claude-test-1"
    assert sent.json["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert sent.json["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert sent.json["top_k"] == 5
    assert "prompt-caching-2024-07-31" in sent.headers["anthropic-beta"]
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY and sent.headers["anthropic-version"]
    (record,) = records(hub)
    assert (record.prompt_tokens, record.cache_read_tokens, record.cache_write_tokens) == (
        message.usage.input_tokens + CACHE_READ + CACHE_WRITE,
        CACHE_READ,
        CACHE_WRITE,
    )
    assert record.completion_tokens == message.usage.output_tokens and record.price > 0


def test_a_native_stream_passes_anthropics_events_and_bills_them(sdk, hub, fake_anthropic, claude):
    with sdk.messages.stream(
        model=claude, max_tokens=100, tools=[WEATHER], messages=[{"role": "user", "content": "Paris?"}]
    ) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    assert "ping" not in kinds  # the SDK hides pings; the events are Anthropic's own
    (call,) = final.content
    assert call.input == {"city": "Paris"} and final.stop_reason == "tool_use"
    assert fake_anthropic.requests[0].json["stream"] is True
    (record,) = records(hub)
    assert record.stream and record.status == "ok" and record.completion_tokens == final.usage.output_tokens


def test_an_overloaded_upstream_is_a_529_overloaded_error(sdk, hub, fake_anthropic, claude):
    with pytest.raises(anthropic.APIStatusError) as raised:
        sdk.messages.create(model=claude, max_tokens=10, messages=[{"role": "user", "content": "error:overloaded"}])
    assert raised.value.status_code == 529
    assert raised.value.body["type"] == "error" and raised.value.body["error"]["type"] == "overloaded_error"
    (record,) = records(hub)
    assert (record.status, record.price) == ("upstream_error", 0)


def test_a_mid_stream_overload_is_an_error_event(sdk, hub, fake_anthropic, claude):
    with pytest.raises(anthropic.APIStatusError) as raised:
        with sdk.messages.stream(
            model=claude, max_tokens=10, messages=[{"role": "user", "content": "error:stream_overloaded now"}]
        ) as stream:
            for _ in stream:
                pass
    assert "overloaded" in str(raised.value).lower()
    (record,) = records(hub)
    assert record.status == "upstream_error" and record.stream


def test_the_credential_is_never_echoed(sdk, hub, fake_anthropic, claude):
    with pytest.raises(anthropic.APIStatusError) as raised:
        sdk.messages.create(model=claude, max_tokens=10, messages=[{"role": "user", "content": "echo:400"}])
    assert ANTHROPIC_KEY not in json.dumps(raised.value.body)


# ----------------------------------------------------------------- count_tokens
def test_count_tokens_asks_anthropic_where_it_can(sdk, hub, fake_anthropic, claude):
    raw = sdk.messages.with_raw_response.count_tokens(model=claude, messages=HELLO, system="Be brief.")
    assert raw.headers["x-hub-token-count"] == "provider"
    assert raw.parse().input_tokens == 2 + 2 + 3  # the fake's words of system and message, 3 per message
    (sent,) = fake_anthropic.requests
    assert sent.path == "/v1/messages/count_tokens" and "max_tokens" not in sent.json
    (record,) = records(hub)
    assert (record.endpoint, record.price) == ("messages.count_tokens", 0)


def test_count_tokens_is_estimated_elsewhere(sdk, hub, demo):
    raw = sdk.messages.with_raw_response.count_tokens(model=demo, messages=HELLO)
    assert raw.headers["x-hub-token-count"] == "estimate" and raw.parse().input_tokens > 0


# ----------------------------------------------------------------- errors
def test_missing_max_tokens_is_anthropics_400(hub, api_key, demo):
    reply = httpx.post(
        f"{hub.url}/v1/messages", json={"model": demo, "messages": HELLO}, headers={"x-api-key": api_key}
    )
    assert reply.status_code == 400
    assert reply.json()["type"] == "error"
    assert reply.json()["error"] == {"type": "invalid_request_error", "message": "max_tokens: Field required"}
    assert records(hub)[0].status == "client_error"


def test_an_unknown_model_is_a_404_not_found_error(sdk, hub):
    with pytest.raises(anthropic.NotFoundError) as raised:
        sdk.messages.create(model="nobody/nothing", max_tokens=10, messages=HELLO)
    assert raised.value.body["error"]["type"] == "not_found_error"


def test_a_bad_key_is_a_401_authentication_error(hub, demo):
    client = anthropic.Anthropic(base_url=hub.url, api_key="sk-hub-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as raised:
        client.messages.create(model=demo, max_tokens=10, messages=HELLO)
    assert raised.value.body["error"]["type"] == "authentication_error"


def test_a_get_is_refused_in_anthropics_shape(hub, api_key):
    reply = httpx.get(f"{hub.url}/v1/messages", headers={"x-api-key": api_key})
    assert reply.status_code == 405 and reply.json()["type"] == "error"


HOSTILE = {
    "nul": {"messages": [{"role": "user", "content": "a\x00b"}], "max_tokens": 10},
    "huge_max_tokens": {"messages": HELLO, "max_tokens": 10**30},
    "negative_max_tokens": {"messages": HELLO, "max_tokens": -1},
    "bool_max_tokens": {"messages": HELLO, "max_tokens": True},
    "temperature": {"messages": HELLO, "max_tokens": 10, "temperature": -0.5},
    "role": {"messages": [{"role": "system", "content": "x"}], "max_tokens": 10},
    "block": {"messages": [{"role": "user", "content": [{"type": "nope"}]}], "max_tokens": 10},
    "content": {"messages": [{"role": "user", "content": 7}], "max_tokens": 10},
    "no_messages": {"messages": [], "max_tokens": 10},
    "image": {
        "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "x"}}]}],
        "max_tokens": 10,
    },
    "tool_choice": {"messages": HELLO, "max_tokens": 10, "tool_choice": {"type": "any"}},
    "tool_input": {
        "messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": [1]}]}],
        "max_tokens": 10,
    },
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_input_is_an_anthropic_400(hub, api_key, demo, case):
    reply = httpx.post(f"{hub.url}/v1/messages", json={"model": demo, **HOSTILE[case]}, headers={"x-api-key": api_key})
    assert reply.status_code == 400, reply.text
    body = reply.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "demo/echo", "max_tokens": 5, "messages": [{"role": "user", "content": "\\ud800"}]}',
        b'{"model": "demo/echo", "max_tokens": 5, "messages": ' + b"[" * 100 + b"]" * 100 + b"}",
        b"{not json",
    ],
    ids=["lone_surrogate", "deep_nesting", "not_json"],
)
def test_malformed_bodies_are_anthropic_400s(hub, api_key, demo, raw):
    reply = httpx.post(
        f"{hub.url}/v1/messages", content=raw, headers={"x-api-key": api_key, "content-type": "application/json"}
    )
    assert reply.status_code == 400 and reply.json()["error"]["type"] == "invalid_request_error"


def test_a_document_block_cannot_go_to_a_translated_route(hub, api_key, demo):
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "hi"}}
    body = {"model": demo, "max_tokens": 10, "messages": [{"role": "user", "content": [document]}]}
    reply = httpx.post(f"{hub.url}/v1/messages", json=body, headers={"x-api-key": api_key})
    assert reply.status_code == 400 and "document" in reply.json()["error"]["message"]


def test_a_client_that_leaves_a_stream_pays_for_what_it_got(hub, api_key, openai_provider, upstream, organization):
    factories.add_model(openai_provider, "openai/slow", "fake-slow")
    body = {
        "model": "openai/slow",
        "max_tokens": 1000,
        "messages": [{"role": "user", "content": "long"}],
        "stream": True,
    }
    with httpx.stream(
        "POST", f"{hub.url}/v1/messages", json=body, headers={"x-api-key": api_key}, timeout=10
    ) as response:
        assert response.status_code == 200
        seen = 0
        for line in response.iter_lines():
            seen += line.startswith("event: content_block_delta")
            if seen == 5:
                break
    assert upstream.wait_for_disconnect(timeout=5)
    (record,) = records(hub)
    assert record.status == "cancelled" and record.stream and record.usage_estimated
    assert 1 <= record.completion_tokens < 60
    assert_charged(record, organization)


def test_a_key_that_may_not_use_the_model_is_a_403_permission_error(hub, organization, demo):
    from accounts.services import api_key_create

    _, raw = api_key_create(organization=organization, name="limited", limits={"allowed_models": ["openai/*"]})
    client = anthropic.Anthropic(base_url=hub.url, api_key=raw, max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError) as raised:
        client.messages.create(model=demo, max_tokens=10, messages=HELLO)
    assert raised.value.body["error"]["type"] == "permission_error"
    with pytest.raises(anthropic.PermissionDeniedError):
        client.messages.count_tokens(model=demo, messages=HELLO)


def test_an_organisation_without_credit_is_refused_before_any_upstream_call(hub, fake_anthropic, claude):
    _, _, raw = factories.organization_with_key("Broke")
    client = anthropic.Anthropic(base_url=hub.url, api_key=raw, max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as raised:
        client.messages.create(model=claude, max_tokens=10, messages=HELLO)
    assert (raised.value.status_code, raised.value.body["error"]["type"]) == (402, "billing_error")
    assert not fake_anthropic.requests


def test_an_upstream_rate_limit_is_a_429_rate_limit_error_with_retry_after(sdk, hub, fake_anthropic, claude):
    with pytest.raises(anthropic.RateLimitError) as raised:
        sdk.messages.create(model=claude, max_tokens=10, messages=[{"role": "user", "content": "error:rate_limit"}])
    assert raised.value.body["error"]["type"] == "rate_limit_error"
    assert raised.value.response.headers["retry-after"] == "7"


def test_a_failing_anthropic_route_falls_back_to_another_provider(sdk, hub, fake_anthropic, claude, demo):
    from providers.models import CatalogModel

    CatalogModel.objects.filter(public_id=claude).update(fallbacks=[demo])
    message = sdk.messages.create(
        model=claude, max_tokens=50, messages=[{"role": "user", "content": "error:overloaded"}]
    )
    assert message.model == demo and message.content[0].text
    assert len(fake_anthropic.requests) == 1
    (record,) = records(hub)
    assert (record.status, record.served_model) == ("ok", demo)


def test_a_translated_stream_cut_upstream_ends_in_an_error_event_and_bills_what_arrived(
    sdk, hub, openai_provider, upstream, organization
):
    factories.add_model(openai_provider, "openai/cut", "fake-cut")
    texts = []
    with pytest.raises(anthropic.APIStatusError) as raised:
        with sdk.messages.stream(model="openai/cut", max_tokens=100, messages=HELLO) as stream:
            for event in stream:
                if event.type == "text":
                    texts.append(event.text)
    assert texts and "cut off" in str(raised.value)
    (record,) = records(hub)
    assert record.status == "upstream_error" and record.stream and record.usage_estimated
    assert_charged(record, organization)


def test_a_cached_messages_answer_is_keyed_on_the_request_as_sent(sdk, hub, fake_anthropic, claude, organization):
    """The response cache serves Messages answers again, and what only a native route reads (top_k, thinking,
    cache_control, the beta header) is in the key: the translated chat body alone would mix those up."""
    from accounts.models import Organization

    Organization.objects.filter(pk=organization.pk).update(response_cache_seconds=60, response_cache_sampled=True)

    def ask(**extra):
        return sdk.messages.with_raw_response.create(
            model=claude, max_tokens=50, messages=[{"role": "user", "content": "Say hello"}], **extra
        )

    miss, hit = ask(), ask()
    assert (miss.headers["x-hub-cache"], hit.headers["x-hub-cache"]) == ("miss", "hit")
    assert hit.parse().content[0].text == miss.parse().content[0].text
    assert len(fake_anthropic.requests) == 1
    assert ask(extra_body={"top_k": 3}).headers["x-hub-cache"] == "miss"
    assert ask(extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"}).headers["x-hub-cache"] == "miss"
    assert len(fake_anthropic.requests) == 3
    hub.drain()
    assert [r.cache_hit for r in UsageRecord.objects.order_by("id")] == [False, True, False, False]
    assert all(r.endpoint == "messages" for r in UsageRecord.objects.all())
