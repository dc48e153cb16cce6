"""Tests for the fake OpenAI upstream, driven through the official openai SDK."""

import json

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import TOOL_ARGUMENTS, FakeOpenAI
from tests.fakes.server import server_fixture

KEY = "sk-upstream-test"
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "hi there"},
]
# 3 + 2 words, plus 3 per message.
PROMPT_TOKENS = 5 + 3 * 2


fake = server_fixture(lambda: FakeOpenAI())


@pytest.fixture
def client(fake):
    fake.reset()
    with openai.OpenAI(base_url=fake.base_url, api_key=KEY, max_retries=0, timeout=5) as c:
        yield c


def sse_events(resp: httpx.Response) -> list[str]:
    return [line[len("data: ") :] for line in resp.iter_lines() if line.startswith("data: ")]


def test_models(client):
    ids = [m.id for m in client.models.list()]
    assert "gpt-4o-mini" in ids and "fake-tool" in ids


def test_non_streaming_reply_and_usage(client, fake):
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    resp = raw.parse()
    assert resp.object == "chat.completion" and resp.id.startswith("chatcmpl-")
    assert resp.model == "gpt-4o-mini"
    assert resp.choices[0].message.content == "Hello! You said: hi there"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.system_fingerprint == "fp_fake"
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (
        PROMPT_TOKENS,
        5,
        PROMPT_TOKENS + 5,
    )
    assert raw.headers["content-type"] == "application/json"
    (rec,) = fake.requests
    assert raw.headers["x-request-id"] == rec.id
    assert rec.method == "POST" and rec.path == "/v1/chat/completions"
    assert rec.headers["authorization"] == f"Bearer {KEY}"
    assert rec.json["messages"] == MESSAGES and json.loads(rec.raw) == rec.json


def test_content_parts_are_joined(client):
    resp = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "one two"}, {"type": "text", "text": "three"}]}
        ],
    )
    assert resp.choices[0].message.content == "Hello! You said: one two three"
    assert resp.usage.prompt_tokens == 3 + 3


def test_streaming_without_usage(client):
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello! You said: hi there"
    assert len(chunks) == 1 + 5 + 1
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert all("usage" not in c.model_fields_set for c in chunks)


def test_streaming_with_usage(client):
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    *body, last = chunks
    assert last.choices == [] and last.usage.completion_tokens == 5
    assert last.usage.prompt_tokens == PROMPT_TOKENS and last.usage.total_tokens == PROMPT_TOKENS + 5
    assert all("usage" in c.model_fields_set and c.usage is None for c in body)
    assert body[-1].choices[0].finish_reason == "stop"


def test_streaming_wire_format(fake):
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    with httpx.stream(
        "POST", f"{fake.base_url}/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"}
    ) as resp:
        assert resp.headers["content-type"] == "text/event-stream"
        events = sse_events(resp)
    assert events[-1] == "[DONE]"
    first = json.loads(events[0])
    assert first["choices"][0] == {
        "index": 0,
        "delta": {"role": "assistant", "content": "", "refusal": None},
        "logprobs": None,
        "finish_reason": None,
    }
    assert json.loads(events[-2])["choices"][0]["delta"] == {}


def test_no_usage_model_ignores_stream_options(client):
    chunks = list(
        client.chat.completions.create(
            model="fake-no-usage", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert all("usage" not in c.model_fields_set for c in chunks) and chunks[-1].choices


def test_max_tokens_cut(client):
    resp = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=2)
    assert resp.choices[0].message.content == "Hello! You"
    assert resp.choices[0].finish_reason == "length" and resp.usage.completion_tokens == 2
    chunks = list(
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_completion_tokens=3, stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello! You said:"
    assert chunks[-1].choices[0].finish_reason == "length"


def test_wrong_key(fake):
    with openai.OpenAI(base_url=fake.base_url, api_key="sk-wrong-key-1234", max_retries=0) as c:
        with pytest.raises(openai.AuthenticationError) as exc:
            c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert exc.value.status_code == 401 and exc.value.code == "invalid_api_key"
    assert "sk-....1234" in exc.value.message


def test_bad_requests(fake):
    url, auth = f"{fake.base_url}/chat/completions", {"authorization": f"Bearer {KEY}"}
    r = httpx.post(url, content=b"{nope", headers=auth)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(url, json={"messages": MESSAGES}, headers=auth)
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    r = httpx.post(url, json={"model": "gpt-4o-mini"}, headers=auth)
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"


@pytest.mark.parametrize(
    "status,exc_class",
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_error_models(client, status, exc_class, stream):
    with pytest.raises(exc_class) as exc:
        client.chat.completions.create(model=f"fake-error-{status}", messages=MESSAGES, stream=stream)
    assert exc.value.status_code == status
    assert set(exc.value.body) == {"message", "type", "param", "code"}
    if status == 429:
        assert exc.value.response.headers["retry-after"] == "7"
        assert exc.value.code == "rate_limit_exceeded"
    if status == 503:
        assert exc.value.message.endswith("The engine is currently overloaded, please try again later")


def test_tool_call(client):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    resp = client.chat.completions.create(model="fake-tool", messages=MESSAGES, tools=tools)
    (call,) = resp.choices[0].message.tool_calls
    assert (call.id, call.function.name, call.function.arguments) == ("call_fake1", "lookup", TOOL_ARGUMENTS)
    assert resp.choices[0].finish_reason == "tool_calls" and resp.choices[0].message.content is None

    chunks = list(client.chat.completions.create(model="fake-tool", messages=MESSAGES, tools=tools, stream=True))
    parts = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert parts[0].id == "call_fake1" and parts[0].function.name == "lookup"
    assert all(p.index == 0 for p in parts) and len(parts) > 2
    assert "".join(p.function.arguments or "" for p in parts) == TOOL_ARGUMENTS
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_cut_stream_raises(client):
    received = []
    with pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError, openai.APIError)):
        for chunk in client.chat.completions.create(model="fake-cut", messages=MESSAGES, stream=True):
            received.append(chunk)
    assert len(received) == 4
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="fake-cut", messages=MESSAGES)


def test_malformed(fake):
    url, auth = f"{fake.base_url}/chat/completions", {"authorization": f"Bearer {KEY}"}
    r = httpx.post(url, json={"model": "fake-malformed", "messages": MESSAGES}, headers=auth)
    assert r.status_code == 200 and r.text == "not json"
    with httpx.stream(
        "POST", url, json={"model": "fake-malformed", "messages": MESSAGES, "stream": True}, headers=auth
    ) as resp:
        events = sse_events(resp)
    assert json.loads(events[0])["object"] == "chat.completion.chunk"
    assert events[1:] == ["{broken", "[DONE]"]


def test_slow_stream_disconnect(fake):
    fake.reset()
    body = {"model": "fake-slow", "messages": MESSAGES, "stream": True}
    with (
        httpx.Client() as http,
        http.stream(
            "POST", f"{fake.base_url}/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"}
        ) as resp,
    ):
        rid = resp.headers["x-request-id"]
        lines = resp.iter_lines()
        events = []
        while len(events) < 2:
            line = next(lines)
            if line.startswith("data: "):
                events.append(line)
    assert fake.wait_for_disconnect(timeout=5)
    assert fake.disconnects == [rid]


def test_hang_until_client_gives_up(fake):
    fake.reset()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{fake.base_url}/chat/completions",
            timeout=0.3,
            json={"model": "fake-hang", "messages": MESSAGES},
            headers={"authorization": f"Bearer {KEY}"},
        )
    assert fake.wait_for_disconnect(timeout=5, request_id=fake.requests[-1].id)
