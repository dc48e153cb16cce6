"""What tests make, made one way: usage events, providers with their credentials, catalogue models with their
routes and rates, organisations with keys.

Plain functions with the defaults most tests want; each keyword overrides a field. Those that save need the
database (a test's `db`/`transactional_db`); usage_event only builds.
"""

import itertools
from decimal import Decimal

_numbers = itertools.count(1)

# add_model's default rate: cost 1/2 per million tokens, 100% margin (price 2/4).
DEFAULT_RATE = {"input_cost": Decimal(1), "output_cost": Decimal(2), "margin": Decimal(1)}

_DECIMALS = ("price", "cost", "audio_seconds")


def usage_event(organization=None, *, key=None, **fields):
    """A finished request as the gateway hands it over (billing.usage.UsageEvent): a fresh request id,
    model "m", status "ok", the organisation's id and the key's. Money may be given as a string."""
    from billing.usage import UsageEvent

    if organization is not None:
        fields.setdefault("organization_id", organization.pk)
    if key is not None:
        fields.setdefault("api_key_id", key.pk)
    fields.setdefault("request_id", f"req-{next(_numbers)}")
    fields = {"model_name": "m", "status": "ok", **fields}
    for name in _DECIMALS:
        if name in fields and not isinstance(fields[name], Decimal):
            fields[name] = Decimal(fields[name])
    return UsageEvent(**fields)


def provider(name: str = "openai", *, secret: str | None = None, credential_name: str = "main", **fields):
    """A provider (kind, preset, base_url, options… as given; the model's defaults otherwise) and, given a
    secret, one credential holding it."""
    from providers.models import Provider

    made = Provider.objects.create(name=name, **fields)
    if secret is not None:
        credential(made, secret, name=credential_name)
    return made


def credential(provider, secret: str, *, name: str = "main", **fields):
    """A credential of `provider` holding `secret` (encrypted, as the admin stores it)."""
    from providers.models import Credential

    made = Credential(provider=provider, name=name, **fields)
    made.set_secret(secret)
    made.save()
    return made


def catalog_model(public_id: str, **fields):
    from providers.models import CatalogModel

    return CatalogModel.objects.create(public_id=public_id, **fields)


def route(model, provider, upstream_name: str, **fields):
    from providers.models import ModelRoute

    return ModelRoute.objects.create(model=model, provider=provider, upstream_name=upstream_name, **fields)


def rate(model, **fields):
    """The model's rate: DEFAULT_RATE unless fields are given (then only those)."""
    from billing.models import ModelRate

    return ModelRate.objects.create(model=model, **(fields or DEFAULT_RATE))


def add_model(provider, public_id: str, upstream_name: str, alias: str = "", **rate_fields):
    """A catalogue entry served by `provider` as `upstream_name`, with its rate (DEFAULT_RATE unless given)."""
    model = catalog_model(public_id, alias=alias)
    route(model, provider, upstream_name)
    rate(model, **rate_fields)
    return model


def organization(name: str = "Acme", *, credit: str | Decimal | None = None, **fields):
    """An organisation (accounts.services.organization_create), granted `credit` if given."""
    from accounts.services import organization_create

    made = organization_create(name=name, **fields)
    if credit is not None:
        from billing.services import credit_grant

        credit_grant(organization=made, amount=Decimal(credit), description="test credit")
    return made


def api_key(organization, name: str = "test", **fields):
    """(the key, its plain text): accounts.services.api_key_create."""
    from accounts.services import api_key_create

    return api_key_create(organization=organization, name=name, **fields)


def organization_with_key(
    name: str = "Acme", *, credit: str | Decimal | None = None, key_name: str = "test", **key_fields
):
    """(organisation, its key, the key's plain text)."""
    org = organization(name, credit=credit)
    key, raw = api_key(org, key_name, **key_fields)
    return org, key, raw
