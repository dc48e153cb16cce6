"""The exact-match response cache: the same request from the same organisation, answered again without a call
upstream. Off unless the organisation or the key sets a TTL (accounts `response_cache_seconds`).

The relay calls `lookup` once the request has passed policy and credit (a hit is still a request of its key:
its limits, its budget, its record) and `kept` around the answer it made. Between the two, `Call.record` hands
this module the request's usage event (`recorded`): a hit is priced there, a miss's event is kept to be stored
with its answer. An endpoint served by `relay.handle` gets all of it by naming its kind in CACHED_KINDS.

The key is the SHA-256 of the organisation, the endpoint, the model as the catalogue resolved it, stream or
not, the namespace header and the body (canonical JSON) less the fields that do not change the answer. Streams
and whole answers are kept apart: a stream is replayed as the very bytes of the SSE events it relayed.

A burst of the same request makes one upstream call: the first claims it (a Redis key with a TTL, or an
asyncio future in this process), the others wait for its entry at most HUB_RESPONSE_CACHE_WAIT_SECONDS and
go upstream themselves if it does not land. Entries live in Redis when REDIS_URL is set (every process sees
them), in this process otherwise; a Redis outage turns the cache off, it never fails a request.
"""

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal

import redis
from django.conf import settings
from django.http import HttpResponse, HttpResponseBase

from accounts import caches
from billing.models import UsageRecord
from billing.money import quantize
from billing.usage import UsageEvent
from providers.adapters import Usage

from . import metrics, shared_state
from .errors import BadRequest

logger = logging.getLogger(__name__)

CACHED_KINDS = frozenset({"chat", "embedding"})
# Body fields that do not change the answer: who the end user is (OpenAI's abuse-monitoring id) and what to
# file the completion under. `model`, `stream` and `stream_options` are keyed apart (see _key).
IGNORED_FIELDS = frozenset({"user", "metadata", "store"})
NAMESPACE_HEADER = "x-hub-cache-namespace"
MAX_NAMESPACE = 128
_PREFIX = "hub:rc:"
_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens", "image_input_tokens")


@dataclass
class Lookup:
    """The response cache's part in one request (on `Call.cache`)."""

    key: str
    ttl: int
    model: str  # the public model, for the metrics
    read: bool  # False under Cache-Control: no-cache (stored, not read)
    claimed: bool = False  # this request makes the upstream call the others wait for
    hit: "Entry | None" = None
    event: UsageEvent | None = None  # the miss's usage event, once recorded OK
    released: bool = field(default=False, repr=False)

    def recorded(self, event) -> None:
        """Call.record's hook, before the event is settled: a hit costs no provider anything and is charged
        HUB_RESPONSE_CACHE_PRICE_SHARE of what the answer was charged; a miss keeps its event for `kept`."""
        if self.hit is not None:
            event.cache_hit = True
            event.cost = Decimal(0)
            share = settings.HUB_RESPONSE_CACHE_PRICE_SHARE
            event.price = quantize(self.hit.price * share) if share else Decimal(0)
            # The model that served it then (a fallback's, maybe); filed under the catalogue entry resolved now,
            # which exists, where the one of then may not any more.
            event.served_model = self.hit.served_model
            event.provider_id = event.credential_id = None
        elif event.status == UsageRecord.Status.OK and event.http_status == 200:
            self.event = event
        else:
            self.release()

    def release(self) -> None:
        if self.claimed and not self.released:
            self.released = True
            _spawn(store().release(self.key))


@dataclass
class Entry:
    chunks: list  # the answer's bytes as the client got them: one chunk, or a stream's events
    content_type: str
    headers: dict  # x-hub-route, x-hub-provider-model
    usage: dict
    price: Decimal  # what the original answer was charged
    served_model: str
    stored: float

    def encode(self) -> bytes:
        meta = {
            "sizes": [len(c) for c in self.chunks],
            "content_type": self.content_type,
            "headers": self.headers,
            "usage": self.usage,
            "price": str(self.price),
            "served_model": self.served_model,
            "stored": self.stored,
        }
        head = json.dumps(meta, separators=(",", ":")).encode()
        return len(head).to_bytes(4, "big") + head + b"".join(self.chunks)

    @classmethod
    def decode(cls, raw: bytes) -> "Entry":
        size = int.from_bytes(raw[:4], "big")
        meta = json.loads(raw[4 : 4 + size])
        chunks, at = [], 4 + size
        for n in meta["sizes"]:
            chunks.append(raw[at : at + n])
            at += n
        return cls(
            chunks,
            meta["content_type"],
            meta["headers"],
            meta["usage"],
            Decimal(meta["price"]),
            meta["served_model"],
            meta["stored"],
        )


def directives(headers) -> tuple[bool, bool, str]:
    """(read, store, namespace) from the request's headers; a namespace that is not short printable ASCII is
    refused (it is part of a key, and a log line)."""
    cache_control = {d.strip().lower() for d in (headers.get("cache-control") or "").split(",")}
    namespace = headers.get(NAMESPACE_HEADER)
    if namespace is not None and (
        len(namespace) > MAX_NAMESPACE or not (namespace.isascii() and namespace.isprintable())
    ):
        raise BadRequest(
            f"The {NAMESPACE_HEADER} header must be at most {MAX_NAMESPACE} printable ASCII characters.",
            code="invalid_cache_namespace",
        )
    return ("no-cache" not in cache_control, "no-store" not in cache_control, namespace or "")


def _sampled(kind: str, body: dict) -> bool:
    """Whether the answer is drawn at random: a chat at a temperature above 0 (absent: the default, 1)."""
    if kind == "embedding":
        return False
    temperature = body.get("temperature", 1)
    return not isinstance(temperature, (int, float)) or temperature > 0


def _key(call, body: dict, model, namespace: str) -> str:
    body = call.cache_material or body
    fields = {k: v for k, v in body.items() if k not in IGNORED_FIELDS and k not in ("model", "stream")}
    if not call.stream:
        fields.pop("stream_options", None)  # only a stream's events depend on it
    material = {
        "organization": call.key.organization_id,
        "endpoint": call.endpoint,
        "model": model.public_id,
        "stream": call.stream,
        "namespace": namespace,
        "body": fields,
    }
    # ensure_ascii: a lone surrogate the view let through is escaped, never an encoding error.
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    # The organisation in clear too: its entries can be found (and dropped) by prefix.
    return f"{_PREFIX}{call.key.organization_id}:{digest}"


async def lookup(call, body: dict, kind: str, limit_headers: dict) -> HttpResponseBase | None:
    """The cached answer to this request, or None (then the relay serves it, and `kept` stores the answer)."""
    ttl = call.key.cache_seconds
    if not ttl or kind not in CACHED_KINDS or call.model is None:
        return None
    read, keep, namespace = directives(call.headers or {})
    if not keep or (_sampled(kind, body) and not call.key.cache_sampled):
        return None
    part = call.cache = Lookup(_key(call, body, call.model, namespace), ttl, call.model.public_id, read)
    if not read:
        return None
    s = store()
    entry = await s.get(part.key)
    if entry is None:
        part.claimed = await s.claim(part.key)
        if not part.claimed:
            entry = await s.wait(part.key, settings.HUB_RESPONSE_CACHE_WAIT_SECONDS)
        elif (entry := await s.get(part.key)) is not None:
            part.release()  # stored (and its flight freed) between the read and the claim
    if entry is None:
        return None
    try:
        part.hit = Entry.decode(entry)
    except (ValueError, KeyError, TypeError, ArithmeticError):  # ArithmeticError: decimal.InvalidOperation
        logger.warning("response cache entry %s unreadable: served upstream", part.key)
        return None
    return _replay(call, part.hit, limit_headers)


def _replay(call, entry: Entry, limit_headers: dict) -> HttpResponseBase:
    usage = entry.usage
    call.record(
        UsageRecord.Status.OK,
        Usage(
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            estimated=bool(usage.get("estimated")),
            cache_read_tokens=int(usage.get("cache_read_tokens", 0)),
            cache_write_tokens=int(usage.get("cache_write_tokens", 0)),
            image_input_tokens=int(usage.get("image_input_tokens", 0)),
        ),
    )
    metrics.RESPONSE_CACHE.labels(call.cache.model, "hit").inc()
    # A stream's events are sent as one body: the same bytes, which an SSE client reads the same way.
    response = HttpResponse(b"".join(entry.chunks), content_type=entry.content_type)
    for name, value in entry.headers.items():
        response[name] = value
    response["x-request-id"] = call.request_id
    response["x-hub-cache"] = "hit"
    response["age"] = str(max(int(time.time() - entry.stored), 0))
    for name, value in limit_headers.items():
        response[name] = value
    return response


async def kept(call, response: HttpResponseBase) -> HttpResponseBase:
    """The relay's answer to a request the cache missed, stored once it is whole (a stream: at its end)."""
    lookup = call.cache
    if lookup is None or lookup.hit is not None:
        return response
    metrics.RESPONSE_CACHE.labels(lookup.model, "miss").inc()
    response["x-hub-cache"] = "miss"
    headers = {name: response[name] for name in ("x-hub-route", "x-hub-provider-model") if response.has_header(name)}
    content_type = response.get("content-type", "application/json")
    if not response.streaming:
        await _store(lookup, [response.content], content_type, headers)  # type: ignore[attr-defined]
    else:
        response.streaming_content = _collected(lookup, response.streaming_content, content_type, headers)  # type: ignore[attr-defined]
    return response


async def _collected(lookup: Lookup, chunks, content_type: str, headers: dict):
    kept: list[bytes] | None = []
    size = 0
    try:
        async for chunk in chunks:
            if kept is not None:
                size += len(chunk)
                if size <= settings.HUB_RESPONSE_CACHE_MAX_BYTES:
                    kept.append(chunk)
                else:
                    kept = None  # too large to keep: relayed, not stored
            yield chunk
        # The relay recorded the stream as it ended (Call.record): an event means it ended well.
        if kept is not None:
            await _store(lookup, kept, content_type, headers)
    finally:
        lookup.release()


async def _store(lookup: Lookup, chunks: list, content_type: str, headers: dict) -> None:
    """Written before the answer ends, so the next identical request (and the ones waiting) finds it."""
    event = lookup.event
    try:
        if event is None or sum(map(len, chunks)) > settings.HUB_RESPONSE_CACHE_MAX_BYTES:
            return
        usage = {name: getattr(event, name) for name in _USAGE_FIELDS} | {"estimated": event.usage_estimated}
        entry = Entry(chunks, content_type, headers, usage, event.price, event.served_model, time.time())
        await store().set(lookup.key, entry.encode(), lookup.ttl)
    finally:
        if lookup.claimed and not lookup.released:
            lookup.released = True
            await store().release(lookup.key)


_background: set[asyncio.Task] = set()


def _spawn(coroutine) -> None:
    task = asyncio.get_running_loop().create_task(coroutine)
    _background.add(task)  # held until done: the loop keeps only weak references
    task.add_done_callback(_background.discard)


class LocalStore:
    """This process's entries (at most HUB_RESPONSE_CACHE_LOCAL_BYTES of them, the oldest dropped first) and
    flights."""

    def __init__(self):
        self.entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.size = 0
        self.flights: dict[str, asyncio.Future] = {}

    async def get(self, key: str) -> bytes | None:
        found = self.entries.get(key)
        if found is None:
            return None
        if found[0] <= time.monotonic():
            self._drop(key)
            return None
        return found[1]

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        self._drop(key)
        budget = settings.HUB_RESPONSE_CACHE_LOCAL_BYTES
        if len(value) > budget:
            return
        while self.entries and self.size + len(value) > budget:
            self._drop(next(iter(self.entries)))
        self.entries[key] = (time.monotonic() + ttl, value)
        self.size += len(value)

    def _drop(self, key: str) -> None:
        found = self.entries.pop(key, None)
        if found is not None:
            self.size -= len(found[1])

    async def claim(self, key: str) -> bool:
        if key in self.flights:
            return False
        self.flights[key] = asyncio.get_running_loop().create_future()
        return True

    async def wait(self, key: str, seconds: float) -> bytes | None:
        flight = self.flights.get(key)
        if flight is not None:
            try:
                await asyncio.wait_for(asyncio.shield(flight), seconds)
            except TimeoutError:
                return None
        return await self.get(key)

    async def release(self, key: str) -> None:
        flight = self.flights.pop(key, None)
        if flight is not None and not flight.done():
            flight.set_result(None)


class RedisStore:
    """Entries every process shares; a flight is a key with a TTL, so a process that dies frees it."""

    def __init__(self, url: str):
        self.url = url

    def client(self):
        return shared_state.redis_client(self.url)

    async def get(self, key: str) -> bytes | None:
        return await self.client().get(key)

    async def set(self, key: str, value: bytes, ttl: int) -> None:
        await self.client().set(key, value, ex=ttl)

    async def claim(self, key: str) -> bool:
        ttl = max(int(settings.HUB_RESPONSE_CACHE_WAIT_SECONDS * 1000), 1)
        return bool(await self.client().set(f"{key}:flight", uuid.uuid4().hex, px=ttl, nx=True))

    async def wait(self, key: str, seconds: float) -> bytes | None:
        deadline, pause = time.monotonic() + seconds, 0.01
        while True:
            async with self.client().pipeline(transaction=False) as pipe:
                pipe.get(key)
                pipe.exists(f"{key}:flight")
                value, flying = await pipe.execute()
            if value is not None or not flying or time.monotonic() >= deadline:
                return value
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.1)

    async def release(self, key: str) -> None:
        await self.client().delete(f"{key}:flight")


class FailOpen(shared_state.FailOpen):
    what = "the response cache"
    consequence = "serving upstream"

    async def get(self, key):
        return await self._guard(self.inner.get(key), None)

    async def set(self, key, value, ttl):
        return await self._guard(self.inner.set(key, value, ttl), None)

    async def claim(self, key):
        return await self._guard(self.inner.claim(key), False)

    async def wait(self, key, seconds):
        return await self._guard(self.inner.wait(key, seconds), None)

    async def release(self, key):
        return await self._guard(self.inner.release(key), None)


_store_instance = None


def store():
    global _store_instance
    if _store_instance is None:
        _store_instance = FailOpen(RedisStore(settings.REDIS_URL)) if settings.REDIS_URL else LocalStore()
    return _store_instance


def reset() -> None:
    """Forget every entry (tests)."""
    global _store_instance
    inner = getattr(_store_instance, "inner", None)
    if isinstance(inner, RedisStore):
        try:
            client = redis.Redis.from_url(inner.url)
            keys = list(client.scan_iter(f"{_PREFIX}*"))
            if keys:
                client.delete(*keys)
        except Exception:  # noqa: S110 - that Redis is gone: nothing to forget
            pass
    _store_instance = None


caches.register(reset, lambda: getattr(_store_instance, "entries", None))
