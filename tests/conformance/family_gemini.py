"""The Gemini family: OpenAI requests become Generative Language API generateContent requests.

check_request spells out, case by case, the native request Google documents:
POST /v1beta/models/{model}:generateContent (streams: :streamGenerateContent
?alt=sse), the key in the x-goog-api-key header and nowhere else, the system
prompt as systemInstruction, roles user/model, images (data: or http URL) as
inlineData bytes, tools as functionDeclarations, a replayed tool call as a
functionCall part (with Google's placeholder thought signature, as the client
sent none) answered by a functionResponse part naming the function, and
stop / max_tokens / JSON mode in generationConfig.

Gemini's own semantics differ from the table once: a prompt its safety filter
blocks is not an error but a 200 with no candidates, which the hub answers with
no content and finish_reason "content_filter".
"""

import base64

from providers.adapters.gemini.request import SIGNATURE_FALLBACK
from tests.conformance.family import FakeFamily
from tests.fakes.gemini_upstream import FakeGemini

from .cases import PIXEL_PNG, WEATHER_TOOL, Expect

SECRET = "AIzaSyConformance-gemini-0123456789abcde"
UPSTREAM_MODEL = "gemini-2.5-flash"
TOOLS = [
    {
        "functionDeclarations": [
            {
                "name": "get_weather",
                "description": WEATHER_TOOL["function"]["description"],
                "parameters": WEATHER_TOOL["function"]["parameters"],
            }
        ]
    }
]
PIXEL = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PIXEL_PNG).decode()}}


def _user(*parts):
    return {"role": "user", "parts": list(parts)}


def expected(case) -> dict:
    """The exact native body for a case."""
    contents = {
        "multi_turn": [
            _user({"text": "first"}),
            {"role": "model", "parts": [{"text": "Hello! You said: first"}]},
            _user({"text": "second"}),
        ],
        "image_base64": [_user({"text": "what is this?"}, PIXEL)],
        "image_url": [_user({"text": "and this?"}, PIXEL)],  # fetched by the hub: Gemini takes bytes only
        "tool_round_trip": [
            _user({"text": "weather in Paris?"}),
            {
                "role": "model",
                "parts": [
                    {
                        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                        "thoughtSignature": SIGNATURE_FALLBACK,
                    }
                ],
            },
            _user({"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}}),
        ],
    }.get(case.name)
    if contents is None:  # every other case ends in one user message with text content
        message = case.messages[-1]
        assert message["role"] == "user" and isinstance(message["content"], str)
        contents = [_user({"text": message["content"]})]
    body = {"contents": contents}
    if case.name == "system_prompt":
        body["systemInstruction"] = {"parts": [{"text": "Be brief."}]}
    if "tools" in case.params:
        body["tools"] = TOOLS
    # Always a cap: the request's, else the one its credit was held for (HUB_DEFAULT_OUTPUT_HOLD).
    config = {"maxOutputTokens": case.params.get("max_tokens", 4096)}
    if "stop" in case.params:
        stop = case.params["stop"]
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if "response_format" in case.params:
        config["responseMimeType"] = "application/json"
    body["generationConfig"] = config
    return body


class GeminiFamily(FakeFamily):
    name = "gemini"
    kind = "gemini"
    upstream_model = UPSTREAM_MODEL
    overrides = {
        # A blocked prompt is a 200 with promptFeedback.blockReason and no candidates:
        # no content (null), finish_reason "content_filter".
        "error_content_policy": Expect(text=None, finish="content_filter"),
    }

    def check_request(self, case, request, stream):
        method = "streamGenerateContent" if stream else "generateContent"
        assert (request.method, request.path) == ("POST", f"/v1beta/models/{UPSTREAM_MODEL}:{method}")
        assert request.query == ({"alt": ["sse"]} if stream else {})  # and never key=
        assert request.headers["x-goog-api-key"] == SECRET
        assert "authorization" not in request.headers
        assert request.headers["content-type"] == "application/json"
        assert request.json == expected(case)


FAMILY = GeminiFamily(FakeGemini(api_key=SECRET), SECRET)
