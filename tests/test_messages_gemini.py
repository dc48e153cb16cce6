"""POST /v1/messages/count_tokens to a Gemini route, with the official anthropic SDK against the live hub:
Gemini's own count (models.countTokens of the generateContent request the chat body would be), or the hub's
estimate when Gemini fails."""

import json
import time

import anthropic
import pytest

from billing.models import UsageRecord
from providers.adapters import messages as inbound
from providers.adapters.base import estimate_prompt_tokens, estimate_tokens
from tests import factories
from tests.conformance.cases import PIXEL_DATA_URL
from tests.fakes.gemini_upstream import API_KEY, DECLARATION_TOKENS, IMAGE_INPUT_TOKENS, FakeGemini
from tests.fakes.server import server_fixture

PIXEL_B64 = PIXEL_DATA_URL.partition(",")[2]
WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}

gemini_server = server_fixture(FakeGemini, scope="module")


@pytest.fixture
def fake_gemini(gemini_server):
    gemini_server.reset()
    return gemini_server


@pytest.fixture
def gemini(fake_gemini, transactional_db):
    provider = factories.provider("gemini", kind="gemini", base_url=fake_gemini.base_url, secret=API_KEY)
    factories.add_model(provider, "google/gemini-test", "gemini-test-1")
    return "google/gemini-test"


@pytest.fixture
def sdk(hub, api_key):
    return anthropic.Anthropic(base_url=hub.url, api_key=api_key, max_retries=0)


def only_record(hub, timeout: float = 5.0) -> UsageRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hub.drain()
        if UsageRecord.objects.exists():
            (record,) = UsageRecord.objects.all()
            return record
        time.sleep(0.05)
    raise AssertionError("no usage record")


def test_count_tokens_asks_gemini_with_the_system_prompt_images_and_tools(sdk, hub, fake_gemini, gemini):
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL_B64}},
        {"type": "text", "text": "Describe it"},
    ]
    raw = sdk.messages.with_raw_response.count_tokens(
        model=gemini,
        system="Be brief.",
        messages=[{"role": "user", "content": content}],
        tools=[WEATHER],
        tool_choice={"type": "auto"},
    )
    assert raw.headers["x-hub-token-count"] == "provider"
    # The fake's count: words of system and text (2 + 2), 3 per content (system and one turn), an image, a tool.
    assert raw.parse().input_tokens == 2 + 2 + 3 * 2 + IMAGE_INPUT_TOKENS + DECLARATION_TOKENS
    (sent,) = fake_gemini.requests
    assert sent.path == "/v1beta/models/gemini-test-1:countTokens" and sent.query == {}
    assert sent.headers["x-goog-api-key"] == API_KEY
    assert list(sent.json) == ["generateContentRequest"]
    whole = sent.json["generateContentRequest"]
    assert whole["model"] == "models/gemini-test-1" and "generationConfig" not in whole
    assert whole["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert whole["contents"] == [
        {
            "role": "user",
            "parts": [{"inlineData": {"mimeType": "image/png", "data": PIXEL_B64}}, {"text": "Describe it"}],
        }
    ]
    (declaration,) = whole["tools"][0]["functionDeclarations"]
    assert declaration["name"] == "get_weather" and declaration["parameters"]["required"] == ["city"]
    assert whole["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    record = only_record(hub)
    assert (record.endpoint, record.status, record.price) == ("messages.count_tokens", "ok", 0)
    assert record.provider_id is not None  # the route that counted


@pytest.mark.parametrize("kind", ["overloaded", "rate_limit", "auth"])
def test_a_gemini_error_falls_back_to_the_estimate(sdk, hub, fake_gemini, gemini, kind):
    body = {"model": gemini, "system": "Be brief.", "messages": [{"role": "user", "content": f"error:{kind}"}]}
    raw = sdk.messages.with_raw_response.count_tokens(**body)
    assert raw.status_code == 200 and raw.headers["x-hub-token-count"] == "estimate"
    chat = inbound.parse(body, count_only=True).chat
    assert raw.parse().input_tokens == estimate_prompt_tokens(chat) + estimate_tokens(len(json.dumps("")))
    (sent,) = fake_gemini.requests
    assert sent.path.endswith(":countTokens")
    record = only_record(hub)
    assert record.status == "ok" and record.provider_id is None  # no route counted it


def test_a_model_with_no_gemini_credential_is_estimated(sdk, hub, fake_gemini, transactional_db):
    provider = factories.provider("gemini-keyless", kind="gemini", base_url=fake_gemini.base_url)
    factories.add_model(provider, "google/keyless", "gemini-test-1")
    raw = sdk.messages.with_raw_response.count_tokens(
        model="google/keyless", messages=[{"role": "user", "content": "Hi"}]
    )
    assert raw.headers["x-hub-token-count"] == "estimate" and raw.parse().input_tokens > 0
    assert fake_gemini.requests == []
