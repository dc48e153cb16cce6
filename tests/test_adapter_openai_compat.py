"""The OpenAI-compatible adapter's pure functions: what is sent, and how an answer (or an error in a 200) is read."""

import json
from types import SimpleNamespace

import pytest

from providers.adapters.base import UpstreamError
from providers.adapters.openai_compat import errors, images, request, response

SECRET = "sk-compat-secret-0123456789abcdef"


def route(**changes):
    values = {
        "upstream_name": "up-model",
        "max_output_tokens": None,
        "options": {},
        "secret": SECRET,
        "preset": "openai",
        "base_url": "https://api.example/v1",
        "provider_name": "compat",
    }
    return SimpleNamespace(**(values | changes))


@pytest.mark.parametrize(
    "preset, stream, cap, expected",
    [
        ("openai", False, None, {"max_completion_tokens": 500}),  # OpenAI's reasoning models refuse max_tokens
        ("deepseek", False, None, {"max_tokens": 500}),
        ("deepseek", False, 100, {"max_tokens": 100}),  # never above the model's own cap
        ("deepseek", True, None, {"max_tokens": 500, "stream_options": {"include_usage": True}}),
        ("mistral", True, None, {"max_tokens": 500}),  # an API that does not honour stream_options is not sent it
    ],
)
def test_chat_request(preset, stream, cap, expected):
    body = {"model": "public/id", "messages": [], "max_tokens": 500}
    url, payload, headers = request.chat_request(route(preset=preset, max_output_tokens=cap), body, stream)
    sent = json.loads(payload)
    assert url == "https://api.example/v1/chat/completions" and headers["authorization"] == f"Bearer {SECRET}"
    assert sent == {"model": "up-model", "messages": [], **expected}


def test_a_key_is_refused_early_only_where_the_api_needs_one():
    with pytest.raises(UpstreamError) as raised:
        request.headers(route(secret=""), "application/json")
    assert (raised.value.status, raised.value.code) == (503, "no_credential")
    assert "authorization" not in request.headers(route(secret="", preset="ollama"), "application/json")


@pytest.mark.parametrize(
    "data, expected",
    [
        ({"error": {"message": "no"}}, True),
        ({"error": {"message": "no"}, "data": []}, False),  # an answer that also mentions an error is an answer
        ({"error": None, "choices": []}, False),
        (["error"], False),
    ],
)
def test_an_error_in_a_200(data, expected):
    assert errors.is_error(data, "data") is expected


def test_a_failure_reported_as_a_200_is_the_providers_and_quotes_no_key():
    content = json.dumps({"error": {"message": f"bad key {SECRET}", "code": "invalid_api_key"}}).encode()
    with pytest.raises(UpstreamError) as raised:
        response.chat_result(route(), {"messages": []}, content)
    assert (raised.value.code, raised.value.retryable) == ("invalid_api_key", True)
    assert SECRET not in raised.value.message


@pytest.mark.parametrize(
    "usage, expected",
    [
        ({"prompt_tokens": 7, "completion_tokens": 2}, (7, 2, False, 7)),
        ({"prompt_tokens": -1, "completion_tokens": 2}, (5, 1, True, 5)),  # the client is shown the estimate it pays
        (None, (5, 1, True, None)),  # nothing reported: the answer is passed on as it came
    ],
)
def test_chat_usage_is_read_or_estimated(usage, expected):
    answer = {"choices": [{"message": {"content": "hi"}}], **({"usage": usage} if usage else {})}
    result = response.chat_result(
        route(), {"messages": [{"role": "user", "content": "hello"}]}, json.dumps(answer).encode()
    )
    shown = (json.loads(result.body).get("usage") or {}).get("prompt_tokens")
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.estimated, shown) == expected


@pytest.mark.parametrize("content", [b"not json", b"[1]", b'{"choices": "abc"}'])
def test_an_answer_that_is_not_json_is_the_providers_fault(content):
    with pytest.raises(UpstreamError) as raised:
        response.chat_result(route(), {"messages": []}, content)
    assert (raised.value.status, raised.value.code) == (502, "upstream_invalid_response")


def test_image_answers_linked_or_inline():
    answer = json.dumps(
        {
            "data": [{"b64_json": "aGk=", "revised_prompt": "a cat"}, {"url": "https://cdn/x.png"}],
            "usage": {"input_tokens": 3, "output_tokens": 9},
        }
    ).encode()
    data, items = images.image_answer(route(), answer)
    assert images.image_urls(items) == ["https://cdn/x.png"]
    body = {"size": "1024x1024", "quality": "high"}
    result = images.image_result(route(), body, data, items, {"https://cdn/x.png": b"png"})
    assert result.images == [{"b64_json": "aGk=", "revised_prompt": "a cat"}, {"b64_json": "cG5n"}]
    assert (result.usage.images, result.usage.image_tier, result.usage.completion_tokens) == (2, "1024x1024/high", 9)
    with pytest.raises(UpstreamError):
        images.image_result(route(), body, {}, [{"b64_json": "not base64!"}], {})


def test_images_are_asked_as_base64_except_of_gpt_image():
    body = {"params": {"size": "1024x1024"}, "prompt": "p", "n": 1}
    assert images.image_params(route(upstream_name="dall-e-3"), body)["response_format"] == "b64_json"
    assert "response_format" not in images.image_params(route(upstream_name="gpt-image-1"), body)
