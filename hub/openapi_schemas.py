"""The JSON Schemas of the gateway API's bodies (hub/openapi.py puts them in its document's components).

Requests say what the hub itself checks (hub/serializers.py, hub/images.py, hub/audio.py); fields it does not
check pass to the provider as sent, so request objects stay open (additionalProperties). Responses follow
OpenAI's documented formats (Anthropic's for /v1/messages), as the hub answers them whatever the provider.
"""

from .serializers import INT64, MAX_OUTPUT_TOKENS, ROLES


def nullable(schema: dict) -> dict:
    """`schema` or null, as OpenAPI 3.1 writes it (no `nullable`)."""
    kind = schema["type"]
    return {**schema, "type": [*kind, "null"] if isinstance(kind, list) else [kind, "null"]}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


# DRF's CharField refuses blank (or, trimmed, whitespace-only) strings and NUL characters.
NAME = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"^[^\x00]*\S[^\x00]*$"}
INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
BINARY = {"type": "string", "format": "binary"}
TOKENS = {"type": "integer", "minimum": 0}

ERROR = {
    "type": "object",
    "description": "OpenAI's error shape: every refusal and failure of the gateway.",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {
                    "type": "string",
                    "examples": ["invalid_request_error", "insufficient_quota", "rate_limit_error", "server_error"],
                },
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"], "examples": ["invalid_api_key", "model_not_found"]},
            },
        }
    },
}

ANTHROPIC_ERROR = {
    "type": "object",
    "description": "Anthropic's error shape, as /v1/messages answers it.",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {
                    "type": "string",
                    "examples": ["invalid_request_error", "authentication_error", "rate_limit_error", "api_error"],
                },
                "message": {"type": "string"},
            },
        },
    },
}

MESSAGE = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"enum": sorted(ROLES)},
        "content": {"description": "A string, or content parts as OpenAI documents them."},
        "name": {"type": "string"},
    },
}

CHAT_REQUEST = {
    "type": "object",
    "description": "Fields not listed here (tools, response_format, …) pass to the provider as sent.",
    "required": ["model", "messages"],
    "properties": {
        "model": NAME,
        "messages": {"type": "array", "minItems": 1, "items": ref("ChatMessage")},
        "stream": {"type": "boolean", "default": False},
        "stream_options": nullable({"type": "object", "properties": {"include_usage": {"type": "boolean"}}}),
        "max_tokens": nullable({**INTEGER, "minimum": 1, "maximum": MAX_OUTPUT_TOKENS}),
        "max_completion_tokens": nullable({**INTEGER, "minimum": 1, "maximum": MAX_OUTPUT_TOKENS}),
        "n": nullable({**INTEGER, "minimum": 1, "maximum": 128}),
        "temperature": nullable({**NUMBER, "minimum": 0, "maximum": 2}),
        "top_p": nullable({**NUMBER, "minimum": 0, "maximum": 1}),
        "presence_penalty": nullable({**NUMBER, "minimum": -2, "maximum": 2}),
        "frequency_penalty": nullable({**NUMBER, "minimum": -2, "maximum": 2}),
        "seed": nullable({**INTEGER, "minimum": -INT64 - 1, "maximum": INT64}),
        "top_logprobs": nullable({**INTEGER, "minimum": 0, "maximum": 20}),
    },
}

USAGE = {
    "type": "object",
    "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
    "properties": {
        "prompt_tokens": TOKENS,
        "completion_tokens": TOKENS,
        "total_tokens": TOKENS,
        "prompt_tokens_details": {"type": "object", "properties": {"cached_tokens": TOKENS}},
        "completion_tokens_details": {"type": "object"},
    },
}

FINISH_REASON = {
    "type": ["string", "null"],
    "enum": ["stop", "length", "tool_calls", "content_filter", "function_call", None],
}

CHAT_RESPONSE = {
    "type": "object",
    "required": ["id", "object", "created", "model", "choices"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "chat.completion"},
        "created": INTEGER,
        "model": {"type": "string"},
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "message", "finish_reason"],
                "properties": {
                    "index": INTEGER,
                    "message": {
                        "type": "object",
                        "required": ["role"],
                        "properties": {
                            "role": {"const": "assistant"},
                            "content": {"type": ["string", "null"]},
                            "refusal": {"type": ["string", "null"]},
                            "tool_calls": {"type": "array", "items": {"type": "object"}},
                        },
                    },
                    "logprobs": {"type": ["object", "null"]},
                    "finish_reason": FINISH_REASON,
                },
            },
        },
        "usage": ref("Usage"),
        "system_fingerprint": {"type": ["string", "null"]},
    },
}

CHAT_CHUNK = {
    "type": "object",
    "description": "One `data:` event of a streamed chat completion; the stream ends with `data: [DONE]`.",
    "required": ["id", "object", "created", "model", "choices"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "chat.completion.chunk"},
        "created": INTEGER,
        "model": {"type": "string"},
        "choices": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "delta"],
                "properties": {"index": INTEGER, "delta": {"type": "object"}, "finish_reason": FINISH_REASON},
            },
        },
        "usage": {"oneOf": [ref("Usage"), {"type": "null"}], "description": "The last chunk's, when asked for."},
    },
}

_TOKEN_IDS = {"type": "array", "minItems": 1, "maxItems": 2048, "items": INTEGER}

EMBEDDINGS_REQUEST = {
    "type": "object",
    "required": ["model", "input"],
    "properties": {
        "model": NAME,
        "input": {
            "oneOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "minItems": 1, "maxItems": 2048, "items": {"type": "string", "minLength": 1}},
                _TOKEN_IDS,
                {"type": "array", "minItems": 1, "maxItems": 2048, "items": _TOKEN_IDS},
            ]
        },
        "encoding_format": {"enum": ["float", "base64"]},
        "dimensions": {**INTEGER, "minimum": 1, "maximum": 65536},
        "user": {"type": "string"},
    },
}

EMBEDDINGS_RESPONSE = {
    "type": "object",
    "required": ["object", "data", "model", "usage"],
    "properties": {
        "object": {"const": "list"},
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["object", "index", "embedding"],
                "properties": {
                    "object": {"const": "embedding"},
                    "index": INTEGER,
                    "embedding": {
                        "oneOf": [{"type": "array", "items": NUMBER}, {"type": "string", "contentEncoding": "base64"}]
                    },
                },
            },
        },
        "model": {"type": "string"},
        "usage": {
            "type": "object",
            "required": ["prompt_tokens", "total_tokens"],
            "properties": {"prompt_tokens": TOKENS, "total_tokens": TOKENS},
        },
    },
}

SPEECH_REQUEST = {
    "type": "object",
    "required": ["model", "input", "voice"],
    "properties": {
        "model": NAME,
        "input": {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": r"^[^\x00]*$"},
        "voice": {**NAME, "maxLength": 100},
        "response_format": {"enum": ["mp3", "opus", "aac", "flac", "wav", "pcm"]},
        "speed": {**NUMBER, "minimum": 0.25, "maximum": 4.0},
        "instructions": {"type": "string"},
    },
}

_SHORT = nullable({"type": "string", "maxLength": 20, "pattern": r"^[^\x00]*\S[^\x00]*$"})

IMAGE_FIELDS = {
    "model": {**NAME, "description": "dall-e-2 when left out."},
    "prompt": {"type": "string", "minLength": 1, "pattern": r"^[^\x00]*\S[^\x00]*$"},
    "n": nullable({**INTEGER, "minimum": 1, "maximum": 10}),
    "size": _SHORT,
    "quality": _SHORT,
    "style": _SHORT,
    "response_format": {"type": ["string", "null"], "enum": ["url", "b64_json", None]},
    "user": {**NAME, "maxLength": 256},
    "background": {"enum": ["transparent", "opaque", "auto"]},
    "output_format": {"enum": ["png", "jpeg", "webp"]},
    "output_compression": {**INTEGER, "minimum": 0, "maximum": 100},
    "moderation": {"enum": ["low", "auto"]},
}

IMAGE_GENERATION_REQUEST = {
    "type": "object",
    "description": "What each model accepts (sizes, qualities, n) is checked once the model is known: a 400 if not.",
    "required": ["prompt"],
    "properties": IMAGE_FIELDS,
}

_IMAGE_REF = {
    "oneOf": [
        {"type": "string", "description": "An https: or data: URL, or base64 data."},
        {"type": "object", "required": ["image_url"], "properties": {"image_url": {"type": "string"}}},
    ]
}

IMAGE_EDIT_JSON = {
    "type": "object",
    "required": ["prompt", "image"],
    "properties": {
        **IMAGE_FIELDS,
        "image": {"oneOf": [_IMAGE_REF, {"type": "array", "minItems": 1, "items": _IMAGE_REF}]},
        "mask": _IMAGE_REF,
        "input_fidelity": {"enum": ["high", "low"]},
    },
}

# A form's values are strings, converted and then checked as the JSON body's are.
_FORM_NUMBERS = {"n": "^([1-9]|10)$", "output_compression": "^([0-9]|[1-9][0-9]|100)$"}


def _as_form(name: str, schema: dict) -> dict:
    if name in _FORM_NUMBERS:
        return {"type": "string", "pattern": _FORM_NUMBERS[name]}
    if "enum" in schema:
        return {"enum": [value for value in schema["enum"] if value is not None]}
    return {**schema, "type": "string"}


IMAGE_EDIT_FORM = {
    "type": "object",
    "required": ["prompt", "image"],
    "properties": {
        **{name: _as_form(name, schema) for name, schema in IMAGE_FIELDS.items()},
        "image": {"oneOf": [BINARY, {"type": "array", "items": BINARY}], "description": "PNG, JPEG or WebP."},
        "mask": BINARY,
    },
}

IMAGES_RESPONSE = {
    "type": "object",
    "required": ["created", "data"],
    "properties": {
        "created": INTEGER,
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "url": {"type": "string", "description": "A link to the hub's copy, valid for an hour."},
                    "b64_json": {"type": "string", "contentEncoding": "base64"},
                    "revised_prompt": {"type": "string"},
                },
            },
        },
        "usage": {"type": "object"},
    },
}

_TRANSCRIPTION_FORMATS = ["json", "text", "srt", "vtt", "verbose_json"]
_AUDIO_FIELDS: dict = {
    "file": {**BINARY, "description": "The audio: flac, mp3, mp4, mpeg, mpga, m4a, ogg, opus, wav or webm."},
    "model": {"type": "string", "minLength": 1},
    "prompt": {"type": "string"},
    "response_format": {"enum": _TRANSCRIPTION_FORMATS},
    "temperature": {**NUMBER, "minimum": 0, "maximum": 1},
}

TRANSCRIPTION_FORM = {
    "type": "object",
    "required": ["file", "model"],
    "properties": {
        **_AUDIO_FIELDS,
        "language": {"type": "string"},
        "timestamp_granularities[]": {"type": "array", "items": {"enum": ["word", "segment"]}},
    },
}

# Translations always produce English: `language` is refused (hub/audio.py).
TRANSLATION_FORM = {"type": "object", "required": ["file", "model"], "properties": _AUDIO_FIELDS}

TRANSCRIPTION_RESPONSE = {
    "type": "object",
    "description": "json: the text (and usage); verbose_json adds the language, duration and segments (and words).",
    "required": ["text"],
    "properties": {
        "text": {"type": "string"},
        "task": {"type": "string"},
        "language": {"type": "string"},
        "duration": NUMBER,
        "segments": {"type": "array", "items": {"type": "object"}},
        "words": {"type": "array", "items": {"type": "object"}},
        "usage": {"type": "object"},
    },
}

_PRICE = {"type": "string", "description": "A decimal amount per unit, after the organisation's price plan."}

MODEL = {
    "type": "object",
    "required": ["id", "object", "created", "owned_by"],
    "properties": {
        "id": {"type": "string"},
        "object": {"const": "model"},
        "created": INTEGER,
        "owned_by": {"type": "string"},
        "kind": {"type": "string", "examples": ["chat", "embedding", "audio", "image", "transcription"]},
        "context_length": {"type": ["integer", "null"]},
        "max_output_tokens": {"type": ["integer", "null"]},
        "alias_of": {"type": "string", "description": "The model's id, when `id` is its alias."},
        "pricing": {
            "type": "object",
            "additionalProperties": {"oneOf": [_PRICE, {"type": "object", "additionalProperties": _PRICE}]},
        },
    },
}

MODEL_LIST = {
    "type": "object",
    "required": ["object", "data"],
    "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": ref("Model")}},
}

_STATE = {"enum": ["ok", "unavailable", "not configured"]}

STATUS = {
    "type": "object",
    "required": ["object", "status", "time", "services", "models"],
    "properties": {
        "object": {"const": "status"},
        "status": {"enum": ["ok", "degraded", "unavailable"]},
        "time": {"type": "string", "format": "date-time"},
        "services": {
            "type": "object",
            "required": ["database", "cache"],
            "properties": {"database": _STATE, "cache": _STATE},
        },
        "models": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "object", "available", "routes", "routes_available"],
                "properties": {
                    "id": {"type": "string"},
                    "object": {"const": "model.status"},
                    "available": {"type": "boolean"},
                    "routes": TOKENS,
                    "routes_available": TOKENS,
                },
            },
        },
    },
}

# Anthropic's Messages API (https://docs.anthropic.com/en/api/messages), as its SDKs send it.
_TEXT_BLOCK = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
}

ANTHROPIC_MESSAGE_PARAM = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {
        "role": {"enum": ["user", "assistant"]},
        "content": {
            "oneOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["type"],
                        "properties": {
                            "type": {
                                "type": "string",
                                "examples": ["text", "image", "document", "tool_use", "tool_result", "thinking"],
                            }
                        },
                    },
                },
            ]
        },
    },
}

_COUNT_FIELDS = {
    "model": NAME,
    "messages": {"type": "array", "minItems": 1, "items": ref("AnthropicMessageParam")},
    "system": {"oneOf": [{"type": "string"}, {"type": "array", "items": _TEXT_BLOCK}]},
    "tools": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "description": {"type": "string"},
                "input_schema": {"type": "object"},
            },
        },
    },
    "tool_choice": {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": ["auto", "any", "tool", "none"]}, "name": {"type": "string"}},
    },
    "thinking": {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": ["enabled", "disabled"]}, "budget_tokens": {**INTEGER, "minimum": 1024}},
    },
}

ANTHROPIC_REQUEST = {
    "type": "object",
    "required": ["model", "messages", "max_tokens"],
    "properties": {
        **_COUNT_FIELDS,
        "max_tokens": {**INTEGER, "minimum": 1, "maximum": MAX_OUTPUT_TOKENS},
        "metadata": {"type": "object", "properties": {"user_id": {"type": ["string", "null"]}}},
        "stop_sequences": {"type": "array", "items": {"type": "string"}},
        "stream": {"type": "boolean"},
        "temperature": {**NUMBER, "minimum": 0, "maximum": 1},
        "top_k": {**INTEGER, "minimum": 0},
        "top_p": {**NUMBER, "minimum": 0, "maximum": 1},
    },
}

ANTHROPIC_COUNT_REQUEST = {"type": "object", "required": ["model", "messages"], "properties": _COUNT_FIELDS}

ANTHROPIC_MESSAGE = {
    "type": "object",
    "required": ["id", "type", "role", "content", "model", "stop_reason", "usage"],
    "properties": {
        "id": {"type": "string"},
        "type": {"const": "message"},
        "role": {"const": "assistant"},
        "content": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"type": "string", "examples": ["text", "tool_use", "thinking"]}},
            },
        },
        "model": {"type": "string"},
        "stop_reason": {
            "type": ["string", "null"],
            "enum": ["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal", None],
        },
        "stop_sequence": {"type": ["string", "null"]},
        "usage": {
            "type": "object",
            "required": ["input_tokens", "output_tokens"],
            "properties": {
                "input_tokens": TOKENS,
                "output_tokens": TOKENS,
                "cache_creation_input_tokens": {"type": ["integer", "null"], "minimum": 0},
                "cache_read_input_tokens": {"type": ["integer", "null"], "minimum": 0},
            },
        },
    },
}

ANTHROPIC_TOKEN_COUNT = {
    "type": "object",
    "required": ["input_tokens"],
    "properties": {"input_tokens": TOKENS},
}

SCHEMAS = {
    "Error": ERROR,
    "AnthropicError": ANTHROPIC_ERROR,
    "ChatMessage": MESSAGE,
    "ChatCompletionRequest": CHAT_REQUEST,
    "ChatCompletion": CHAT_RESPONSE,
    "ChatCompletionChunk": CHAT_CHUNK,
    "Usage": USAGE,
    "EmbeddingsRequest": EMBEDDINGS_REQUEST,
    "Embeddings": EMBEDDINGS_RESPONSE,
    "SpeechRequest": SPEECH_REQUEST,
    "ImageGenerationRequest": IMAGE_GENERATION_REQUEST,
    "ImageEditRequest": IMAGE_EDIT_JSON,
    "ImageEditForm": IMAGE_EDIT_FORM,
    "Images": IMAGES_RESPONSE,
    "TranscriptionForm": TRANSCRIPTION_FORM,
    "TranslationForm": TRANSLATION_FORM,
    "Transcription": TRANSCRIPTION_RESPONSE,
    "Model": MODEL,
    "ModelList": MODEL_LIST,
    "Status": STATUS,
    "AnthropicMessageParam": ANTHROPIC_MESSAGE_PARAM,
    "AnthropicMessagesRequest": ANTHROPIC_REQUEST,
    "AnthropicCountTokensRequest": ANTHROPIC_COUNT_REQUEST,
    "AnthropicMessage": ANTHROPIC_MESSAGE,
    "AnthropicTokenCount": ANTHROPIC_TOKEN_COUNT,
}
