"""A fake Amazon Bedrock Runtime (Converse / ConverseStream) for tests.

It speaks the real wire format: ``POST /model/{modelId}/converse`` answers
JSON, ``POST /model/{modelId}/converse-stream`` answers
``application/vnd.amazon.eventstream`` binary frames, and errors carry
``x-amzn-errortype`` and ``{"message": …}`` as AWS sends them. Every request's
SigV4 signature is recomputed with botocore from what was received (method,
raw path, the signed headers, body) and the known test credentials; a wrong one
gets AWS's 403 InvalidSignatureException.

Event-stream frames are built by the small encoder below (botocore only
decodes; awscrt is not a dependency): prelude (total and headers length, CRC32),
string headers, JSON payload, message CRC32. The tests decode them with botocore.

Replies follow the conformance contract of tests/conformance/cases.py. Extra
triggers for the adapter's own tests (last user text): ``error:midstream`` (a
modelStreamErrorException frame after two words), ``error:midstream_throttle``,
``error:cut`` (the connection drops), ``error:truncated`` (the stream ends
without messageStop), ``error:model_not_ready``, ``error:timeout``,
``error:validation``, ``error:not_found``. ``echo:<status>`` and ``echo:stream`` quote the
Authorization and x-amz-security-token headers back (tests/fakes/server.py ``echo_of``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import hashlib
import hmac
import json
import re
import struct
import time
import uuid
from dataclasses import dataclass
from urllib.parse import unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.fakes.server import CutStream, FakeUpstream, echo_message, echo_of, json_object

# AWS's documented example credentials.
ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
GUARDRAIL_TEXT = "Sorry, the model cannot answer this question."
TOOL_ARG_PIECES = {"Paris": ['{"ci', 'ty": "Pa', 'ris"}'], "London": ['{"ci', 'ty": "Lon', 'don"}']}

_BEDROCK = "http://internal.amazon.com/coral/com.amazon.bedrock/"
_CORAL = "http://internal.amazon.com/coral/com.amazon.coral.service/"
_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)
# error:<kind> -> (status, x-amzn-errortype, message), as Bedrock answers them.
ERRORS = {
    "auth": (403, "UnrecognizedClientException:" + _CORAL, "The security token included in the request is invalid."),
    "rate_limit": (429, "ThrottlingException:" + _BEDROCK, "Too many requests, please wait before trying again."),
    "overloaded": (503, "ServiceUnavailableException:" + _BEDROCK, "Bedrock is unable to process your request."),
    "context_length": (400, "ValidationException:" + _BEDROCK, "Input is too long for requested model."),
    "server": (
        500,
        "InternalServerException:" + _BEDROCK,
        "The system encountered an unexpected error during processing. Try your request again.",
    ),
    "model_not_ready": (
        429,
        "ModelNotReadyException:" + _BEDROCK,
        "Model is not ready to serve inference requests. Try again later.",
    ),
    "timeout": (408, "ModelTimeoutException:" + _BEDROCK, "Model has timed out in processing the request."),
    "validation": (400, "ValidationException:" + _BEDROCK, "temperature: range: 0..1"),
    "not_found": (404, "ResourceNotFoundException:" + _BEDROCK, "Model not found."),
}
_TOP_LEVEL = {
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "guardrailConfig",
    "additionalModelRequestFields",
    "promptVariables",
    "additionalModelResponseFieldPaths",
    "requestMetadata",
    "performanceConfig",
    "serviceTier",
    "outputConfig",
}
_BLOCKS = {
    "text",
    "image",
    "document",
    "video",
    "audio",
    "toolUse",
    "toolResult",
    "guardContent",
    "cachePoint",
    "reasoningContent",
    "citationsContent",
    "searchResult",
}


@dataclass
class RecordedRequest:
    method: str
    path: str  # the raw path as sent, e.g. /model/anthropic.claude-3-haiku-20240307-v1%3A0/converse
    model_id: str  # decoded
    headers: dict[str, str]  # lower-case names
    json: dict | None
    raw: bytes
    id: str
    signature_valid: bool


# ----------------------------------------------------------------- event stream
def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message; every header is a string (type 7)."""
    encoded = b""
    for name, value in headers.items():
        name_b, value_b = name.encode(), value.encode()
        encoded += struct.pack(">B", len(name_b)) + name_b + b"\x07" + struct.pack(">H", len(value_b)) + value_b
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    message = prelude + struct.pack(">I", binascii.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", binascii.crc32(message))


def event(event_type: str, body: dict) -> bytes:
    # Bedrock pads every event with a "p" field of variable length (hides token sizes).
    body = dict(body, p="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"[: 5 + len(event_type)])
    return frame(
        {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
        json.dumps(body, separators=(",", ":")).encode(),
    )


def exception(exception_type: str, message: str, **extra) -> bytes:
    return frame(
        {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"},
        json.dumps({"message": message, **extra}).encode(),
    )


# ----------------------------------------------------------------- request checks
def _invalid(req: dict) -> str | None:
    """A ValidationException message if the Converse request is malformed, as Bedrock would refuse it."""
    unknown = set(req) - _TOP_LEVEL
    if unknown:
        return f'Unknown parameter in input: "{sorted(unknown)[0]}"'
    messages = req.get("messages")
    if (
        not isinstance(messages, list)
        or not messages
        or not isinstance(messages[0], dict)
        or messages[0].get("role") != "user"
    ):
        return (
            "A conversation must start with a user message. Try again with a conversation that starts with a "
            "user message."
        )
    uses_tools, previous_ids = False, set()
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if role not in ("user", "assistant") or set(message) - {"role", "content"}:
            return f"messages.{i}: a message has a role (user or assistant) and content."
        if i and messages[i - 1].get("role") == role:
            return (
                "A conversation must alternate between user and assistant roles. Make sure the conversation "
                "alternates between user and assistant roles and try again."
            )
        if not isinstance(content, list) or not content:
            return (
                f"The content field in the Message object at messages.{i} is empty. Add a ContentBlock object "
                "to the content field and try again."
            )
        ids = set()
        for j, block in enumerate(content):
            where = f"messages.{i}.content.{j}"
            if not isinstance(block, dict) or len(block) != 1 or next(iter(block)) not in _BLOCKS:
                return f"{where}: a content block has exactly one known member."
            kind, value = next(iter(block.items()))
            if kind == "text" and (not isinstance(value, str) or not value.strip()):
                return (
                    f"The text field in the ContentBlock object at {where} is blank. Add text to the text "
                    "field, and try again."
                )
            if kind == "image":
                if role != "user" or value.get("format") not in ("png", "jpeg", "gif", "webp"):
                    return f"{where}.image: the format must be png, jpeg, gif or webp, in a user message."
                try:
                    base64.b64decode((value.get("source") or {}).get("bytes", ""), validate=True)
                except (binascii.Error, ValueError, TypeError):
                    return f"{where}.image.source.bytes: invalid base64."
            if kind == "toolUse":
                uses_tools = True
                if (
                    role != "assistant"
                    or not value.get("toolUseId")
                    or not value.get("name")
                    or not isinstance(value.get("input"), dict)
                ):
                    return f"{where}.toolUse: toolUseId, name and an object input are required."
                ids.add(value["toolUseId"])
            if kind == "toolResult":
                uses_tools = True
                if role != "user" or not isinstance(value.get("content"), list):
                    return f"{where}.toolResult: toolUseId and content are required, in a user message."
                if value.get("toolUseId") not in previous_ids:
                    return f"The toolResult block at {where} doesn't match a toolUse block of the previous turn."
        previous_ids = ids
    if uses_tools and not req.get("toolConfig"):
        return "The toolConfig field must be defined when using toolUse and toolResult content blocks."
    for block in req.get("system") or []:
        if not isinstance(block, dict) or not str(block.get("text", "")).strip():
            return "The text field in the SystemContentBlock object is blank."
    inference = req.get("inferenceConfig") or {}
    if set(inference) - {"maxTokens", "temperature", "topP", "stopSequences"}:
        return "inferenceConfig has an unknown member."
    if "maxTokens" in inference and (not isinstance(inference["maxTokens"], int) or inference["maxTokens"] < 1):
        return (
            "The maximum tokens you requested exceeds the model limit of 4096. Try again with a maximum "
            "tokens value that is lower than 4096."
        )
    config = req.get("toolConfig")
    if config is not None:
        tools = config.get("tools")
        if not tools or any(
            set(t) != {"toolSpec"}
            or not t["toolSpec"].get("name")
            or not isinstance((t["toolSpec"].get("inputSchema") or {}).get("json"), dict)
            for t in tools
        ):
            return "toolConfig.tools: each tool needs a toolSpec with a name and inputSchema.json."
        choice = config.get("toolChoice")
        if choice is not None and (len(choice) != 1 or next(iter(choice)) not in ("auto", "any", "tool")):
            return "toolConfig.toolChoice must be one of auto, any or tool."
    return None


def _texts(blocks) -> list[str]:
    out = []
    for block in blocks or []:
        if "text" in block:
            out.append(block["text"])
        elif "toolResult" in block:
            out += [c["text"] for c in block["toolResult"].get("content") or [] if "text" in c]
    return out


# ----------------------------------------------------------------- the fake
class FakeBedrock(FakeUpstream):
    thread_name = "fake-bedrock"
    header_separator = ","  # a repeated header's values as SigV4's canonical request joins them
    requests: list[RecordedRequest]

    def __init__(
        self, access_key_id=ACCESS_KEY_ID, secret_access_key=SECRET_ACCESS_KEY, session_token=None, region=REGION
    ):
        super().__init__()
        self.credentials = Credentials(access_key_id, secret_access_key, session_token)
        self.region = region

    @property
    def secret(self) -> str:
        """The credential JSON the hub stores for this fake."""
        data = {"access_key_id": self.credentials.access_key, "secret_access_key": self.credentials.secret_key}
        if self.credentials.token:
            data["session_token"] = self.credentials.token
        return json.dumps(data)

    # ------------------------------------------------------------- SigV4
    def verify(self, method: str, raw_path: str, query: str, headers: dict, body: bytes) -> tuple[str, str] | None:
        """None if the request is validly signed, else AWS's (error type, message)."""
        auth = headers.get("authorization", "")
        if not auth:
            return "MissingAuthenticationTokenException:" + _CORAL, "Missing Authentication Token"
        match = re.fullmatch(
            r"AWS4-HMAC-SHA256 Credential=([^/,]+)/(\d{8})/([^/,]+)/([^/,]+)/aws4_request, "
            r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})",
            auth,
        )
        amz_date = headers.get("x-amz-date", "")
        if not match or not re.fullmatch(r"\d{8}T\d{6}Z", amz_date):
            return (
                "IncompleteSignatureException:" + _CORAL,
                (
                    "Authorization header requires 'Credential', "
                    "'Signature' and 'SignedHeaders' parameters, and an X-Amz-Date header."
                ),
            )
        key, date, region, service, signed, signature = match.groups()
        if key != self.credentials.access_key or headers.get("x-amz-security-token") != self.credentials.token:
            return "UnrecognizedClientException:" + _CORAL, "The security token included in the request is invalid."
        if (date, region, service) != (amz_date[:8], self.region, "bedrock"):
            return (
                "InvalidSignatureException:" + _CORAL,
                (
                    f"Credential should be scoped to a valid region and "
                    f"to the service 'bedrock': {date}/{region}/{service}."
                ),
            )
        sent = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
        if abs((datetime.datetime.now(datetime.UTC) - sent).total_seconds()) > 300:
            return (
                "InvalidSignatureException:" + _CORAL,
                f"Signature expired: {amz_date} is now earlier or later than the current time by more than 5 minutes.",
            )
        names = signed.split(";")
        sha = headers.get("x-amz-content-sha256")
        if (
            "host" not in names
            or "x-amz-date" not in names
            or any(n not in headers for n in names)
            or (self.credentials.token and "x-amz-security-token" not in names)
            or (sha is not None and sha != hashlib.sha256(body).hexdigest())
        ):
            return "InvalidSignatureException:" + _CORAL, _SIGNATURE_MISMATCH
        # Recompute with botocore over exactly what arrived: the raw path (SigV4
        # double-encodes it), the signed headers' values and the body.
        url = f"http://{headers['host']}{raw_path}" + (f"?{query}" if query else "")
        request = AWSRequest(method=method, url=url, data=body, headers={n: headers[n] for n in names})
        request.context["timestamp"] = amz_date
        signer = SigV4Auth(self.credentials, "bedrock", self.region)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if signer.signed_headers(signer.headers_to_sign(request)) != signed or not hmac.compare_digest(
            expected, signature
        ):
            return "InvalidSignatureException:" + _CORAL, (
                f"{_SIGNATURE_MISMATCH}\n\nThe Canonical String for this request should have been\n'{canonical}'\n"
            )
        return None

    # ------------------------------------------------------------- ASGI
    async def handle(self, scope, receive, send, body, headers):
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        match = re.fullmatch(r"/model/([^/]+)/(converse|converse-stream|invoke)", raw_path)
        refused = self.verify(scope["method"], raw_path, query, headers, body)
        parsed = json_object(body)
        rid = str(uuid.uuid4())
        self._record(
            RecordedRequest(
                scope["method"],
                raw_path,
                unquote(match.group(1)) if match else "",
                headers,
                parsed,
                body,
                rid,
                refused is None,
            )
        )
        if refused:
            return await self._error(send, rid, 403, *refused)
        if scope["method"] != "POST" or not match:
            return await self._error(send, rid, 404, "UnknownOperationException", None)
        if not isinstance(parsed, dict):
            return await self._error(send, rid, 400, "SerializationException", "Expected a JSON object.")
        if match.group(2) == "invoke":
            return await self._titan_embed(send, rid, parsed)
        if problem := _invalid(parsed):
            return await self._error(send, rid, 400, "ValidationException:" + _BEDROCK, problem)
        await self._converse(
            send,
            receive,
            rid,
            parsed,
            stream=match.group(2) == "converse-stream",
            echoed=" ".join(filter(None, (headers.get("authorization"), headers.get("x-amz-security-token")))),
        )

    async def _titan_embed(self, send, rid, req):
        """InvokeModel on Titan Text Embeddings V2: {"inputText", "dimensions"?, "normalize"?}."""
        from tests.fakes.openai_upstream import embedding_of

        text = req.get("inputText")
        if not isinstance(text, str) or not text or set(req) - {"inputText", "dimensions", "normalize"}:
            return await self._error(send, rid, 400, "ValidationException:" + _BEDROCK, "Malformed input request")
        body = {"embedding": embedding_of(text, req.get("dimensions") or 4), "inputTextTokenCount": len(text.split())}
        await self._send(send, rid, 200, json.dumps(body).encode(), "application/json")

    async def _error(self, send, rid, status, error_type, message):
        await self._send(
            send,
            rid,
            status,
            json.dumps({"message": message}).encode(),
            "application/json",
            [(b"x-amzn-errortype", error_type.encode())],
        )

    @staticmethod
    async def _send(send, rid, status, body, content_type, extra=()):
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()).encode()),
                    (b"content-type", content_type.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-amzn-requestid", rid.encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    # ------------------------------------------------------------- answers
    def _event(self, event_type: str, body: dict) -> bytes:
        return event(event_type, self.malformed(body))

    async def _converse(self, send, receive, rid, req, stream, echoed=""):
        messages, system = req["messages"], req.get("system") or []
        last = messages[-1]["content"]
        last_text = " ".join(b["text"] for b in last if "text" in b)
        inference = req.get("inferenceConfig") or {}
        # Usage per the contract, a few of the input tokens as cache reads and writes.
        texts = [t for b in system for t in _texts([b])] + [t for m in messages for t in _texts(m["content"])]
        prompt = sum(len(t.split()) for t in texts) + 3 * (len(messages) + (1 if system else 0))
        read, write = (2, 1) if prompt >= 4 else (0, 0)
        kind = last_text[len("error:") :] if last_text.startswith("error:") else None
        echo = echo_of(last_text)
        if echo is not None and (echo != "stream" or not stream):
            status = int(echo) if echo.isdigit() else 500
            types = {
                400: "ValidationException",
                404: "ResourceNotFoundException",
                429: "ThrottlingException",
                503: "ServiceUnavailableException",
            }
            return await self._error(
                send, rid, status, types.get(status, "InternalServerException") + ":" + _BEDROCK, echo_message(echoed)
            )
        if kind in ERRORS:
            status, error_type, message = ERRORS[kind]
            return await self._error(send, rid, status, error_type, message)

        calls, reason = [], "end_turn"
        results = [b["toolResult"] for b in last if "toolResult" in b]
        wants_json = bool((req.get("outputConfig") or {}).get("textFormat")) or any(
            "JSON" in b.get("text", "") for b in system
        )
        if results:
            text = "Tool said: " + " ".join(_texts([{"toolResult": results[-1]}]))
        elif kind == "content_policy":
            text, reason = GUARDRAIL_TEXT, "guardrail_intervened"
        elif req.get("toolConfig") and req["toolConfig"].get("tools") and last_text:
            name = req["toolConfig"]["tools"][0]["toolSpec"]["name"]
            cities = ["Paris", "London"] if "parallel" in last_text else ["Paris"]
            calls = [(f"tooluse_{uuid.uuid4().hex[:22]}", name, city) for city in cities]
            text, reason = "", "tool_use"
        elif wants_json:
            text = '{"answer": 42}'
        else:
            text = "Hello! You said: " + last_text + " [image]" * sum(1 for b in last if "image" in b)
        words = text.split()
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        for stop in inference.get("stopSequences") or []:
            at = "".join(pieces).find(stop)
            if at >= 0 and reason == "end_turn":
                kept, size = [], 0
                for piece in pieces:
                    if size + len(piece) > at:
                        if at > size:
                            kept.append(piece[: at - size])
                        break
                    kept.append(piece)
                    size += len(piece)
                pieces, reason = kept, "stop_sequence"
        limit = inference.get("maxTokens")
        if limit is not None and len("".join(pieces).split()) > limit:
            pieces, reason = pieces[:limit], "max_tokens"
        output = 5 * len(calls) if calls else len("".join(pieces).split())
        usage = {
            "inputTokens": prompt - read - write,
            "outputTokens": output,
            "totalTokens": prompt + output,
            "cacheReadInputTokens": read,
            "cacheWriteInputTokens": write,
        }
        if not stream:
            content = [{"text": "".join(pieces)}] if pieces else []
            content += [{"toolUse": {"toolUseId": i, "name": n, "input": {"city": c}}} for i, n, c in calls]
            answer = {
                "metrics": {"latencyMs": 412},
                "output": {"message": {"content": content, "role": "assistant"}},
                "stopReason": reason,
                "usage": usage,
            }
            return await self._send(send, rid, 200, json.dumps(self.malformed(answer)).encode(), "application/json")

        frames = [self._event("messageStart", {"role": "assistant"})]
        if pieces:
            frames += [self._event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": p}}) for p in pieces]
            frames.append(self._event("contentBlockStop", {"contentBlockIndex": 0}))
        for index, (call_id, name, city) in enumerate(calls):
            frames.append(
                self._event(
                    "contentBlockStart",
                    {"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": call_id, "name": name}}},
                )
            )
            frames += [
                self._event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"toolUse": {"input": p}}})
                for p in TOOL_ARG_PIECES[city]
            ]
            frames.append(self._event("contentBlockStop", {"contentBlockIndex": index}))
        frames.append(self._event("messageStop", {"stopReason": reason}))
        frames.append(self._event("metadata", {"usage": usage, "metrics": {"latencyMs": 412}}))
        cut = False
        if kind == "midstream":
            frames = [
                *frames[:3],
                exception(
                    "modelStreamErrorException",
                    "The model stream failed.",
                    originalStatusCode=500,
                    originalMessage="Internal error",
                ),
            ]
        elif kind == "midstream_throttle":
            frames = [
                *frames[:3],
                exception("throttlingException", "Too many tokens, please wait before trying again."),
            ]
        elif echo == "stream":
            frames = [*frames[:3], exception("modelStreamErrorException", echo_message(echoed))]
        elif kind == "truncated":
            frames = frames[:3]
        elif kind == "cut":
            frames, cut = frames[:3], True

        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()).encode()),
                    (b"content-type", b"application/vnd.amazon.eventstream"),
                    (b"x-amzn-requestid", rid.encode()),
                ],
            }
        )
        for data in frames:
            if self._stopping.is_set():
                raise CutStream("fake server shutting down")
            await send({"type": "http.response.body", "body": data, "more_body": True})
            await asyncio.sleep(0.005 if cut else 0)
        if cut:
            raise CutStream("error:cut: dropping the connection mid-stream")
        await send({"type": "http.response.body", "body": b"", "more_body": False})
