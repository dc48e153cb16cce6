"""Steps 3 to 6 for a chat completion: route (hub/routing.py), answer or stream back, meter.

Billing rule: a request is charged for the usage its provider reported, or,
when none was reported (a cut or cancelled stream), for an estimate of what
was produced. A failure before the first byte is free.
"""

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import cast

from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse

from billing.models import UsageRecord
from billing.usage import UsageEvent
from providers.adapters import ChatResult, UpstreamError, Usage
from providers.adapters.base import sse
from providers.redaction import scrub

from . import accesslog, capabilities, catalogue, credit, media, metrics, policy, response_cache, routing
from .auth import KeyInfo
from .errors import HubError, InternalError, error_response
from .metering import meter

logger = logging.getLogger(__name__)
_background: set[asyncio.Task] = set()


@dataclass
class Call:
    """One request through the gateway, from key to usage record."""

    key: KeyInfo
    endpoint: str
    model_name: str
    client_ip: str = ""
    request_id: str = ""
    started: float = 0.0
    stream: bool = False
    unit: str = "tokens"  # what the usage is metered in: tokens, characters, images or seconds
    origin: str = ""  # scheme://host the client called, for links to the hub's own files
    lease: credit.Lease | None = None  # the credit lease its worst case is reserved under (hub/credit.py)
    reserved: Decimal = Decimal(0)
    model: catalogue.Model | None = None  # the model asked for
    route: catalogue.Route | None = None  # the route that served (maybe a fallback's)
    served: routing.Served | None = None  # and its attempts' timings
    failed: catalogue.Route | None = None  # none served: the route whose failure the client got
    headers: Mapping[str, str] | None = None  # the request's (for the response cache's directives)
    cache: "response_cache.Lookup | None" = None  # the response cache's part in it, if it has one
    # What the answer depends on when it is not the body relayed (a Messages request: the client's own body and
    # anthropic-* headers, which a native route is sent as they are); the response cache keys on it.
    cache_material: dict | None = None

    def __post_init__(self):
        self.request_id = self.request_id or f"req_{uuid.uuid4().hex}"
        self.started = self.started or time.monotonic()

    def record(
        self,
        status: str,
        usage: Usage | None = None,
        *,
        http_status: int = 200,
        error: str = "",
        first_token_at: float | None = None,
    ) -> None:
        usage = usage or Usage()
        route = self.route
        if usage.invalid:
            # Billed by the hub's estimate (the adapter made it), and the record says why.
            logger.warning("%s: %s; billed by estimate", self.request_id, usage.invalid)
            error = "; ".join(filter(None, (error, f"{usage.invalid}; billed by estimate")))
        if route is not None:
            served = {
                "model_id": route.model_id,
                "served_model": route.public_id,
                "provider_id": route.provider_id,
                "credential_id": route.credential_id,
            }
        elif self.model is not None:
            served = {"model_id": self.model.id, "served_model": self.model.public_id}
        else:
            served = {}
        tried = route or self.failed
        if route is None and tried is not None:
            # Free (no rate), filed under the model asked for, but counted against the provider that failed.
            served |= {"provider_id": tried.provider_id, "credential_id": tried.credential_id}
        event = UsageEvent.of_call(
            usage,
            rate=route.rate if route is not None else None,
            plan=self.key.plan,
            **served,
            request_id=self.request_id,
            organization_id=self.key.organization_id,
            api_key_id=self.key.key_id,
            billing_mode=self.key.billing_mode,
            model_name=self.model_name,
            endpoint=self.endpoint,
            stream=self.stream,
            unit=self.unit,
            status=status,
            http_status=http_status,
            error=scrub(error, tried.secret if tried is not None else ""),
            latency_ms=int((time.monotonic() - self.started) * 1000),
            first_token_ms=int((first_token_at - self.started) * 1000) if first_token_at else None,
        )
        if self.cache is not None:
            self.cache.recorded(event)  # a hit is priced here; a miss keeps its event to store with the answer
        if self.lease is not None:
            event.lease = self.lease.hold_id
            credit.settle(self, event.price if event.charged else Decimal(0))
        meter.add(event)
        metrics.observe(self, event)
        accesslog.request_finished(event, key_prefix=self.key.prefix, provider=tried.provider_name if tried else "")
        if not self.key.policy.empty and (event.prompt_tokens or event.price):
            task = asyncio.get_running_loop().create_task(
                policy.account(self.key, event.prompt_tokens + event.completion_tokens, event.price)
            )
            _background.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(_background.discard)

    def fail(self, error: HubError | UpstreamError) -> HttpResponse:
        upstream = isinstance(error, UpstreamError)
        status = UsageRecord.Status.UPSTREAM_ERROR if upstream else UsageRecord.Status.CLIENT_ERROR
        if isinstance(error, UpstreamError) and self.route is None:
            self.failed = error.route
        self.record(getattr(error, "outcome", None) or status, http_status=error.status, error=error.message)
        if isinstance(error, UpstreamError):
            headers = {"retry-after": error.retry_after} if error.retry_after else {}
            # Providers often leave a 400's code null; the hub's 400s always name one.
            code = error.code or ("invalid_request" if error.status == 400 else None)
            error = HubError(
                error.message, status=error.status, type=error.type, code=code, param=error.param, headers=headers
            )
        response = error_response(error, self.request_id)
        if error.log_level is not None:
            logger.log(
                error.log_level,
                "%s %s answered %s %s: %s",
                self.endpoint,
                self.request_id,
                error.status,
                error.code,
                error.message,
            )
            # Once, here, saying why: Django's request log would hide the 429 and log the 503 without a reason.
            response._has_been_logged = True  # type: ignore[attr-defined]  # Django's own flag (log_response), unstubbed
        return response


# A `"model": "…"` member of a JSON answer, key and string value (escapes and all). A raw quote
# right after `model` ends a string, and a string followed by `:` is a key, so this never matches
# inside a string; replacing one string literal by another keeps the JSON valid.
_MODEL_MEMBER = re.compile(rb'("model"\s*:\s*)("(?:[^"\\]|\\.)*")', re.DOTALL)


class PublicModel:
    """Answers name the hub's public id of the model that served (a fallback's when one did), as
    OpenRouter does, not the provider's name for it, which SDKs and cost trackers would report as a
    model the hub does not list. Bytes are rewritten in place, without parsing the JSON again."""

    def __init__(self, public_id: str):
        self._named = named = json.dumps(public_id).encode()
        self._replace = lambda match: match.group(1) + named

    def __call__(self, payload: bytes) -> bytes:
        members = payload.count(b'"model"')
        if not members:
            return payload
        if payload.count(b'"model":"') != members:
            return _MODEL_MEMBER.sub(self._replace, payload)
        # Every member written compactly, as providers do: found and cut with bytes.find (several
        # times cheaper than the regex, this runs for every chunk of every stream).
        parts: list[bytes] = []
        done = 0
        at = payload.find(b'"model":"')
        while at >= 0:
            start = at + 8  # the value's opening quote
            end = payload.find(b'"', start + 1)
            if end < 0 or payload.find(b"\\", start, end) >= 0:
                return _MODEL_MEMBER.sub(self._replace, payload)  # escapes in the value: the careful way
            parts += (payload[done:start], self._named)
            done = end + 1
            at = payload.find(b'"model":"', done)
        parts.append(payload[done:])
        return b"".join(parts)

    @staticmethod
    def provider_name(payload: bytes) -> str | None:
        """The model a whole answer was named by its provider (its first `model` member)."""
        match = _MODEL_MEMBER.search(payload) if b'"model"' in payload else None
        if match is None:
            return None
        try:
            name = json.loads(match.group(2))
        except ValueError:
            return None
        # It goes into a header: what a provider sends is hostile until checked.
        ok = isinstance(name, str) and 0 < len(name) <= 200 and name.isascii() and name.isprintable()
        return name if ok else None


def _is_json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in ("application/json", "text/event-stream")


class InFlight:
    """Requests this process is serving now (answers not yet finished)."""

    count = 0


async def chat_completion(call: Call, body: dict) -> HttpResponseBase:
    return await handle(call, body, kind="chat")


def _served_by(name: str, what: str):
    """The operation calling the adapter's `name`, or a 400 if this route's provider does not offer it."""

    async def operation(adapter, route, body: dict):
        method = getattr(adapter, name, None)
        if method is None:
            raise UpstreamError(
                f"The provider '{route.provider_name}' does not {what}.",
                status=400,
                type="invalid_request_error",
                code="unsupported_model",
            )
        return await method(route, body)

    return operation


_embed = _served_by("embed", "serve embeddings")
_speak = _served_by("speech", "serve speech")
_generate = _served_by("images", "generate images")
_transcribe = _served_by("transcribe", "transcribe audio")


async def embeddings(call: Call, body: dict) -> HttpResponseBase:
    """POST /v1/embeddings: the same key, policy, credit, routing and metering as chat, billed per input token."""
    return await handle(call, body, kind="embedding", operation=lambda adapter, route: _embed(adapter, route, body))


async def speech(call: Call, body: dict) -> HttpResponseBase:
    """POST /v1/audio/speech: audio streamed back as it arrives, billed per input character."""
    call.stream, call.unit = True, "characters"
    return await handle(call, body, kind="audio", operation=lambda adapter, route: _speak(adapter, route, body))


async def images(call: Call, body: dict) -> HttpResponseBase:
    """POST /v1/images/generations and /edits: billed per image of its size and quality (and per token where
    the provider bills tokens). The answer is OpenAI's, with `url`s to the hub's own copies if asked for."""
    call.unit = "images"

    async def operation(adapter, route):
        result = await _generate(adapter, route, body)
        data = result.images
        if body["response_format"] == "url":
            data = await media.store_images(data, call.origin, result.extra.get("output_format") or "png")
        answer = {"created": int(time.time()), "data": data, **result.extra}
        return ChatResult(json.dumps(answer, separators=(",", ":")).encode(), result.usage)

    return await handle(call, body, kind="image", operation=operation)


async def transcription(call: Call, body: dict) -> HttpResponseBase:
    """POST /v1/audio/transcriptions and /translations: the provider's answer as it came, billed per second."""
    call.unit = "seconds"
    return await handle(
        call, body, kind="transcription", operation=lambda adapter, route: _transcribe(adapter, route, body)
    )


async def handle(call: Call, body: dict, *, kind: str, operation=None) -> HttpResponseBase:
    """Every endpoint's way through the gateway, counted in flight until its answer ends."""
    InFlight.count += 1
    metrics.IN_FLIGHT.inc()
    streaming = False
    try:
        response = await _serve(call, body, kind, operation)
        streaming = response.streaming
        return response
    except Exception:
        # A bug or an outage of our own: still an OpenAI-shaped answer, still a record.
        logger.exception("%s %s failed", call.endpoint, call.request_id)
        call.record(UsageRecord.Status.SERVER_ERROR, http_status=500, error="internal error")
        return error_response(
            InternalError("The hub failed to handle this request; it has been logged."), call.request_id
        )
    finally:
        if not streaming:
            InFlight.count -= 1  # a stream's RelayBody ends its own count
            metrics.IN_FLIGHT.dec()


async def _serve(call: Call, body: dict, kind: str, operation) -> HttpResponseBase:
    try:
        call.model = model = await catalogue.resolve(call.model_name, kind=kind)
        limit_headers = await policy.admit(call.key, model, call.model_name, call.client_ip)
        capabilities.check(model, body, call.model_name)
        await credit.reserve(call, model, body)
        if (cached := await response_cache.lookup(call, body, kind, limit_headers)) is not None:
            return cached  # the same request's answer, kept: no upstream call
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        served = await routing.serve(model, body, stream=call.stream, include_usage=include_usage, operation=operation)
    except (HubError, UpstreamError) as error:
        return call.fail(error)
    except asyncio.CancelledError:
        # The client left before the answer started: recorded, free.
        call.record(UsageRecord.Status.CANCELLED, http_status=499, error="client disconnected")
        raise
    call.route, call.served = served.route, served
    route = served.route
    provider_model = route.upstream_name
    if not call.stream:
        await served.done(True, model)
        result = cast(ChatResult, served.result)  # not streamed: a whole answer
        call.record(UsageRecord.Status.OK, result.usage)
        answer, content_type = result.body, result.content_type
        if _is_json(content_type):
            provider_model = PublicModel.provider_name(answer) or provider_model
            answer = PublicModel(route.public_id)(answer)
        response: HttpResponseBase = HttpResponse(answer, content_type=content_type)
    else:
        content_type = getattr(served.result, "content_type", "text/event-stream")
        rename = PublicModel(route.public_id) if _is_json(content_type) else None
        response = StreamingHttpResponse(RelayBody(call, served, model, rename), content_type=content_type)
        response["cache-control"] = "no-cache"
        response["x-accel-buffering"] = "no"
    response["x-request-id"] = call.request_id
    response["x-hub-route"] = f"{route.public_id}; provider={route.provider_name}"
    # The provider's own name for the model: as it named it in a whole answer, as the hub asked it in a stream.
    response["x-hub-provider-model"] = provider_model
    for name, value in limit_headers.items():
        response[name] = value
    return await response_cache.kept(call, response)


class RelayBody:
    """A stream's body: relays the provider's chunks and, however it ends, meters it once.

    If the client leaves between the view's return and the first chunk, Django
    never starts the iterator; it still calls close() (from a thread), which
    then closes the upstream request and records the call.
    """

    def __init__(self, call: Call, served, model, rename=None):
        self.call, self.served, self.model, self.rename = call, served, model, rename
        self.stream = served.result
        self.started = False
        self.loop = asyncio.get_running_loop()

    def __aiter__(self):
        return self._relay()

    def close(self) -> None:
        if not self.started:
            self.started = True
            self.loop.call_soon_threadsafe(lambda: self.loop.create_task(self._finish(UsageRecord.Status.CANCELLED)))

    async def _relay(self):
        self.started = True
        status, failure = UsageRecord.Status.OK, ""
        rename = self.rename
        try:
            # Adapters yield whole events, so a `model` member is never split between two chunks.
            async for chunk in self.stream:
                yield chunk if rename is None else rename(chunk)
            if self.stream.error is not None:
                status = UsageRecord.Status.UPSTREAM_ERROR
        except Exception:
            # A bug of ours, or a provider's answer an adapter did not expect: the client still gets an
            # error event, not a reset connection, and what was produced is billed.
            logger.exception("relaying stream %s failed", self.call.request_id)
            status, failure = UsageRecord.Status.SERVER_ERROR, "internal error while relaying the stream"
            in_its_format = getattr(self.stream, "internal_error_event", None)  # a stream in another API's shape
            if in_its_format is not None and not self.stream.error:
                yield in_its_format("The hub failed while relaying this stream; it has been logged.")
            elif not self.stream.error and "event-stream" in getattr(self.stream, "content_type", "text/event-stream"):
                yield sse(
                    {
                        "error": {
                            "message": "The hub failed while relaying this stream; it has been logged.",
                            "type": InternalError.type,
                            "param": None,
                            "code": InternalError.code,
                        }
                    }
                )
        except BaseException:
            # The client went away (the ASGI handler cancels us): the upstream
            # request is closed and what was produced is billed.
            status = UsageRecord.Status.CANCELLED
            raise
        finally:
            await self._finish(status, failure)

    async def _finish(self, status: str, failure: str = "") -> None:
        stream = self.stream
        try:
            await stream.aclose()
            await self.served.done(status == UsageRecord.Status.OK, self.model)
        finally:
            error = stream.error.message if stream.error is not None else failure
            self.call.record(
                status, stream.final_usage(), http_status=200, error=error, first_token_at=stream.first_token_at
            )
            InFlight.count -= 1
            metrics.IN_FLIGHT.dec()
