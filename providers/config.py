"""Declarative configuration, the providers' part: providers, credentials, models and their routes.

Applying the same file twice changes nothing. Secrets never appear in the
file: a credential names the environment variable that holds it. The whole
file, rates included, is applied by billing/config.py (`hub_config apply`).
"""

from decimal import Decimal, InvalidOperation

import yaml
from django.core.exceptions import ValidationError

from .models import CatalogModel, Credential, ModelRoute, Provider
from .presets import PRESETS


class ConfigError(Exception):
    """What is wrong with the file, and where."""


def to_decimal(value, where: str) -> Decimal:
    """`value` as a Decimal, or a ConfigError that says where."""
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{where}: {value!r} is not a number") from None


def save_checked(obj, where: str) -> None:
    """Validate and save `obj`; its validation errors become one ConfigError that says where."""
    try:
        obj.full_clean()
    except ValidationError as exc:
        problems = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items())
        raise ConfigError(f"{where}: {problems}") from None
    obj.save()


def apply_fields(obj, fields: dict) -> bool:
    """Set `fields` on `obj`; whether any of them changed."""
    changed = [name for name, value in fields.items() if getattr(obj, name) != value]
    for name in changed:
        setattr(obj, name, fields[name])
    return bool(changed)


def load_file(path: str) -> dict:
    """The YAML file at `path`, which must hold a mapping."""
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise ConfigError("the file must hold a mapping with 'providers' and/or 'models'")
    return data


CAPABILITIES = {"tools": "supports_tools", "vision": "supports_vision", "json": "supports_json"}


def apply_provider(spec: dict, where: str, environ) -> list[str]:
    """Create or update the provider `spec` describes, and its credentials; a line per change."""
    log = []
    if "name" not in spec:
        raise ConfigError(f"{where}: 'name' is required")
    preset = spec.get("preset", "custom")
    if preset not in PRESETS:
        raise ConfigError(f"{where}: unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    fields = {
        "kind": spec.get("kind", Provider.Kind.OPENAI_COMPATIBLE),
        "preset": preset,
        "base_url": spec.get("base_url", ""),
        "options": spec.get("options") or {},
        "enabled": spec.get("enabled", True),
    }
    for name in ("connect_timeout", "first_byte_timeout", "idle_timeout"):
        fields[name] = spec.get(name)
    if fields["kind"] not in Provider.Kind.values:
        raise ConfigError(f"{where}: unknown kind {fields['kind']!r}")
    provider = Provider.objects.filter(name=spec["name"]).first()
    if provider is None:
        provider = Provider(name=spec["name"], **fields)
        save_checked(provider, where)
        log.append(f"created provider {provider.name}")
    elif apply_fields(provider, fields):
        save_checked(provider, where)
        log.append(f"updated provider {provider.name}")
    for j, cred in enumerate(spec.get("credentials") or []):
        log += _apply_credential(provider, cred, f"{where}.credentials[{j}]", environ)
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
    tuning = {
        "weight": int(spec.get("weight", 1)),
        "priority": int(spec.get("priority", 0)),
        "max_concurrency": spec.get("max_concurrency"),
        "rpm_limit": spec.get("rpm_limit"),
    }
    credential = Credential.objects.filter(provider=provider, name=name).first()
    enabled = spec.get("enabled", True)
    if credential is None:
        credential = Credential(provider=provider, name=name, enabled=enabled, **tuning)
        credential.set_secret(secret)
        credential.save()
        return [f"created credential {provider.name}/{name}"]
    changed = apply_fields(credential, dict(tuning, enabled=enabled))
    if credential.get_secret() != secret:
        credential.set_secret(secret)
        changed = True
    if changed:
        credential.save()
        return [f"updated credential {provider.name}/{name}"]
    return []


def apply_model(spec: dict, where: str) -> tuple[CatalogModel, list[str]]:
    """Create or update the catalogue model `spec` describes and its routes; a line per change (its rate: billing)."""
    log = []
    if "id" not in spec:
        raise ConfigError(f"{where}: 'id' is required")
    # One route in short (provider + upstream), or several under `routes`.
    route_specs = spec.get("routes") or (
        [{"provider": spec.get("provider"), "upstream": spec.get("upstream")}]
        if "provider" in spec or "upstream" in spec
        else []
    )
    if not route_specs:
        raise ConfigError(f"{where}: 'provider' is required (with 'upstream'), or a list of 'routes'")
    routes = []
    for j, route in enumerate(route_specs):
        for required in ("provider", "upstream"):
            if not route.get(required):
                raise ConfigError(
                    f"{where}: '{required}' is required"
                    if "routes" not in spec
                    else f"{where}.routes[{j}]: '{required}' is required"
                )
        provider = Provider.objects.filter(name=route["provider"]).first()
        if provider is None:
            raise ConfigError(f"{where}: unknown provider {route['provider']!r}")
        routes.append((provider, str(route["upstream"]), int(route.get("weight", 1)), int(route.get("priority", 0))))
    kind = spec.get("kind", CatalogModel.Kind.CHAT)
    if kind not in CatalogModel.Kind.values:
        raise ConfigError(f"{where}: unknown kind {kind!r}")
    strategy = spec.get("strategy", CatalogModel.Strategy.WEIGHTED)
    if strategy not in CatalogModel.Strategy.values:
        raise ConfigError(f"{where}: unknown strategy {strategy!r} (known: {', '.join(CatalogModel.Strategy.values)})")
    fields = {
        "alias": spec.get("alias", ""),
        "kind": kind,
        "strategy": strategy,
        "fallbacks": list(spec.get("fallbacks") or []),
        "context_window": spec.get("context_window"),
        "max_output_tokens": spec.get("max_output_tokens"),
        "enabled": spec.get("enabled", True),
    }
    if "capabilities" in spec:
        capabilities = spec["capabilities"] or []
        unknown = set(capabilities) - set(CAPABILITIES)
        if unknown:
            raise ConfigError(f"{where}.capabilities: unknown {sorted(unknown)} (known: {', '.join(CAPABILITIES)})")
        fields.update({field: name in capabilities for name, field in CAPABILITIES.items()})
    model = CatalogModel.objects.filter(public_id=spec["id"]).first()
    if model is None:
        model = CatalogModel(public_id=spec["id"], **fields)
        save_checked(model, where)
        log.append(f"created model {model.public_id}")
    elif apply_fields(model, fields):
        save_checked(model, where)
        log.append(f"updated model {model.public_id}")
    wanted = {(p.pk, upstream): (weight, priority) for p, upstream, weight, priority in routes}
    existing = {(r.provider_id, r.upstream_name): r for r in model.routes.all()}
    for key, (weight, priority) in wanted.items():
        row = existing.get(key)
        if row is None:
            ModelRoute.objects.create(
                model=model, provider_id=key[0], upstream_name=key[1], weight=weight, priority=priority
            )
            log.append(f"added route {model.public_id} via {key[1]}")
        elif (row.weight, row.priority, row.enabled) != (weight, priority, True):
            row.weight, row.priority, row.enabled = weight, priority, True
            row.save()
            log.append(f"updated route {model.public_id} via {key[1]}")
    for key, row in existing.items():
        if key not in wanted:
            row.delete()
            log.append(f"removed route {model.public_id} via {key[1]}")
    return model, log
