"""The Gemini adapter and its fake: the fake parses cleanly with Google's own SDK (google-genai),
refuses what Google refuses, and the hub maps Gemini's answers, streams and errors."""

import asyncio
import base64
import json
from types import SimpleNamespace

import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from providers.adapters import UpstreamError
from providers.adapters.gemini import errors, request, response
from providers.adapters.gemini import images as gemini_images
from tests.conftest import add_model
from tests.fakes.gemini_upstream import API_KEY, FakeGemini

# google-genai's own aiohttp session subclass warns on import; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def fake():
    server = FakeGemini().start()
    yield server
    server.stop()


@pytest.fixture
def sdk(fake):
    fake.reset()
    return genai.Client(api_key=API_KEY, http_options={"base_url": fake.base_url, "api_version": "v1beta"})


# ------------------------------------------------------------ the fake, seen by google-genai
def test_sdk_parses_a_whole_answer(sdk, fake):
    answer = sdk.models.generate_content(model="gemini-2.5-flash", contents="hi there")
    assert answer.text == "Hello! You said: hi there"
    assert answer.candidates[0].finish_reason == types.FinishReason.STOP
    assert (answer.usage_metadata.prompt_token_count, answer.usage_metadata.candidates_token_count) == (5, 5)
    (request,) = fake.requests
    assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert request.headers["x-goog-api-key"] == API_KEY and request.query == {}


def test_sdk_parses_a_stream(sdk, fake):
    chunks = list(
        sdk.models.generate_content_stream(
            model="gemini-2.5-flash", contents="hi there", config=types.GenerateContentConfig(max_output_tokens=3)
        )
    )
    assert [c.text for c in chunks] == ["Hello!", " You", " said:"]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert chunks[-1].usage_metadata.candidates_token_count == 3
    assert fake.requests[0].query == {"alt": ["sse"]}


def test_sdk_async_stream_over_aiohttp(sdk):
    async def run():
        stream = await sdk.aio.models.generate_content_stream(model="gemini-2.5-flash", contents="hello world")
        return [chunk.text async for chunk in stream]

    assert "".join(asyncio.run(run())) == "Hello! You said: hello world"


def test_sdk_parses_function_calls_with_a_thought_signature(sdk):
    tool = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="get_weather",
                parameters_json_schema=None,
                parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")}),
            )
        ]
    )
    config = types.GenerateContentConfig(tools=[tool], automatic_function_calling={"disable": True})
    answer = sdk.models.generate_content(model="gemini-2.5-flash", contents="weather, in parallel", config=config)
    assert [(c.name, c.args) for c in answer.function_calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "London"}),
    ]
    first, second = answer.candidates[0].content.parts
    assert first.thought_signature and not second.thought_signature
    chunks = list(sdk.models.generate_content_stream(model="gemini-2.5-flash", contents="weather?", config=config))
    assert [c.function_calls[0].args for c in chunks] == [{"city": "Paris"}]


def test_sdk_sees_a_blocked_prompt_and_google_errors(sdk):
    blocked = sdk.models.generate_content(model="gemini-2.5-flash", contents="error:content_policy")
    assert blocked.prompt_feedback.block_reason == types.BlockedReason.SAFETY and not blocked.candidates
    (chunk,) = sdk.models.generate_content_stream(model="gemini-2.5-flash", contents="error:content_policy")
    assert chunk.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    with pytest.raises(genai_errors.ClientError) as raised:
        sdk.models.generate_content(model="gemini-2.5-flash", contents="error:rate_limit")
    assert (raised.value.code, raised.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert raised.value.details["error"]["details"][-1]["retryDelay"] == "7s"
    with pytest.raises(genai_errors.ServerError) as raised:
        list(sdk.models.generate_content_stream(model="gemini-2.5-flash", contents="error:overloaded"))
    assert (raised.value.code, raised.value.status) == (503, "UNAVAILABLE")


# ------------------------------------------------------------ the fake refuses what Google refuses
def _post(fake, body, *, key=API_KEY, query="", method="generateContent"):
    headers = {"x-goog-api-key": key} if key else {}
    return httpx.post(
        f"{fake.base_url}/v1beta/models/gemini-2.5-flash:{method}{query}", json=body, headers=headers, timeout=5
    )


HI = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


@pytest.mark.parametrize(
    "key, query, status, state",
    [
        (API_KEY, f"?key={API_KEY}", 400, "INVALID_ARGUMENT"),  # the hub must never put the key in a URL
        (None, "", 403, "PERMISSION_DENIED"),
        ("AIza-wrong", "", 400, "INVALID_ARGUMENT"),
    ],
)
def test_the_fake_checks_the_key(fake, key, query, status, state):
    response = _post(fake, HI, key=key, query=query)
    assert response.status_code == status and response.json()["error"]["status"] == state


@pytest.mark.parametrize(
    "body, words",
    [
        ({**HI, "model": "x"}, 'Unknown name "model"'),
        ({**HI, "generationConfig": {"max_tokens": 3}}, 'Unknown name "max_tokens"'),
        (
            {
                **HI,
                "tools": [
                    {
                        "functionDeclarations": [
                            {
                                "name": "f",
                                "parameters": {
                                    "type": "object",
                                    "properties": {"a": {"type": "string"}},
                                    "additionalProperties": False,
                                },
                            }
                        ]
                    }
                ],
            },
            'Unknown name "additionalProperties"',
        ),
        (
            {
                **HI,
                "tools": [
                    {"functionDeclarations": [{"name": "f", "parameters": {"type": "object", "properties": {}}}]}
                ],
            },
            "should be non-empty for OBJECT type",
        ),
        (
            {
                "contents": [
                    HI["contents"][0],
                    {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
                    {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]},
                ]
            },
            "missing a thought_signature",
        ),
        ({"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]}, "valid role"),
    ],
)
def test_the_fake_refuses_what_google_refuses(fake, body, words):
    response = _post(fake, body)
    assert response.status_code == 400 and words in response.json()["error"]["message"]


def test_sse_framing_is_googles(fake):
    raw = _post(fake, HI, method="streamGenerateContent", query="?alt=sse").content
    assert raw.startswith(b"data: {") and raw.endswith(b"}\r\n\r\n") and raw.count(b"\r\n\r\n") == 4


# ------------------------------------------------------------ mapping, unit by unit
def _route(**overrides):
    values = {
        "base_url": "https://generativelanguage.googleapis.com",
        "options": {},
        "upstream_name": "gemini-2.5-flash",
        "max_output_tokens": None,
        "secret": "k",
        "provider_name": "gemini",
    }
    return SimpleNamespace(**{**values, **overrides})


def test_url_names_the_model_and_version():
    assert (
        request.url(_route(), False)
        == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert (
        request.url(_route(options={"api_version": "v1"}, upstream_name="tunedModels/mine"), True)
        == "https://generativelanguage.googleapis.com/v1/tunedModels/mine:streamGenerateContent?alt=sse"
    )
    assert (
        request.url(_route(base_url="https://proxy.example/v1beta/"), False)
        == "https://proxy.example/v1beta/models/gemini-2.5-flash:generateContent"
    )


def _google(code, status, message, details=None):
    error = {"code": code, "status": status, "message": message}
    return json.dumps({"error": {**error, **({"details": details} if details else {})}}).encode()


@pytest.mark.parametrize(
    "status, body, headers, expected",
    [
        (
            400,
            _google(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."),
            {},
            (502, "upstream_auth_failed", True, None),
        ),
        (
            403,
            _google(403, "PERMISSION_DENIED", "Consumer 'api_key:AIzaSECRET' has been suspended."),
            {},
            (502, "upstream_auth_failed", True, None),
        ),
        (
            429,
            _google(
                429,
                "RESOURCE_EXHAUSTED",
                "quota",
                [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "6.2s"}],
            ),
            {},
            (429, "rate_limit_exceeded", True, "7"),
        ),
        (
            429,
            _google(429, "RESOURCE_EXHAUSTED", "quota"),
            {"retry-after": "30"},
            (429, "rate_limit_exceeded", True, "30"),
        ),
        (
            400,
            _google(
                400,
                "INVALID_ARGUMENT",
                "The input token count (2000000) exceeds the maximum number of tokens allowed (1048576).",
            ),
            {},
            (400, "context_length_exceeded", False, None),
        ),
        (400, _google(400, "INVALID_ARGUMENT", "Invalid JSON payload received."), {}, (400, None, False, None)),
        (
            404,
            _google(404, "NOT_FOUND", "models/nope is not found for API version v1beta"),
            {},
            (502, "upstream_model_not_found", False, None),
        ),
        (500, _google(500, "INTERNAL", "An internal error has occurred."), {}, (502, "upstream_error", True, None)),
        (503, _google(503, "UNAVAILABLE", "The model is overloaded."), {}, (503, "upstream_overloaded", True, None)),
        (504, _google(504, "DEADLINE_EXCEEDED", "Deadline expired."), {}, (504, "upstream_timeout", True, None)),
        (502, b"<html>bad gateway</html>", {}, (502, "upstream_error", True, None)),
    ],
)
def test_google_errors_map_to_the_hubs(status, body, headers, expected):
    error = errors.error_from_response(status, body, headers, "gemini")
    assert (error.status, error.code, error.retryable, error.retry_after) == expected
    assert "SECRET" not in error.message and isinstance(error.code, (str, type(None)))


def test_usage_counts_cache_thoughts_and_tool_prompts_once():
    usage = response.usage(
        {
            "promptTokenCount": 100,
            "cachedContentTokenCount": 60,
            "candidatesTokenCount": 10,
            "thoughtsTokenCount": 25,
            "toolUsePromptTokenCount": 5,
            "totalTokenCount": 140,
        }
    )
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cache_read_tokens) == (105, 35, 60)
    assert response.usage(None) is None


def test_json_schemas_are_reduced_to_geminis_subset():
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "additionalProperties": False,
        "$defs": {"Unit": {"type": "string", "enum": ["C", "F"]}},
        "properties": {
            "city": {"type": ["string", "null"]},
            "unit": {"$ref": "#/$defs/Unit"},
            "kind": {"const": "x"},
            "tags": {"type": "array", "items": {"type": "string", "minLength": 1}},
        },
    }
    assert request.schema(schema) == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "nullable": True},
            "unit": {"type": "string", "enum": ["C", "F"]},
            "kind": {"enum": ["x"]},
            "tags": {"type": "array", "items": {"type": "string", "minLength": 1}},
        },
    }


def test_generation_config():
    body = {
        "max_tokens": 5000,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
        "n": 2,
        "presence_penalty": 1,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "a", "schema": {"$schema": "x", "type": "object", "additionalProperties": False}},
        },
    }
    assert request.generation_config(_route(max_output_tokens=4096), body, stream=False) == {
        "maxOutputTokens": 4096,
        "temperature": 0.2,
        "topP": 0.9,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object", "additionalProperties": False},
    }
    with pytest.raises(UpstreamError) as raised:  # a stream relays one candidate: n > 1 is refused, not dropped
        request.generation_config(_route(), body, stream=True)
    assert (raised.value.status, raised.value.param, raised.value.retryable) == (400, "n", False)
    assert "candidateCount" not in request.generation_config(_route(), dict(body, n=1), stream=True)


def test_tool_choice_and_empty_parameters():
    function = {"name": "now", "parameters": {"type": "object", "properties": {}}}
    body = {
        "tools": [{"type": "function", "function": function}],
        "tool_choice": {"type": "function", "function": {"name": "now"}},
    }
    assert request.tools(body) == {
        "tools": [{"functionDeclarations": [{"name": "now"}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["now"]}},
    }
    assert request.tools(dict(body, tool_choice="required"))["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert request.tools({"tool_choice": "auto"}) == {}


def test_messages_become_contents():
    messages = [
        {"role": "system", "content": "A."},
        {"role": "developer", "content": [{"type": "text", "text": "B."}]},
        {"role": "user", "content": "one"},
        {"role": "user", "content": [{"type": "text", "text": "two"}]},
        {
            "role": "assistant",
            "content": "ok",
            "tool_calls": [
                {
                    "id": "a",
                    "type": "function",
                    "function": {"name": "f", "arguments": '{"x": 1}'},
                    "extra_content": {"google": {"thought_signature": "c2ln"}},
                },
                {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "b", "content": "B"},
        {"role": "tool", "tool_call_id": "a", "content": "A"},
    ]
    system, contents = request.contents(messages)
    assert system == [{"text": "A."}, {"text": "B."}]
    assert contents == [
        {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
        {
            "role": "model",
            "parts": [
                {"text": "ok"},
                {"functionCall": {"name": "f", "args": {"x": 1}}, "thoughtSignature": "c2ln"},
                {"functionCall": {"name": "g", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "g", "response": {"content": "B"}}},
                {"functionResponse": {"name": "f", "response": {"content": "A"}}},
            ],
        },
    ]
    with pytest.raises(UpstreamError) as raised:
        request.contents([{"role": "tool", "tool_call_id": "zz", "content": "?"}])
    assert (raised.value.status, raised.value.param) == (400, "messages[0].tool_call_id")


def test_url_images_come_in_fetched_and_data_urls_inline():
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "https://img.example/cat.jpg"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}},
            ],
        },
        {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": "https://no.example/x"}}]},
    ]
    assert request.image_urls(messages) == ["https://img.example/cat.jpg"]
    _, contents = request.contents(messages, {"https://img.example/cat.jpg": ("image/jpeg", b"jpg")})
    assert contents[0]["parts"] == [
        {"inlineData": {"mimeType": "image/jpeg", "data": "anBn"}},
        {"inlineData": {"mimeType": "image/png", "data": "aGk="}},
    ]


def _candidate(*parts, finish="STOP"):
    return {"content": {"role": "model", "parts": list(parts)}, "finishReason": finish}


USAGE = {"promptTokenCount": 3, "candidatesTokenCount": 2}


@pytest.mark.parametrize(
    "answer, expected",
    [
        ({"candidates": [_candidate({"text": "Hi"}, {"text": "!"})], "usageMetadata": USAGE}, ("Hi!", None, "stop", 3)),
        (
            {
                "candidates": [_candidate({"thought": True, "text": "hmm"}, {"text": "ok"}, finish="MAX_TOKENS")],
                "usageMetadata": USAGE,
            },
            ("ok", None, "length", 3),
        ),
        (
            {
                "candidates": [
                    _candidate({"functionCall": {"name": "f", "args": {"x": 1}}, "thoughtSignature": "c2ln"})
                ],
                "usageMetadata": USAGE,
            },
            (None, ("f", '{"x": 1}', "c2ln"), "tool_calls", 3),
        ),
        ({"promptFeedback": {"blockReason": "SAFETY"}}, (None, None, "content_filter", "estimated")),
    ],
)
def test_answers_become_completions(answer, expected):
    result = response.chat_result(
        json.dumps(answer).encode(), {"messages": [{"role": "user", "content": "hi"}]}, "gemini-2.5-flash", "gemini"
    )
    (choice,) = json.loads(result.body)["choices"]
    message, calls = choice["message"], choice["message"].get("tool_calls")
    call = (
        (
            calls[0]["function"]["name"],
            calls[0]["function"]["arguments"],
            calls[0]["extra_content"]["google"]["thought_signature"],
        )
        if calls
        else None
    )
    usage = "estimated" if result.usage.estimated else result.usage.prompt_tokens
    assert (message["content"], call, choice["finish_reason"], usage) == expected


@pytest.mark.parametrize("answer", [{}, {"candidates": "abc"}, {"candidates": [{"content": {"parts": [{"text": 5}]}}]}])
def test_an_answer_that_is_not_one_is_the_providers_fault(answer):
    with pytest.raises(UpstreamError) as raised:
        response.chat_result(json.dumps(answer).encode(), {"messages": []}, "m", "gemini")
    assert (raised.value.status, raised.value.code) == (502, "upstream_invalid_response")


@pytest.mark.parametrize(
    "answer, expected",
    [
        (
            {
                "candidates": [_candidate({"inlineData": {"mimeType": "image/png", "data": "aGk="}})],
                "usageMetadata": USAGE,
            },
            ("aGk=", 2),
        ),
        ({"candidates": [_candidate(finish="IMAGE_SAFETY")]}, (400, "content_policy_violation")),
        ({"promptFeedback": {"blockReason": "OTHER"}}, (400, "content_policy_violation")),
        ({"candidates": [_candidate({"text": "no image, sorry"})]}, (502, "upstream_invalid_response")),
    ],
)
def test_image_answers(answer, expected):
    try:
        data, usage = gemini_images.image_answer(json.dumps(answer).encode(), "gemini")
        got = (data, usage.completion_tokens)
    except UpstreamError as error:
        got = (error.status, error.code)
    assert got == expected


# ------------------------------------------------------------ through the live hub
@pytest.fixture
def hub_client(hub, api_key, fake):
    from providers.models import Credential, Provider

    fake.reset()
    provider = Provider.objects.create(name="gemini", kind="gemini", base_url=fake.base_url)
    credential = Credential(provider=provider, name="main")
    credential.set_secret(API_KEY)
    credential.save()
    for name in ("gemini-2.5-flash", "fake-thinking", "fake-cut", "fake-stream-error", "fake-no-usage"):
        add_model(provider, f"gemini/{name}", name)
    return openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)


def test_a_thought_signature_survives_the_round_trip(hub_client, fake):
    ask = [{"role": "user", "content": "weather in Paris and London, in parallel"}]
    answer = hub_client.chat.completions.create(model="gemini/gemini-2.5-flash", messages=ask, tools=[WEATHER])
    message = answer.choices[0].message
    assert answer.choices[0].finish_reason == "tool_calls" and len(message.tool_calls) == 2
    assert all(c.id.startswith("call_") for c in message.tool_calls)
    signature = message.tool_calls[0].model_extra["extra_content"]["google"]["thought_signature"]
    replay = (
        ask
        + [message.model_dump(exclude_none=True)]
        + [
            {"role": "tool", "tool_call_id": c.id, "content": f"sunny in {json.loads(c.function.arguments)['city']}"}
            for c in message.tool_calls
        ]
    )
    final = hub_client.chat.completions.create(model="gemini/gemini-2.5-flash", messages=replay, tools=[WEATHER])
    assert final.choices[0].message.content == "Tool said: sunny in Paris sunny in London"
    model_turn = fake.requests[-1].json["contents"][1]
    assert model_turn["parts"][0]["thoughtSignature"] == signature
    assert "thoughtSignature" not in model_turn["parts"][1]


def test_a_streamed_tool_call_carries_its_signature(hub_client):
    chunks = list(
        hub_client.chat.completions.create(
            model="gemini/gemini-2.5-flash",
            messages=[{"role": "user", "content": "weather?"}],
            tools=[WEATHER],
            stream=True,
        )
    )
    (start,) = [
        c.choices[0].delta.tool_calls[0]
        for c in chunks
        if c.choices[0].delta.tool_calls and c.choices[0].delta.tool_calls[0].id
    ]
    assert start.model_extra["extra_content"]["google"]["thought_signature"]


def test_n_gives_one_choice_per_candidate(hub_client, fake):
    answer = hub_client.chat.completions.create(
        model="gemini/gemini-2.5-flash", n=2, messages=[{"role": "user", "content": "hi"}]
    )
    assert [(c.index, c.message.content) for c in answer.choices] == [
        (0, "Hello! You said: hi"),
        (1, "Hello! You said: hi"),
    ]
    # and the output cap credit was held for (no max_tokens, no model cap: HUB_DEFAULT_OUTPUT_HOLD)
    assert fake.requests[-1].json["generationConfig"] == {"candidateCount": 2, "maxOutputTokens": 4096}


def test_thoughts_are_billed_but_not_shown(hub_client):
    messages = [{"role": "user", "content": "hi"}]
    answer = hub_client.chat.completions.create(model="gemini/fake-thinking", messages=messages)
    assert answer.choices[0].message.content == "Hello! You said: hi"
    assert answer.usage.completion_tokens == 4 + 7
    chunks = list(
        hub_client.chat.completions.create(
            model="gemini/fake-thinking", messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello! You said: hi"
    assert chunks[-1].usage.completion_tokens == 11


def test_a_stream_without_usage_is_estimated(hub, hub_client):
    from billing.models import UsageRecord

    chunks = list(
        hub_client.chat.completions.create(
            model="gemini/fake-no-usage", stream=True, messages=[{"role": "user", "content": "hi"}]
        )
    )
    assert chunks[-1].choices[0].finish_reason == "stop"
    hub.drain()
    assert UsageRecord.objects.get().usage_estimated


@pytest.mark.parametrize("model", ["gemini/fake-cut", "gemini/fake-stream-error"])
def test_a_broken_stream_ends_in_an_error_event(hub, hub_client, model):
    from billing.models import UsageRecord

    text = ""
    with pytest.raises(openai.APIError):
        for chunk in hub_client.chat.completions.create(
            model=model, stream=True, messages=[{"role": "user", "content": "one two three"}]
        ):
            text += chunk.choices[0].delta.content or ""
    assert text.startswith("Hello!")
    hub.drain()
    assert UsageRecord.objects.get().status == "upstream_error"


def test_images_reach_gemini_inline(hub_client, fake):
    pixel = base64.b64encode(b"\x89PNG fake").decode()
    answer = hub_client.chat.completions.create(
        model="gemini/gemini-2.5-flash",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "see"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{pixel}"}},
                ],
            }
        ],
    )
    assert answer.choices[0].message.content == "Hello! You said: see [image]"
    assert fake.requests[-1].json["contents"][0]["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": pixel}}
