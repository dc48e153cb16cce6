"""The Anthropic adapter's translation, and the fake Anthropic API checked with the official SDK."""

import asyncio
import json
from types import SimpleNamespace

import anthropic
import pytest

from providers import http
from providers.adapters.anthropic import AnthropicAdapter
from providers.adapters.anthropic import errors as anthropic_errors
from providers.adapters.anthropic import request as anthropic_request
from providers.adapters.anthropic import response as anthropic_response
from providers.adapters.base import UpstreamError
from tests.conformance.cases import PIXEL_DATA_URL, WEATHER_TOOL
from tests.fakes.anthropic_upstream import API_KEY, CACHE_READ, CACHE_WRITE, FakeAnthropic


def route(**changes):
    values = {
        "upstream_name": "claude-test",
        "max_output_tokens": None,
        "options": {},
        "secret": API_KEY,
        "base_url": "https://api.anthropic.com",
        "provider_name": "anthropic",
    }
    return SimpleNamespace(**(values | changes))


def build(body, **route_changes):
    return anthropic_request.build_request(route(**route_changes), body, stream=False)


def user(content):
    return {"role": "user", "content": content}


# ----------------------------------------------------------------- request translation
def test_system_developer_and_max_tokens():
    body = build(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                user("hi"),
            ]
        }
    )
    assert body == {
        "model": "claude-test",
        "max_tokens": 4096,
        "system": "Be brief.\n\nUse French.",
        "messages": [user("hi")],
    }
    assert build({"messages": [user("hi")]}, max_output_tokens=1000)["max_tokens"] == 1000
    assert build({"messages": [user("hi")], "max_tokens": 7}, max_output_tokens=1000)["max_tokens"] == 7
    assert build({"messages": [user("hi")], "max_tokens": 7, "max_completion_tokens": 9})["max_tokens"] == 9


def test_unsupported_fields_are_dropped_and_sampling_passed():
    body = build(
        {
            "messages": [user("hi")],
            "n": 1,
            "logprobs": True,
            "frequency_penalty": 0.5,
            "seed": 3,
            "stream_options": {"include_usage": True},
            "temperature": 0.2,
            "top_p": 0.9,
            "stop": "END",
            "user": "tenant-42",
        }
    )
    assert body == {
        "model": "claude-test",
        "max_tokens": 4096,
        "messages": [user("hi")],
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "tenant-42"},
    }
    assert anthropic_request.build_request(route(), {"messages": [user("hi")]}, stream=True)["stream"] is True


def test_consecutive_messages_merge_and_tool_results_share_one_user_turn():
    calls = [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
        {"id": "call.b", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
    ]
    body = build(
        {
            "messages": [
                user("one"),
                user([{"type": "text", "text": "two"}, {"type": "text", "text": ""}]),
                {"role": "assistant", "content": "Let me look.", "tool_calls": calls},
                {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call.b", "content": [{"type": "text", "text": "rain"}]},
                user("thanks"),
                {"role": "assistant", "content": None},  # an empty turn says nothing and is dropped
            ]
        }
    )
    assert body["messages"] == [
        user([{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]),
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_b", "name": "get_weather", "input": {}},
            ],
        },
        user(
            [
                {"type": "tool_result", "tool_use_id": "call_a", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "call_b", "content": [{"type": "text", "text": "rain"}]},
                {"type": "text", "text": "thanks"},
            ]
        ),
    ]


def test_images():
    body = build(
        {
            "messages": [
                user(
                    [
                        {"type": "image_url", "image_url": {"url": PIXEL_DATA_URL}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    ]
                )
            ]
        }
    )
    assert body["messages"][0]["content"] == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": PIXEL_DATA_URL.partition(",")[2]},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
    ]
    for url in ("ftp://example.com/a.png", "data:image/png;base64,!!!", "data:text/plain;base64,aGk="):
        with pytest.raises(UpstreamError) as raised:
            build({"messages": [user([{"type": "image_url", "image_url": {"url": url}}])]})
        assert (raised.value.status, raised.value.code) == (400, "invalid_image")


def test_bad_tool_arguments_and_unsupported_parts_are_400():
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
    for message in (
        {"role": "assistant", "content": None, "tool_calls": [call]},
        user([{"type": "input_audio", "input_audio": {}}]),
        {"role": "function", "content": "x"},
    ):
        with pytest.raises(UpstreamError) as raised:
            build({"messages": [message]})
        assert raised.value.status == 400 and raised.value.type == "invalid_request_error"


@pytest.mark.parametrize(
    "choice, parallel, native",
    [
        (None, None, None),
        ("auto", None, {"type": "auto"}),
        ("none", False, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ({"type": "function", "function": {"name": "get_weather"}}, None, {"type": "tool", "name": "get_weather"}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
    ],
)
def test_tools_and_tool_choice(choice, parallel, native):
    request = {"messages": [user("hi")], "tools": [WEATHER_TOOL, {"type": "custom", "custom": {}}]}
    if choice is not None:
        request["tool_choice"] = choice
    if parallel is not None:
        request["parallel_tool_calls"] = parallel
    body = build(request)
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "The current weather in a city.",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        }
    ]
    assert body.get("tool_choice") == native
    assert "tool_choice" not in build({"messages": [user("hi")], "tool_choice": "auto"})


def test_json_mode_emulation():
    body = build(
        {
            "messages": [{"role": "system", "content": "Be brief."}, user("hi")],
            "response_format": {"type": "json_object"},
        }
    )
    assert body["system"] == "Be brief.\n\n" + anthropic_request.JSON_OBJECT_PROMPT
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    request = {
        "messages": [user("hi")],
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
    }
    body = build(request)
    assert body["system"] == anthropic_request.JSON_SCHEMA_PROMPT + json.dumps(schema, separators=(",", ":"))
    body = build(request, options={"structured_outputs": True})
    assert "system" not in body and body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert "system" not in build({"messages": [user("hi")], "response_format": {"type": "text"}})


def test_headers_and_url():
    options = {"anthropic_version": "2099-01-01", "anthropic_beta": ["a", "b"]}
    headers = anthropic_request.headers(route(options=options), True)
    assert headers == {
        "x-api-key": API_KEY,
        "anthropic-version": "2099-01-01",
        "content-type": "application/json",
        "accept": "text/event-stream",
        "anthropic-beta": "a,b",
    }
    assert anthropic_request.url(route()) == "https://api.anthropic.com/v1/messages"
    assert anthropic_request.url(route(base_url="https://proxy.example/v1/")) == "https://proxy.example/v1/messages"
    with pytest.raises(UpstreamError) as raised:
        anthropic_request.headers(route(secret=""), False)
    assert (raised.value.status, raised.value.code) == (503, "no_credential")


# ----------------------------------------------------------------- error mapping
@pytest.mark.parametrize(
    "status, kind, message, expected",
    [
        (401, "authentication_error", "invalid x-api-key sk-ant-secret", (502, "upstream_auth_failed", True)),
        (403, "permission_error", "no access", (502, "upstream_auth_failed", True)),
        (429, "rate_limit_error", "slow down", (429, "rate_limit_exceeded", True)),
        (529, "overloaded_error", "Overloaded", (503, "upstream_overloaded", True)),
        (500, "api_error", "Internal server error", (502, "upstream_error", True)),
        (
            400,
            "invalid_request_error",
            "prompt is too long: 208310 tokens > 200000 maximum",
            (400, "context_length_exceeded", False),
        ),
        (
            400,
            "invalid_request_error",
            "input length and `max_tokens` exceed context limit: 198000 + 8192 > 200000",
            (400, "context_length_exceeded", False),
        ),
        (
            400,
            "invalid_request_error",
            "Output blocked by content filtering policy",
            (400, "content_policy_violation", False),
        ),
        (400, "invalid_request_error", "max_tokens: Field required", (400, None, False)),
        (413, "request_too_large", "Request exceeds the maximum allowed number of bytes.", (400, None, False)),
        (402, "billing_error", "credit balance too low", (502, "upstream_quota_exhausted", True)),
        (404, "not_found_error", "model: claude-nope", (502, "upstream_model_not_found", False)),
        (None, "overloaded_error", "Overloaded", (503, "upstream_overloaded", True)),
        (None, "api_error", "boom", (502, "upstream_error", True)),
    ],
)
def test_error_mapping(status, kind, message, expected):
    body = json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
    if status is None:
        error = anthropic_errors.map_error({"type": kind, "message": message}, None, None, "anthropic")
    else:
        error = anthropic_errors.error_from_response(status, body, {"retry-after": "7"}, "anthropic")
    assert (error.status, error.code, error.retryable) == expected
    if error.status == 429:
        assert (error.type, error.retry_after) == ("rate_limit_error", "7")
    if error.code == "upstream_auth_failed":
        assert "sk-ant" not in error.message
    if error.status == 400:
        assert error.message == message and error.type == "invalid_request_error"


def test_error_not_in_anthropic_shape():
    error = anthropic_errors.error_from_response(502, b"<html>Bad gateway</html>", {}, "anthropic")
    assert (error.status, error.code) == (502, "upstream_error") and "Bad gateway" in error.message


# ----------------------------------------------------------------- answers
@pytest.mark.parametrize(
    "answer, expected",
    [
        (
            {
                "content": [{"type": "text", "text": "Hi"}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 10},
            },
            ("Hi", None, "stop", (15, 2, 10, False)),
        ),
        (
            {
                "content": [
                    {"type": "thinking", "thinking": "hmm"},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"x": 1}},
                ],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 5, "output_tokens": 2},
            },
            (None, ("toolu_1", "f", '{"x": 1}'), "tool_calls", (5, 2, 0, False)),
        ),
        (
            {"content": [{"type": "text", "text": "cut"}], "stop_reason": "max_tokens"},
            ("cut", None, "length", (None, 1, 0, True)),
        ),
    ],
)
def test_answers_become_completions(answer, expected):
    result = anthropic_response.chat_result(
        json.dumps(answer).encode(), {"messages": [user("hello there")]}, "claude-test", "anthropic"
    )
    (choice,) = json.loads(result.body)["choices"]
    calls = choice["message"].get("tool_calls")
    call = (calls[0]["id"], calls[0]["function"]["name"], calls[0]["function"]["arguments"]) if calls else None
    usage = result.usage
    counts = (
        None if usage.estimated else usage.prompt_tokens,
        usage.completion_tokens,
        usage.cache_read_tokens,
        usage.estimated,
    )
    assert (choice["message"]["content"], call, choice["finish_reason"], counts) == expected


@pytest.mark.parametrize("answer", [b"not json", b'{"content": "abc"}', b'{"content": [{"type": "text", "text": 5}]}'])
def test_an_answer_that_is_not_one_is_the_providers_fault(answer):
    with pytest.raises(UpstreamError) as raised:
        anthropic_response.chat_result(answer, {"messages": []}, "claude-test", "anthropic")
    assert (raised.value.status, raised.value.code) == (502, "upstream_invalid_response")


# ----------------------------------------------------------------- against the fake
@pytest.fixture(scope="module")
def fake():
    server = FakeAnthropic().start()
    yield server
    server.stop()


def run(coroutine):
    async def main():
        try:
            return await coroutine
        finally:
            await http.close()

    return asyncio.run(main())


async def _chat(r, body):
    return json.loads((await AnthropicAdapter().chat(r, body)).body)


async def _stream(r, body, include_usage=True):
    stream = await AnthropicAdapter().chat_stream(r, body, include_usage)
    chunks = []
    try:
        async for chunk in stream:
            chunks.append(chunk)
    finally:
        await stream.aclose()
    events = [json.loads(c[6:]) for c in b"".join(chunks).split(b"\n\n") if c and c != b"data: [DONE]"]
    return events, b"".join(chunks).endswith(b"data: [DONE]\n\n"), stream


def test_chat_against_fake(fake):
    r = route(base_url=fake.base_url)
    answer = run(_chat(r, {"messages": [{"role": "system", "content": "Be brief."}, user("hi there")]}))
    # "Be brief." + "hi there" = 4 words, 3 per message (one native message), plus cache reads and writes.
    prompt = 4 + 3 + CACHE_READ + CACHE_WRITE
    assert answer["choices"][0]["message"]["content"] == "Hello! You said: hi there"
    assert answer["choices"][0]["finish_reason"] == "stop" and answer["model"] == "claude-test"
    assert answer["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": 5,
        "total_tokens": prompt + 5,
        "prompt_tokens_details": {"cached_tokens": CACHE_READ},
    }
    answer = run(_chat(r, {"messages": [user("weather in Paris and London, in parallel")], "tools": [WEATHER_TOOL]}))
    message = answer["choices"][0]["message"]
    assert message["content"] is None and answer["choices"][0]["finish_reason"] == "tool_calls"
    assert [json.loads(c["function"]["arguments"]) for c in message["tool_calls"]] == [
        {"city": "Paris"},
        {"city": "London"},
    ]
    assert all(c["id"].startswith("toolu_") for c in message["tool_calls"])
    answer = run(_chat(r, {"messages": [user("hi there")], "max_tokens": 2}))
    choice = answer["choices"][0]
    assert (choice["message"]["content"], choice["finish_reason"]) == ("Hello! You", "length")


def test_stream_against_fake(fake):
    r = route(base_url=fake.base_url)
    events, done, stream = run(_stream(r, {"messages": [user("hi there")], "stop": [" said"]}))
    assert done and events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert text == "Hello! You" and [e["choices"][0]["finish_reason"] for e in events if e["choices"]][-1] == "stop"
    assert events[-1]["choices"] == [] and events[-1]["usage"]["prompt_tokens"] == 2 + 3 + CACHE_READ + CACHE_WRITE
    assert stream.final_usage().cache_write_tokens == CACHE_WRITE and not stream.final_usage().estimated

    events, done, _ = run(_stream(r, {"messages": [user("weather, in parallel")], "tools": [WEATHER_TOOL]}, False))
    deltas = [c for e in events for c in e["choices"][0]["delta"].get("tool_calls") or []]
    assert [d["index"] for d in deltas if "id" in d] == [0, 1]
    arguments = ["".join(d["function"]["arguments"] for d in deltas if d["index"] == i) for i in (0, 1)]
    assert [json.loads(a) for a in arguments] == [{"city": "Paris"}, {"city": "London"}]
    assert len([d for d in deltas if d["index"] == 0]) > 2, "arguments arrive in several fragments"
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls" and "usage" not in events[-1]


@pytest.mark.parametrize(
    "kind, code", [("stream_overloaded", "upstream_overloaded"), ("cut", "upstream_connection_error")]
)
def test_stream_broken_mid_way(fake, kind, code):
    events, done, stream = run(_stream(route(base_url=fake.base_url), {"messages": [user(f"error:{kind} now")]}))
    assert not done and events[-1]["error"]["code"] == code
    assert stream.error is not None
    usage = stream.final_usage()  # the input as the provider counted it, the output estimated
    assert usage.estimated and usage.prompt_tokens == 2 + 3 + CACHE_READ + CACHE_WRITE and usage.completion_tokens > 0


def test_errors_before_the_stream(fake):
    with pytest.raises(UpstreamError) as raised:
        run(_stream(route(base_url=fake.base_url), {"messages": [user("error:rate_limit")]}))
    assert (raised.value.status, raised.value.retry_after) == (429, "7")
    with pytest.raises(UpstreamError) as raised:
        run(_chat(route(base_url=fake.base_url, secret="sk-ant-wrong"), {"messages": [user("hi")]}))
    assert raised.value.code == "upstream_auth_failed"
    with pytest.raises(UpstreamError) as raised:
        old = route(base_url=fake.base_url, options={"anthropic_version": "1999-01-01"})
        run(_chat(old, {"messages": [user("hi")]}))
    assert (raised.value.status, raised.value.message) == (400, "anthropic-version: invalid version '1999-01-01'")


# ----------------------------------------------------------------- the fake, through the official SDK
@pytest.fixture
def sdk(fake):
    fake.reset()
    with anthropic.Anthropic(base_url=fake.base_url, api_key=API_KEY, max_retries=0, timeout=5) as client:
        yield client


def test_sdk_message(sdk, fake):
    message = sdk.messages.create(
        model="claude-test", max_tokens=100, system="Be brief.", messages=[{"role": "user", "content": "hi there"}]
    )
    assert message.content[0].type == "text" and message.content[0].text == "Hello! You said: hi there"
    assert message.stop_reason == "end_turn" and message.id.startswith("msg_")
    assert (
        message.usage.input_tokens,
        message.usage.cache_read_input_tokens,
        message.usage.cache_creation_input_tokens,
        message.usage.output_tokens,
    ) == (7, CACHE_READ, CACHE_WRITE, 5)
    request = fake.requests[-1]
    # The SDK 2.x sends the key as a bearer token and its own API version; the fake takes both forms.
    assert API_KEY in (request.headers.get("x-api-key"), request.headers.get("authorization", "")[7:])
    assert request.headers["anthropic-version"] == anthropic._constants.ANTHROPIC_API_VERSION


def test_sdk_tool_use_round_trip(sdk):
    tools = [{"name": "get_weather", "description": "Weather.", "input_schema": {"type": "object"}}]
    first = sdk.messages.create(
        model="claude-test", max_tokens=100, tools=tools, messages=[{"role": "user", "content": "weather in Paris?"}]
    )
    assert first.stop_reason == "tool_use"
    (call,) = first.content
    assert (call.type, call.name, call.input) == ("tool_use", "get_weather", {"city": "Paris"})
    second = sdk.messages.create(
        model="claude-test",
        max_tokens=100,
        tools=tools,
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            first.to_param(),
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]},
        ],
    )
    assert second.content[0].text == "Tool said: sunny"


def test_sdk_stream_text(sdk):
    messages = [{"role": "user", "content": "hi there"}]
    with sdk.messages.stream(model="claude-test", max_tokens=3, messages=messages) as s:
        pieces = list(s.text_stream)
        final = s.get_final_message()
    assert pieces == ["Hello!", " You", " said:"]
    assert final.content[0].text == "Hello! You said:" and final.stop_reason == "max_tokens"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (5, 3)


def test_sdk_stream_tool_use(sdk):
    tools = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    with sdk.messages.stream(
        model="claude-test",
        max_tokens=100,
        tools=tools,
        messages=[{"role": "user", "content": "Paris and London, in parallel"}],
    ) as s:
        kinds = [event.type for event in s]
        final = s.get_final_message()
    assert "input_json" in kinds and final.stop_reason == "tool_use"
    assert [(b.name, b.input) for b in final.content] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "London"}),
    ]


def test_sdk_raw_events_and_errors(sdk):
    names = [
        e.type
        for e in sdk.messages.create(
            model="claude-test", max_tokens=10, stream=True, messages=[{"role": "user", "content": "hi"}]
        )
    ]
    assert names[:2] == ["message_start", "content_block_start"] and names[-2:] == ["message_delta", "message_stop"]
    for text, error_class, status in [
        ("error:auth", anthropic.AuthenticationError, 401),
        ("error:rate_limit", anthropic.RateLimitError, 429),
        ("error:overloaded", anthropic.OverloadedError, 529),
        ("error:server", anthropic.InternalServerError, 500),
        ("error:context_length", anthropic.BadRequestError, 400),
    ]:
        with pytest.raises(error_class) as raised:
            sdk.messages.create(model="claude-test", max_tokens=10, messages=[{"role": "user", "content": text}])
        assert raised.value.status_code == status and raised.value.body["type"] == "error"
    with pytest.raises(anthropic.APIStatusError) as raised:
        list(
            sdk.messages.create(
                model="claude-test",
                max_tokens=10,
                stream=True,
                messages=[{"role": "user", "content": "error:stream_overloaded"}],
            )
        )
    assert raised.value.body["error"]["type"] == "overloaded_error"
    with pytest.raises(anthropic.BadRequestError) as raised:
        sdk.messages.create(model="claude-test", max_tokens=10, messages=[{"role": "system", "content": "x"}])
    assert "Unexpected role" in raised.value.message


@pytest.mark.parametrize(
    "override",
    [
        {"input_tokens": "abc"},
        {"output_tokens": -5},
        {"input_tokens": float("inf")},
        {"cache_read_input_tokens": 2**31},
    ],
    ids=["string", "negative", "inf", "huge"],
)
def test_a_miscounting_provider_is_billed_by_estimate_whole_and_streamed(fake, override):
    r = route(base_url=fake.base_url)
    fake.usage_override = override
    try:
        answer = run(_chat(r, {"messages": [user("hi there")]}))
        events, done, stream = run(_stream(r, {"messages": [user("hi there")]}))
    finally:
        fake.usage_override = {}
    assert 0 < answer["usage"]["prompt_tokens"] < 100 and 0 < answer["usage"]["completion_tokens"] < 100
    usage = stream.final_usage()
    assert done and stream.error is None and usage.estimated and "invalid usage" in usage.invalid
    assert events[-1]["usage"]["prompt_tokens"] == usage.prompt_tokens < 100 and usage.completion_tokens > 0
