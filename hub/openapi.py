"""The gateway API's OpenAPI 3.1 document (GET /v1/openapi.json; Swagger UI at /docs/api/).

PATHS holds every operation the gateway can serve; document() keeps those whose URL resolves, so the
document says exactly what this hub serves (an endpoint another branch adds appears once its URL is
registered). tests/test_gateway_openapi.py holds it to hub/urls.py both ways, and fuzzes the live hub with it.
"""

from django.urls import Resolver404, resolve

from .openapi_schemas import SCHEMAS, ref

VERSION = "1"

# Every error status an operation can answer, and why. 499 (the client left) is recorded, never sent.
WHY = {
    400: "The request is malformed or invalid (the first problem found, named in `param`).",
    401: "No API key, or one that is unknown, revoked or expired.",
    402: "The organisation's credit does not cover the request.",
    403: "The key may not use this model, or not from this address.",
    404: "The model (or the image link) does not exist, or the key may not use it.",
    405: "The method is not this path's (the `Allow` header names the one that is).",
    413: "The body (or an uploaded file) is larger than this hub accepts.",
    429: "A rate limit or budget of the key, or of every provider route: retry after `retry-after` seconds.",
    500: "The hub failed to handle the request; it has been logged.",
    502: "The provider failed or answered what the hub could not read.",
    503: "No route can serve the model now (providers down, or the hub's own caps).",
    504: "The provider did not answer in time.",
}
RELAYED = (400, 401, 402, 403, 404, 405, 413, 429, 500, 502, 503, 504)  # every call that reaches a provider
READ = (401, 405)  # a GET of the key's own view

REQUEST_ID = {"description": "The request's id, as in the organisation's request log.", "schema": {"type": "string"}}
RETRY_AFTER = {"description": "Seconds until a retry may succeed.", "schema": {"type": "string"}}


def errors(statuses, schema: str = "Error") -> dict:
    responses = {}
    for status in statuses:
        response: dict = {"description": WHY[status], "content": {"application/json": {"schema": ref(schema)}}}
        if status == 405:
            response["headers"] = {"Allow": {"schema": {"type": "string"}, "required": True}}
        elif status in (429, 503):
            response["headers"] = {"retry-after": RETRY_AFTER}
        responses[str(status)] = response
    return responses


def json_body(schema: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": ref(schema)}}}


def form_body(schema: str) -> dict:
    return {"required": True, "content": {"multipart/form-data": {"schema": ref(schema)}}}


def ok(content: dict, description: str = "OK") -> dict:
    return {"200": {"description": description, "headers": {"x-request-id": REQUEST_ID}, "content": content}}


def relayed(summary: str, tag: str, request: dict, success: dict, *, statuses=RELAYED, error="Error") -> dict:
    return {
        "post": {
            "summary": summary,
            "tags": [tag],
            "requestBody": request,
            "responses": success | errors(statuses, error),
        }
    }


def _json(schema: str) -> dict:
    return {"application/json": {"schema": ref(schema)}}


_TEXT = {"text/plain": {"schema": {"type": "string"}}}


def events(payload: dict, description: str, *, done: bool = False) -> dict:
    """A server-sent event stream: `schema` describes one event (OpenAPI 3.1), its `data` JSON of `payload`.
    With `done`, OpenAI's: the last event is `[DONE]`, and a stream that fails once started ends with an error
    event in OpenAI's error shape (its status is sent already)."""
    data: dict = {"type": "string", "contentMediaType": "application/json", "contentSchema": payload}
    if done:
        data = {"anyOf": [{"const": "[DONE]"}, data, {**data, "contentSchema": ref("Error")}]}
    event = {"type": "object", "required": ["data"], "properties": {"event": {"type": "string"}, "data": data}}
    return {"text/event-stream": {"schema": {**event, "description": description}}}


_EVENTS = events(
    ref("ChatCompletionChunk"),
    "Each event's `data` a ChatCompletionChunk (or, if the stream fails, an Error); the last is `data: [DONE]`.",
    done=True,
)
_ANTHROPIC_EVENTS = events(
    {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}},
    "Anthropic's events: message_start, content_block_start/delta/stop, message_delta, message_stop (and ping, "
    "error), each `data` an object of the event's `type`.",
)


PATHS: dict[str, dict] = {
    "/v1/chat/completions": relayed(
        "Create a chat completion (streamed as server-sent events with `stream: true`)",
        "Chat",
        json_body("ChatCompletionRequest"),
        ok(_json("ChatCompletion") | _EVENTS),
    ),
    "/v1/embeddings": relayed(
        "Create embeddings", "Embeddings", json_body("EmbeddingsRequest"), ok(_json("Embeddings"))
    ),
    "/v1/images/generations": relayed(
        "Generate images", "Images", json_body("ImageGenerationRequest"), ok(_json("Images"))
    ),
    "/v1/images/edits": relayed(
        "Edit images (multipart/form-data as the SDKs send it, or JSON with image URLs or base64)",
        "Images",
        {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": ref("ImageEditForm")},
                "application/json": {"schema": ref("ImageEditRequest")},
            },
        },
        ok(_json("Images")),
    ),
    "/v1/audio/speech": relayed(
        "Generate speech (the audio streamed as it is made)",
        "Audio",
        json_body("SpeechRequest"),
        ok({"audio/*": {"schema": {"type": "string", "format": "binary"}}}, "The audio, in the format asked for."),
    ),
    "/v1/audio/transcriptions": relayed(
        "Transcribe audio", "Audio", form_body("TranscriptionForm"), ok(_json("Transcription") | _TEXT)
    ),
    "/v1/audio/translations": relayed(
        "Translate audio into English", "Audio", form_body("TranslationForm"), ok(_json("Transcription") | _TEXT)
    ),
    "/v1/messages": relayed(
        "Create a message (Anthropic's Messages API; streamed as Anthropic's events with `stream: true`)",
        "Messages",
        json_body("AnthropicMessagesRequest"),
        ok(_json("AnthropicMessage") | _ANTHROPIC_EVENTS),
        error="AnthropicError",
    ),
    "/v1/messages/count_tokens": relayed(
        "Count a message's input tokens (Anthropic's Messages API)",
        "Messages",
        json_body("AnthropicCountTokensRequest"),
        ok(_json("AnthropicTokenCount")),
        error="AnthropicError",
    ),
    "/v1/models": {
        "get": {
            "summary": "List the models this key may use, with their prices",
            "tags": ["Models"],
            "responses": ok(_json("ModelList")) | errors(READ),
        }
    },
    "/v1/models/{model_id}": {
        "get": {
            "summary": "One model (its id or alias), if this key may use it",
            "tags": ["Models"],
            "parameters": [
                {"name": "model_id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
            ],
            "responses": ok(_json("Model")) | errors((*READ, 404)),
        }
    },
    "/v1/status": {
        "get": {
            "summary": "Whether the hub is up, and which of this key's models can serve now",
            "tags": ["Status"],
            "responses": ok(_json("Status"))
            | {"503": {"description": "The hub's database or cache is down.", "content": _json("Status")}}
            | errors(READ),
        }
    },
    "/v1/files/images/{name}": {
        "get": {
            "summary": "A generated image, while its signed link is valid (an hour)",
            "tags": ["Images"],
            "security": [],
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}},
                {"name": "signature", "in": "query", "required": True, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {
                    "description": "The image.",
                    "content": {
                        kind: {"schema": {"type": "string", "format": "binary"}}
                        for kind in ("image/png", "image/jpeg", "image/webp")
                    },
                }
            }
            | errors((404, 405)),
        }
    },
    "/v1/openapi.json": {
        "get": {
            "summary": "This document",
            "tags": ["Status"],
            "security": [],
            "responses": {
                "200": {"description": "The gateway API's OpenAPI 3.1 document.", "content": {"application/json": {}}},
                "304": {"description": "Not modified (If-None-Match)."},
            }
            | errors((405,)),
        }
    },
}

DESCRIPTION = """The hub's OpenAI-compatible API (and Anthropic's Messages API where served). Any OpenAI SDK
works with the base URL `<this hub>/v1` and a hub API key; each path but image files is served under `/api/` too.

Errors always come in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}` (on `/v1/messages`,
Anthropic's). Fields of a request the hub does not check pass to the provider as sent."""


def served(path: str) -> bool:
    """Whether hub/urls.py serves `path` (a template: each {parameter} is tried as one segment)."""
    probe = "/".join("x" if part.startswith("{") else part for part in path.split("/"))
    try:
        resolve(probe)
    except Resolver404:
        return False
    return True


def document() -> dict:
    paths = {path: item for path, item in PATHS.items() if served(path)}
    tags = sorted({tag for item in paths.values() for op in item.values() for tag in op["tags"]})
    return {
        "openapi": "3.1.0",
        "info": {"title": "The hub: gateway API", "version": VERSION, "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"apiKey": []}],
        "tags": [{"name": tag} for tag in tags],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <hub API key>"},
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-api-key",
                    "description": "As Anthropic's SDKs send it.",
                },
            },
            "schemas": SCHEMAS,
        },
    }
