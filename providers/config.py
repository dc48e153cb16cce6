"""Declarative configuration: providers, credentials, models and rates from one YAML file.

Applying the same file twice changes nothing. Secrets never appear in the
file: a credential names the environment variable that holds it.
"""

import os
from decimal import Decimal, InvalidOperation

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction

from billing.models import ModelRate

from .models import CatalogModel, Credential, Provider
from .presets import PRESETS


class ConfigError(Exception):
    pass


def _decimal(value, where: str) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{where}: {value!r} is not a number") from None


def _save(obj, where: str) -> None:
    try:
        obj.full_clean()
    except ValidationError as exc:
        problems = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items())
        raise ConfigError(f"{where}: {problems}") from None
    obj.save()


def _apply_fields(obj, fields: dict) -> bool:
    changed = [name for name, value in fields.items() if getattr(obj, name) != value]
    for name in changed:
        setattr(obj, name, fields[name])
    return bool(changed)


def load_file(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise ConfigError("the file must hold a mapping with 'providers' and/or 'models'")
    return data


CAPABILITIES = {"tools": "supports_tools", "vision": "supports_vision", "json": "supports_json"}


@transaction.atomic
def apply_config(data: dict, environ=os.environ, margin: Decimal | None = None) -> list[str]:
    """Create or update what `data` describes; return a line per change.

    `margin` applies to every rate that gives costs but neither prices nor a margin.
    """
    log = []
    for i, spec in enumerate(data.get("providers") or []):
        where = f"providers[{i}]"
        if "name" not in spec:
            raise ConfigError(f"{where}: 'name' is required")
        preset = spec.get("preset", "custom")
        if preset not in PRESETS:
            raise ConfigError(f"{where}: unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        fields = {"kind": spec.get("kind", Provider.Kind.OPENAI_COMPATIBLE), "preset": preset,
                  "base_url": spec.get("base_url", ""), "options": spec.get("options") or {},
                  "enabled": spec.get("enabled", True)}
        if fields["kind"] not in Provider.Kind.values:
            raise ConfigError(f"{where}: unknown kind {fields['kind']!r}")
        provider = Provider.objects.filter(name=spec["name"]).first()
        if provider is None:
            provider = Provider(name=spec["name"], **fields)
            _save(provider, where)
            log.append(f"created provider {provider.name}")
        elif _apply_fields(provider, fields):
            _save(provider, where)
            log.append(f"updated provider {provider.name}")
        for j, cred in enumerate(spec.get("credentials") or []):
            log += _apply_credential(provider, cred, f"{where}.credentials[{j}]", environ)
    for i, spec in enumerate(data.get("models") or []):
        log += _apply_model(spec, f"models[{i}]", margin)
    return log


def _apply_credential(provider, spec: dict, where: str, environ) -> list[str]:
    name = spec.get("name", "default")
    env_name = spec.get("secret_env")
    if "secret" in spec:
        raise ConfigError(f"{where}: put the secret in an environment variable and name it with 'secret_env'")
    secret = ""
    if env_name:
        if env_name not in environ:
            raise ConfigError(f"{where}: environment variable {env_name} is not set")
        secret = environ[env_name]
    credential = Credential.objects.filter(provider=provider, name=name).first()
    enabled = spec.get("enabled", True)
    if credential is None:
        credential = Credential(provider=provider, name=name, enabled=enabled)
        credential.set_secret(secret)
        credential.save()
        return [f"created credential {provider.name}/{name}"]
    changed = credential.enabled != enabled
    credential.enabled = enabled
    if credential.get_secret() != secret:
        credential.set_secret(secret)
        changed = True
    if changed:
        credential.save()
        return [f"updated credential {provider.name}/{name}"]
    return []


RATE_FIELDS = ("input_cost", "output_cost", "input_price", "output_price", "margin")


def _apply_model(spec: dict, where: str, margin: Decimal | None) -> list[str]:
    log = []
    for required in ("id", "provider", "upstream"):
        if required not in spec:
            raise ConfigError(f"{where}: '{required}' is required")
    provider = Provider.objects.filter(name=spec["provider"]).first()
    if provider is None:
        raise ConfigError(f"{where}: unknown provider {spec['provider']!r}")
    kind = spec.get("kind", CatalogModel.Kind.CHAT)
    if kind not in CatalogModel.Kind.values:
        raise ConfigError(f"{where}: unknown kind {kind!r}")
    fields = {"alias": spec.get("alias", ""), "provider": provider, "upstream_name": spec["upstream"], "kind": kind,
              "context_window": spec.get("context_window"), "max_output_tokens": spec.get("max_output_tokens"),
              "enabled": spec.get("enabled", True)}
    if "capabilities" in spec:
        capabilities = spec["capabilities"] or []
        unknown = set(capabilities) - set(CAPABILITIES)
        if unknown:
            raise ConfigError(f"{where}.capabilities: unknown {sorted(unknown)} (known: {', '.join(CAPABILITIES)})")
        fields.update({field: name in capabilities for name, field in CAPABILITIES.items()})
    model = CatalogModel.objects.filter(public_id=spec["id"]).first()
    if model is None:
        model = CatalogModel(public_id=spec["id"], **fields)
        _save(model, where)
        log.append(f"created model {model.public_id}")
    elif _apply_fields(model, fields):
        _save(model, where)
        log.append(f"updated model {model.public_id}")
    rate_spec = spec.get("rate")
    if rate_spec is not None:
        unknown = set(rate_spec) - set(RATE_FIELDS)
        if unknown:
            raise ConfigError(f"{where}.rate: unknown fields {sorted(unknown)}")
        rate = ModelRate.objects.filter(model=model).first() or ModelRate(model=model)
        values = {name: _decimal(rate_spec[name], f"{where}.rate.{name}") for name in RATE_FIELDS
                  if rate_spec.get(name) is not None}
        if margin is not None and not {"margin", "input_price", "output_price"} & set(values):
            values["margin"] = margin
        values.setdefault("margin", None)
        before = {name: getattr(rate, name) for name in RATE_FIELDS}
        for name, value in values.items():
            setattr(rate, name, value)
        if rate.pk is None or any(getattr(rate, n) != before[n] for n in values):
            rate.save()
            log.append(f"set rate of {model.public_id}")
    return log
