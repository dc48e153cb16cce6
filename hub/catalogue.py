"""Step 3 of a request: which provider, credential and price serve a model name.

The whole enabled catalogue is read into an immutable snapshot, refreshed at
most every HUB_CATALOGUE_CACHE_SECONDS (at once in the process that saved a
change), so resolving a model costs a dictionary lookup.
"""

import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings

from providers.models import CatalogModel, Credential

from . import db
from .errors import ModelNotFound


@dataclass(frozen=True)
class Route:
    model_id: int
    public_id: str
    alias: str
    kind: str
    upstream_name: str
    created_at: datetime
    max_output_tokens: int | None
    supports_tools: bool
    supports_vision: bool
    supports_json: bool
    provider_id: int
    provider_name: str
    provider_kind: str
    preset: str
    base_url: str
    options: dict
    credential_id: int | None
    secret: str
    input_cost: Decimal
    output_cost: Decimal
    input_price: Decimal
    output_price: Decimal

    def __repr__(self):  # never print the secret
        return f"Route({self.public_id} via {self.provider_name})"


@dataclass(frozen=True)
class Snapshot:
    routes: dict[str, Route]
    models: list[Route]
    expires: float


_snapshot: Snapshot | None = None


def load() -> Snapshot:
    credentials = {}
    for credential in Credential.objects.filter(enabled=True).order_by("provider_id", "pk"):
        credentials.setdefault(credential.provider_id, credential)
    models = []
    for m in CatalogModel.objects.filter(enabled=True, provider__enabled=True).select_related("provider", "rate"):
        credential = credentials.get(m.provider_id)
        rate = getattr(m, "rate", None)
        zero = Decimal(0)
        models.append(
            Route(
                model_id=m.pk, public_id=m.public_id, alias=m.alias, kind=m.kind, upstream_name=m.upstream_name,
                created_at=m.created_at, max_output_tokens=m.max_output_tokens, supports_tools=m.supports_tools,
                supports_vision=m.supports_vision, supports_json=m.supports_json,
                provider_id=m.provider_id, provider_name=m.provider.name, provider_kind=m.provider.kind,
                preset=m.provider.preset, base_url=m.provider.effective_base_url, options=m.provider.options or {},
                credential_id=credential.pk if credential else None,
                secret=credential.get_secret() if credential else "",
                input_cost=rate.input_cost if rate else zero, output_cost=rate.output_cost if rate else zero,
                input_price=rate.input_price if rate else zero, output_price=rate.output_price if rate else zero,
            )
        )
    routes = {r.alias: r for r in models if r.alias}
    routes.update({r.public_id: r for r in models})
    return Snapshot(routes=routes, models=models, expires=time.monotonic() + settings.HUB_CATALOGUE_CACHE_SECONDS)


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


async def resolve(name: str, kind: str = CatalogModel.Kind.CHAT) -> Route:
    route = (await snapshot()).routes.get(name)
    if route is None or route.kind != kind:
        raise ModelNotFound(f"The model `{name}` does not exist or you do not have access to it.", param="model")
    return route


def invalidate() -> None:
    global _snapshot
    _snapshot = None
