"""Every process-wide cache registers with accounts.caches, so that one call (reset_all) forgets them all.

tests/conftest.py resets them before each test with that one call: a cache left out of the registry would carry
one test's keys, balances or catalogue into the next. The scan below finds module-level state in the apps (a
dict, list or set, a name a function rebinds with `global`, an lru_cache) and fails on any that is neither in
a module that registers nor named below as not a cache.
"""

import ast
import importlib
import re
from decimal import Decimal
from pathlib import Path

from accounts import caches

ROOT = Path(__file__).resolve().parent.parent
APPS = ("accounts", "providers", "billing", "hub")

# Module-level state that is not a cache of what the database or settings say: nothing to forget between tests.
NOT_CACHES = {
    ("providers.http", "_clients"): "one connection pool per event loop, closed with its loop",
    ("providers.http", "_fetchers"): "one connection pool per event loop, closed with its loop",
    ("providers.http", "_sessions"): "the aiohttp session under each loop's client, closed with it",
    ("providers.http", "_setup"): "one semaphore per event loop: the requests it prepares now",
    ("hub.asgi", "_resolved"): "URL resolutions keyed by their resolver (a new URLconf is a new key), bounded",
    ("providers.http", "default_headers"): "httpx's default headers, a constant",
    ("providers.http", "aiohttp_timeout"): "timeouts by their values, bounded",
    ("providers.adapters", "_adapters"): "stateless adapter instances, built from code",
    ("hub.db", "_shared"): "reads in flight, shared by concurrent callers; empty once they finish",
    ("hub.shared_state", "_clients"): "one Redis connection pool per event loop",
    ("hub.relay", "_background"): "tasks running now; the live hub fixture waits for them",
    ("accounts.admin", "_VERBS"): "a constant mapping",
    ("accounts.caches", "_registry"): "the registry itself",
    ("billing.usage", "_usage_names"): "a pure function of a dataclass type, memoised: never stale",
    ("accounts.addresses", "_networks"): "a pure function of the proxy list it is given, memoised: never stale",
    ("accounts.models", "time_zone_names"): "the installed tzdata's zone names, read once: fixed for the process",
}

KNOWN = {
    "hub.auth",
    "hub.balances",
    "hub.catalogue",
    "hub.credit",
    "hub.limits",
    "hub.route_health",
    "providers.crypto",
}


def _modules():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "migrations" in parts or "management" in parts or path.name in ("settings.py", "gunicorn.conf.py"):
                continue
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def _is_container(node) -> bool:
    if isinstance(node, (ast.Dict, ast.List, ast.Set)):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, (ast.Name, ast.Attribute))
        and getattr(node.func, "id", getattr(node.func, "attr", ""))
        in {"dict", "list", "set", "defaultdict", "OrderedDict", "deque"}
    )


def _is_memo(decorator) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return getattr(target, "id", getattr(target, "attr", "")) in {"lru_cache", "cache"}


def _is_constant(name: str) -> bool:
    # UPPER_CASE by convention, dunders (__all__) and Django's urlpatterns: written once, at import.
    return bool(re.fullmatch(r"_?[A-Z][A-Z0-9_]*", name)) or name.startswith("__") or name == "urlpatterns"


def module_state(tree) -> set[str]:
    """Names of the module's process-wide state."""
    rebound = {name for node in ast.walk(tree) if isinstance(node, ast.Global) for name in node.names}
    found = set()
    for node in tree.body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign) and node.value is not None
            else []
        )
        for target in targets:
            if not isinstance(target, ast.Name):
                continue
            if target.id in rebound or (_is_container(node.value) and not _is_constant(target.id)):
                found.add(target.id)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(map(_is_memo, node.decorator_list)):
            found.add(node.name)
    return found


def state_of_the_apps() -> dict[str, set[str]]:
    found = {}
    for module, path in _modules():
        names = {n for n in module_state(ast.parse(path.read_text())) if (module, n) not in NOT_CACHES}
        if names:
            found[module] = names
    return found


def test_the_scan_finds_each_kind_of_module_state():
    tree = ast.parse(
        "from functools import lru_cache\n_a = {}\n_b: list = []\n_c = None\nCONST = ('x',)\n"
        "def f():\n    global _c\n    _c = 1\n@lru_cache(maxsize=1)\ndef g(): pass\n"
    )
    assert module_state(tree) == {"_a", "_b", "_c", "g"}


def test_every_module_with_process_wide_state_registers_a_reset():
    found = state_of_the_apps()
    for module in found:
        importlib.import_module(module)
    registered = {cache.module for cache in caches.registered()}
    assert set(found) - registered == set(), (
        "module-level state without caches.register(...) (or, if it is not a cache, a line in NOT_CACHES)"
    )
    assert set(found) >= KNOWN, "the scan no longer sees a known cache"


def test_the_known_caches_are_registered():
    for module in KNOWN:
        importlib.import_module(module)
    assert {cache.module for cache in caches.registered()} >= KNOWN


def test_reset_all_empties_every_registered_cache(organization):
    from hub import auth, balances, catalogue, credit
    from providers import crypto

    for module in KNOWN:
        importlib.import_module(module)
    # Something in each, as requests leave it.
    auth._cache["hashed"] = (0.0, None)
    balances.remember({organization.pk: Decimal(1)})
    catalogue._snapshot = catalogue.Snapshot(models={}, listed=[], expires=0.0)
    credit._locks[organization.pk] = object()
    crypto.encrypt("x")
    from hub import limits, route_health

    limits.counters()
    route_health.store()
    assert all(cache.contents() for cache in caches.registered() if cache.module in KNOWN)

    caches.reset_all()

    full = [cache.name for cache in caches.registered() if cache.contents()]
    assert full == []
    # And each module's own state, whatever else it keeps beside what it registered.
    for module, names in state_of_the_apps().items():
        loaded = importlib.import_module(module)
        for name in names:
            value = getattr(loaded, name)
            held = value.cache_info().currsize if hasattr(value, "cache_info") else value
            assert not held, f"{module}.{name} still holds something after reset_all()"
