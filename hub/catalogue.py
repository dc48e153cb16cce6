"""Step 3 of a request: which model a name means, and every place it can be served.

The whole enabled catalogue is read into an immutable snapshot, refreshed at
most every HUB_CATALOGUE_CACHE_SECONDS (at once in the process that saved a
change), so resolving a model costs a dictionary lookup. A model's `routes`
are all (model route × provider credential) pairs; hub.routing picks among them.
"""

import time
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings

from accounts import caches
from billing.ratecard import FREE, RateCard
from providers.models import CatalogModel, Credential, ModelRoute

from . import db
from .errors import BadRequest, ModelNotFound


@dataclass(frozen=True)
class Route:
    """One way to serve one model: a provider, a model name there, a credential, a rate card."""

    model_id: int
    public_id: str
    upstream_name: str
    max_output_tokens: int | None
    provider_id: int
    provider_name: str
    provider_kind: str
    preset: str
    base_url: str
    options: dict
    credential_id: int | None
    credential_name: str
    secret: str
    weight: int
    priority: tuple
    max_concurrency: int | None
    rpm_limit: int | None
    connect_timeout: float
    first_byte_timeout: float
    idle_timeout: float
    rate: RateCard = FREE  # the model's, the same card on each of its routes
    last_check_ok: bool | None = None  # the credential's last health check (None: never checked)

    def __repr__(self):  # never print the secret
        return f"Route({self.public_id} via {self.provider_name}/{self.credential_name})"


@dataclass(frozen=True)
class Model:
    id: int
    public_id: str
    alias: str
    kind: str
    created_at: datetime
    supports_tools: bool
    supports_vision: bool
    supports_json: bool
    strategy: str
    fallbacks: tuple
    routes: tuple = field(default=())
    context_window: int | None = None
    max_output_tokens: int | None = None

    @property
    def owned_by(self) -> str:
        return self.routes[0].provider_name if self.routes else "hub"


@dataclass(frozen=True)
class Snapshot:
    models: dict[str, Model]  # by public id and alias
    listed: list[Model]
    expires: float


_snapshot: Snapshot | None = None


def _routes(model, rate, route_rows, credentials) -> tuple:
    card = RateCard.of(rate)
    routes = []
    for row in route_rows:
        provider = row.provider
        creds = credentials.get(provider.pk) or [None]
        for credential in creds:
            routes.append(
                Route(
                    model_id=model.pk,
                    public_id=model.public_id,
                    upstream_name=row.upstream_name,
                    max_output_tokens=model.max_output_tokens,
                    provider_id=provider.pk,
                    provider_name=provider.name,
                    provider_kind=provider.kind,
                    preset=provider.preset,
                    base_url=provider.effective_base_url,
                    options=provider.options or {},
                    credential_id=credential.pk if credential else None,
                    credential_name=credential.name if credential else "",
                    secret=credential.get_secret() if credential else "",
                    weight=row.weight * (credential.weight if credential else 1),
                    priority=(row.priority, credential.priority if credential else 0),
                    max_concurrency=credential.max_concurrency if credential else None,
                    rpm_limit=credential.rpm_limit if credential else None,
                    last_check_ok=credential.last_check_ok if credential else None,
                    connect_timeout=provider.connect_timeout or settings.HUB_UPSTREAM_CONNECT_TIMEOUT,
                    first_byte_timeout=provider.first_byte_timeout or settings.HUB_UPSTREAM_FIRST_BYTE_TIMEOUT,
                    idle_timeout=provider.idle_timeout or settings.HUB_UPSTREAM_READ_TIMEOUT,
                    rate=card,
                )
            )
    return tuple(routes)


def load() -> Snapshot:
    credentials: dict[int, list] = {}
    for credential in Credential.objects.filter(enabled=True).order_by("provider_id", "priority", "pk"):
        credentials.setdefault(credential.provider_id, []).append(credential)
    route_rows: dict[int, list] = {}
    for row in ModelRoute.objects.filter(enabled=True, provider__enabled=True).select_related("provider"):
        route_rows.setdefault(row.model_id, []).append(row)
    listed = []
    for m in CatalogModel.objects.filter(enabled=True).select_related("rate"):
        routes = _routes(m, getattr(m, "rate", None), route_rows.get(m.pk, []), credentials)
        if not routes:
            continue  # nowhere to serve it: not offered
        listed.append(
            Model(
                id=m.pk,
                public_id=m.public_id,
                alias=m.alias,
                kind=m.kind,
                created_at=m.created_at,
                supports_tools=m.supports_tools,
                supports_vision=m.supports_vision,
                supports_json=m.supports_json,
                strategy=m.strategy,
                fallbacks=tuple(m.fallbacks or ()),
                routes=routes,
                context_window=m.context_window,
                max_output_tokens=m.max_output_tokens,
            )
        )
    models = {m.alias: m for m in listed if m.alias}
    models.update({m.public_id: m for m in listed})
    return Snapshot(models=models, listed=listed, expires=time.monotonic() + settings.HUB_CATALOGUE_CACHE_SECONDS)


async def snapshot() -> Snapshot:
    global _snapshot
    current = _snapshot
    if current is not None and current.expires > time.monotonic():
        return current
    try:
        _snapshot = await db.read_shared("catalogue", load)
    except Exception:
        if current is None:
            raise
        return current  # the database hiccupped: serve the last known catalogue
    return _snapshot


ENDPOINTS = {
    "chat": "/v1/chat/completions",
    "embedding": "/v1/embeddings",
    "audio": "/v1/audio/speech",
    "image": "/v1/images/generations",
    "transcription": "/v1/audio/transcriptions",
}


def with_article(word: str) -> str:
    """ "an embedding", "a chat": every message naming a model's kind says it this way."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


async def resolve(name: str, kind: str = CatalogModel.Kind.CHAT) -> Model:
    model = (await snapshot()).models.get(name)
    if model is None:
        raise ModelNotFound(f"The model `{name}` does not exist or you do not have access to it.", param="model")
    if model.kind != kind:
        where = f"use {ENDPOINTS[model.kind]}" if model.kind in ENDPOINTS else "this hub has no endpoint for it yet"
        raise BadRequest(
            f"The model `{name}` is {with_article(model.kind)} model: {where}.", param="model", code="wrong_model_kind"
        )
    return model


def fallbacks_of(model: Model, snap: Snapshot) -> list[Model]:
    return [snap.models[f] for f in model.fallbacks if f in snap.models and snap.models[f].kind == model.kind]


def invalidate() -> None:
    global _snapshot
    _snapshot = None


caches.register(invalidate, lambda: _snapshot)
