"""Helpers for tests that run the hub's real processes (make run, Celery worker and beat).

Each such process sees only the distributions requirements.txt installs
(tests/runtime_only/sitecustomize.py), its own var/ folder and SQLite database.
"""

import atexit
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from functools import cache
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
# What `python -m venv` puts in every venv before requirements.txt.
VENV_BASELINE = {"pip", "setuptools"}


def _requirements(path: Path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


@cache
def runtime_distributions() -> frozenset[str]:
    """requirements.txt and everything its pins require, with their extras, as pip would install them."""
    seen: set[tuple[str, frozenset]] = set()
    names = set(VENV_BASELINE)
    todo = [(req, frozenset()) for req in _requirements(ROOT / "requirements.txt")]
    while todo:
        req, parent_extras = todo.pop()
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in parent_extras | {""}):
            continue
        name = canonicalize_name(req.name)
        if (name, frozenset(req.extras)) in seen:
            continue
        seen.add((name, frozenset(req.extras)))
        names.add(name)
        todo.extend((Requirement(r), frozenset(req.extras)) for r in metadata.distribution(name).requires or ())
    return frozenset(names)


@cache
def runtime_site_packages() -> Path:
    """A folder of links to what requirements.txt installs in the venv's site-packages, and nothing else."""
    real = Path(sysconfig.get_path("purelib"))
    runtime = runtime_distributions()
    absent = {
        module
        for module, dists in metadata.packages_distributions().items()
        if not any(canonicalize_name(d) in runtime for d in dists)
    }
    farm = Path(tempfile.mkdtemp(prefix="hub-runtime-site-"))
    atexit.register(shutil.rmtree, farm, True)
    for entry in real.iterdir():
        if entry.name.endswith(".dist-info"):
            keep = canonicalize_name(entry.name.removesuffix(".dist-info").rsplit("-", 1)[0]) in runtime
        else:
            keep = entry.name.split(".")[0] not in absent
        if keep:
            (farm / entry.name).symlink_to(entry)
    return farm


def runtime_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a process as `make run` starts it: no test settings, its own var/ and SQLite."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DATABASE_URL",
            "REDIS_URL",
            "SECRET_KEY",
            "DJANGO_SETTINGS_MODULE",
            "MAKEFLAGS",
            "MFLAGS",
            "MAKELEVEL",
        )  # `make test`'s own: a user's make run is no sub-make
        and not k.startswith(("PYTEST", "HUB_", "CELERY_"))
    }
    env.update(
        HUB_VAR_DIR=str(var_dir),
        PYTHONPATH=str(ROOT / "tests" / "runtime_only"),
        HUB_TEST_SITE_PACKAGES=str(runtime_site_packages()),
        HUB_TEST_REAL_SITE_PACKAGES=sysconfig.get_path("purelib"),
        PYTHONUNBUFFERED="1",
        PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}",
    )
    env.update(extra)
    return env


def manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_for(predicate, timeout: float, what: str, output=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout} s" + (f"; output:\n{output()}" if output else ""))


def shared_env(**extra: str) -> dict[str, str]:
    """The environment of a hub process that shares this test's PostgreSQL database and Redis (the test
    settings, DATABASE_URL and REDIS_URL pointing at them), `extra` on top."""
    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return dict(
        os.environ,
        DATABASE_URL=f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{host}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        DJANGO_SETTINGS_MODULE="tests.settings",
        **extra,
    )
