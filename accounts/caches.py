"""Every process-wide cache, with what empties it: `reset_all()` forgets them all at once.

A module that keeps state for the life of the process (keys, balances, the
catalogue snapshot, the in-process stores of route health and limits…) registers
it next to its definition: ``caches.register(forget_all, lambda: _cache)``, the
function that empties it and what it holds now (falsy once empty). Tests reset
them all between tests with one call, and tests/test_caches.py fails when a
module-level cache is added without registering. A leaf module: it imports
nothing of the project, so every layer may use it.
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Cache:
    name: str  # the reset function's module and name
    reset: Callable[[], object]
    contents: Callable[[], object]

    @property
    def module(self) -> str:
        return self.reset.__module__


_registry: dict[str, Cache] = {}


def register(reset: Callable[[], object], contents: Callable[[], object]) -> None:
    """`reset()` empties a cache of this process; `contents()` is what it holds now. Once per reset function
    (a module imported twice registers once)."""
    name = f"{reset.__module__}.{reset.__qualname__}"
    _registry[name] = Cache(name, reset, contents)


def registered() -> list[Cache]:
    return list(_registry.values())


def reset_all() -> None:
    for cache in list(_registry.values()):
        cache.reset()
