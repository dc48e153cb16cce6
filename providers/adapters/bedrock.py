"""Amazon Bedrock Runtime: the Converse and ConverseStream APIs.

Configuration:
* the credential's secret is JSON:
  ``{"access_key_id": "AKIA…", "secret_access_key": "…", "session_token": "…"}``
  (``session_token`` only for temporary credentials);
* ``options.region`` (default us-east-1) is the signing region, and fills the
  default base URL ``https://bedrock-runtime.{region}.amazonaws.com``;
* the model's upstream name is the Bedrock model id, inference profile id or ARN.

Every request is signed with SigV4 (service "bedrock") by botocore and sent with
the hub's shared HTTP client. ConverseStream answers with AWS event-stream
binary frames, decoded with botocore's parser.
"""

import base64
import json
import re
from urllib.parse import quote

import httpx
import yarl
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer, ParserError

from . import errors, media, translate, transport
from .base import ChatResult, Counts, UpstreamError, Usage, estimate_prompt_tokens, estimate_tokens, message_text
from .translate import TranslatedStream, completion, tool_call

FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif", "image/webp": "webp"}
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
          "guardrail_intervened": "content_filter", "content_filtered": "content_filter",
          "model_context_window_exceeded": "length"}
# Converse has no JSON mode (outputConfig's structured output exists only for
# some models), so JSON is asked for with a system instruction, which every
# model understands.
JSON_INSTRUCTION = "Respond with a single JSON object and nothing else: no prose, no code fences."
# ValidationException wording for an over-long prompt varies by model family.
TOO_LONG = re.compile(r"too long|too many (input )?tokens|input tokens exceed|exceeds? the (maximum|context)|"
                      r"context (length|window)", re.IGNORECASE)
AUTH_ERRORS = {"accessdeniedexception", "unrecognizedclientexception", "invalidsignatureexception",
               "incompletesignatureexception", "missingauthenticationtokenexception", "expiredtokenexception",
               "invalidclienttokenid", "signaturedoesnotmatch"}


# ----------------------------------------------------------------- request
def _bad(message: str, param: str = "messages") -> UpstreamError:
    return UpstreamError(message, status=400, type="invalid_request_error", code="invalid_value", param=param)


async def _user_blocks(content) -> list[dict]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and part.get("text"):
            blocks.append({"text": part["text"]})
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            mime, data = await media.fetch_image(image.get("url", "") if isinstance(image, dict) else str(image))
            if mime not in FORMATS:
                raise media.bad_image(f"Bedrock takes PNG, JPEG, GIF or WebP images, not {mime or 'this type'}.")
            # Blobs travel base64-encoded in the JSON wire format.
            blocks.append({"image": {"format": FORMATS[mime],
                                     "source": {"bytes": base64.b64encode(data).decode()}}})
    return blocks


def _tool_input(arguments) -> dict:
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = json.loads(arguments)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        # toolUse.input must be a JSON object.
        raise _bad("A tool call's arguments must be a JSON object.")
    return value


def _append(messages: list[dict], role: str, blocks: list[dict]) -> None:
    if not blocks:
        return  # Bedrock rejects a message without content
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)  # roles must alternate: merge
    else:
        messages.append({"role": role, "content": blocks})


def _tool_config(body: dict) -> dict | None:
    tools = [t["function"] for t in body.get("tools") or []
             if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("function"), dict)]
    choice = body.get("tool_choice")
    if not tools or choice == "none":
        return None
    specs = []
    for fn in tools:
        spec = {"name": fn.get("name"), "inputSchema": {"json": fn.get("parameters") or {"type": "object",
                                                                                         "properties": {}}}}
        if fn.get("description"):
            spec["description"] = fn["description"]
        specs.append({"toolSpec": spec})
    config = {"tools": specs}
    if choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        config["toolChoice"] = {"tool": {"name": choice["function"].get("name")}}
    return config


def _json_instruction(body: dict) -> str | None:
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        return JSON_INSTRUCTION
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            return f"{JSON_INSTRUCTION} It must match this JSON schema: {json.dumps(schema, separators=(',', ':'))}"
        return JSON_INSTRUCTION
    return None


async def native_request(route, body: dict) -> dict:
    """The Converse request body for an OpenAI chat request."""
    transport.one_choice(route, body)
    system, messages = [], []
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role in ("system", "developer"):
            if text := message_text(message):
                system.append({"text": text})
        elif role == "user":
            _append(messages, "user", await _user_blocks(message.get("content")))
        elif role == "assistant":
            blocks = [{"text": text}] if (text := message_text(message)) else []
            for call in message.get("tool_calls") or []:
                fn = call.get("function") or {}
                blocks.append({"toolUse": {"toolUseId": call.get("id"), "name": fn.get("name"),
                                           "input": _tool_input(fn.get("arguments"))}})
            _append(messages, "assistant", blocks)
        elif role == "tool":
            # Tool results are user content in Converse; consecutive ones share one user message.
            _append(messages, "user", [{"toolResult": {"toolUseId": message.get("tool_call_id"),
                                                       "content": [{"text": message_text(message)}]}}])
    if instruction := _json_instruction(body):
        system.append({"text": instruction})
    request = {"messages": messages}
    if system:
        request["system"] = system
    inference = {}
    max_tokens = transport.max_tokens(route, body)
    if max_tokens:
        inference["maxTokens"] = max_tokens
    if body.get("temperature") is not None:
        inference["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        inference["topP"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        inference["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if inference:
        request["inferenceConfig"] = inference
    if config := _tool_config(body):
        request["toolConfig"] = config
    return request


def _credentials(route) -> Credentials:
    try:
        secret = json.loads(route.secret or "")
        return Credentials(secret["access_key_id"], secret["secret_access_key"], secret.get("session_token"))
    except (ValueError, TypeError, KeyError):
        # Never quote the secret, even a malformed one.
        raise errors.no_credential(route.provider_name,
                                   " (expected JSON with access_key_id and secret_access_key)") from None


def signed_request(route, operation: str, payload: bytes) -> tuple[str, dict]:
    """The URL and SigV4-signed headers for POST /model/{modelId}/{operation}."""
    url = f"{route.base_url}/model/{quote(route.upstream_name, safe='')}/{operation}"
    # The shared transport (aiohttp) re-quotes URLs with yarl, which sends %3A as
    # ":"; SigV4 signs the path exactly as the server receives it, so sign the
    # URL in the form it will travel in.
    url = str(yarl.URL(url))
    accept = "application/vnd.amazon.eventstream" if operation == "converse-stream" else "application/json"
    request = AWSRequest(method="POST", url=url, data=payload,
                         headers={"content-type": "application/json", "accept": accept})
    region = route.options.get("region") or "us-east-1"
    SigV4Auth(_credentials(route), "bedrock", region).add_auth(request)
    return url, dict(request.headers.items())


# ----------------------------------------------------------------- errors
def error(kind: str, status: int, message: str, provider: str, retry_after: str | None = None) -> UpstreamError:
    """An AWS error (x-amzn-errortype, or an event stream's :exception-type) as the hub's error."""
    kind = kind.split(":")[0].lower()  # "ThrottlingException:http://internal.amazon.com/coral/…"
    if kind in AUTH_ERRORS or status in (401, 403):
        # Never echo the provider's words here: they can quote the credential.
        return UpstreamError(f"The provider '{provider}' rejected the hub's credential.", status=502,
                             code="upstream_auth_failed", retryable=True)
    if kind in ("serviceunavailableexception", "modelnotreadyexception") or status == 503:
        # ModelNotReadyException comes as a 429, but it is not a rate limit.
        return UpstreamError(message or f"The provider '{provider}' is overloaded.", status=503,
                             type="server_error", code="upstream_overloaded", retryable=True)
    if kind == "throttlingexception" or status == 429:
        return UpstreamError(message or "Rate limited by the provider.", status=429, type="rate_limit_error",
                             code="rate_limit_exceeded", retryable=True, retry_after=retry_after)
    if kind == "validationexception" and TOO_LONG.search(message):
        return UpstreamError(message, status=400, type="invalid_request_error", code="context_length_exceeded")
    if kind == "modeltimeoutexception" or status == 408:
        return UpstreamError(f"The provider '{provider}' timed out.", status=504, code="upstream_timeout",
                             retryable=True)
    if kind == "resourcenotfoundexception" or status == 404:
        return UpstreamError(f"The provider '{provider}' does not know this model: {message}", status=502,
                             code="upstream_model_not_found")
    if kind in ("internalserverexception", "modelstreamerrorexception", "modelerrorexception") or status >= 500:
        # ModelErrorException (424) is the model failing, not the request being wrong.
        return UpstreamError(f"The provider '{provider}' failed: {message}".rstrip(": "), status=502,
                             code="upstream_error", retryable=True)
    return UpstreamError(message or "The provider refused the request.", status=400, type="invalid_request_error")


def _http_error(status: int, content: bytes, headers, provider: str) -> UpstreamError:
    try:
        data = json.loads(content)
    except ValueError:
        data = None
    data = data if isinstance(data, dict) else {}
    kind = headers.get("x-amzn-errortype") or str(data.get("__type") or "")
    message = str(data.get("message") or data.get("Message") or content[:300].decode(errors="replace"))[:1000]
    return error(kind, status, message, provider, headers.get("retry-after"))


# ----------------------------------------------------------------- answers
def _usage(data) -> Usage | None:
    if not isinstance(data, dict):
        return None
    counts = Counts()
    read, write = counts.read(data, "cacheReadInputTokens"), counts.read(data, "cacheWriteInputTokens")
    # inputTokens leaves out cached tokens; OpenAI's prompt_tokens counts them.
    return counts.usage(Usage(counts.read(data, "inputTokens") + read + write, counts.read(data, "outputTokens"),
                              cache_read_tokens=read, cache_write_tokens=write))


def _invalid(provider: str) -> UpstreamError:
    return UpstreamError(f"The provider '{provider}' sent an answer that is not valid.",
                         code="upstream_invalid_response")


class BedrockAdapter:
    async def embed(self, route, body: dict) -> ChatResult:
        """Titan text embeddings (InvokeModel), one request per input; Titan counts the tokens."""
        inputs = translate.embedding_inputs(body)
        if not all(isinstance(item, str) for item in inputs):
            raise UpstreamError("This model takes text only, not token ids.", status=400,
                                type="invalid_request_error", code="invalid_value", param="input")
        vectors, tokens, counts = [], 0, Counts()
        for text in inputs:
            native = {"inputText": text}
            if body.get("dimensions"):
                native["dimensions"] = body["dimensions"]
            payload = json.dumps(native, separators=(",", ":")).encode()
            url, headers = signed_request(route, "invoke", payload)
            response = await transport.send(route, url, payload, headers, _http_error, stream=False)
            try:
                data = json.loads(response.content)
                vectors.append(data["embedding"])
                tokens += counts.read(data, "inputTextTokenCount")
            except (ValueError, KeyError, TypeError):
                raise _invalid(route.provider_name) from None
        usage = Usage.or_estimate(counts.usage(Usage(tokens, 0)),
                                  lambda: Usage(estimate_tokens(sum(len(text) for text in inputs)), 0))
        with translate.reading(route.provider_name):
            answer = translate.embeddings(model=route.upstream_name, vectors=vectors, usage=usage,
                                          encoding_format=body.get("encoding_format"))
        return ChatResult(body=answer, usage=usage)

    async def _send(self, route, body: dict, operation: str) -> httpx.Response:
        payload = json.dumps(await native_request(route, body), separators=(",", ":")).encode()
        url, headers = signed_request(route, operation, payload)
        return await transport.send(route, url, payload, headers, _http_error, stream=operation != "converse")

    async def chat(self, route, body: dict) -> ChatResult:
        response = await self._send(route, body, "converse")
        with translate.reading(route.provider_name):
            data = json.loads(response.content)
            blocks = data["output"]["message"]["content"]
            if not isinstance(blocks, list):
                raise translate.Malformed("content is not a list of blocks")
            usage = _usage(data.get("usage"))
            texts, calls = [], []
            for block in blocks:
                if "text" in block:
                    texts.append(translate.string(block["text"]))
                elif "toolUse" in block:
                    use = block["toolUse"]
                    calls.append(tool_call(len(calls), use["toolUseId"], use["name"],
                                           translate.arguments(use.get("input"))))
            if usage is None:
                raise _invalid(route.provider_name)
            usage = Usage.or_estimate(usage, lambda: Usage(estimate_prompt_tokens(body), estimate_tokens(
                sum(map(len, texts)) + sum(len(c["function"]["arguments"]) for c in calls))))
            finish = FINISH.get(data.get("stopReason"), "stop")
            body_bytes = completion(model=route.upstream_name, content="".join(texts) if texts else None,
                                    finish_reason=finish, usage=usage, tool_calls=calls or None)
        return ChatResult(body=body_bytes, usage=usage)

    async def chat_stream(self, route, body: dict, include_usage: bool):
        response = await self._send(route, body, "converse-stream")
        return BedrockStream(response, route, body, include_usage)


class BedrockStream(TranslatedStream):
    async def translate(self):
        provider = self.route.provider_name
        yield self.writer.role()
        frames = EventStreamBuffer()
        tools: dict[int, int] = {}  # contentBlockIndex -> OpenAI tool call index
        finished = usage_sent = False
        try:
            async for data in self.response.aiter_bytes():
                frames.add_data(data)
                for frame in frames:
                    headers, payload = frame.headers, frame.payload
                    kind = headers.get(":message-type")
                    if kind == "exception":
                        message = _payload(payload, provider).get("message") or ""
                        raise error(headers.get(":exception-type", ""), 0, str(message), provider)
                    if kind == "error":
                        raise error(headers.get(":error-code", ""), 0, headers.get(":error-message", ""), provider)
                    event, event_type = _payload(payload, provider), headers.get(":event-type")
                    index = event.get("contentBlockIndex")
                    if event_type == "contentBlockStart" and "toolUse" in (event.get("start") or {}):
                        use = event["start"]["toolUse"]
                        tools[index] = len(tools)
                        yield self.writer.tool_call_start(tools[index], use.get("toolUseId"), use.get("name"))
                    elif event_type == "contentBlockDelta":
                        delta = event.get("delta") or {}
                        if delta.get("text"):
                            yield self.writer.text(delta["text"])
                        elif "toolUse" in delta and index in tools:
                            yield self.writer.tool_arguments(tools[index], delta["toolUse"].get("input") or "")
                    elif event_type == "messageStop":
                        finished = True
                        yield self.writer.finish(FINISH.get(event.get("stopReason"), "stop"))
                    elif event_type == "metadata":
                        self.usage = _usage(event.get("usage"))
                        if self.usage is not None and finished:
                            usage_sent = True
                            yield self.writer.usage(self.final_usage())
        except ParserError:
            raise UpstreamError(f"The provider '{provider}' sent a malformed event stream.",
                                code="upstream_invalid_response") from None
        if not finished:
            raise UpstreamError(f"The stream from the provider '{provider}' ended early.",
                                code="upstream_stream_incomplete")
        if not usage_sent:
            yield self.writer.usage(self.final_usage())


def _payload(payload: bytes, provider: str) -> dict:
    try:
        data = json.loads(payload) if payload else {}
    except ValueError:
        raise _invalid(provider) from None
    return data if isinstance(data, dict) else {}
