"""The test run's log output holds no secret it used: every provider secret and hub API key the tests make is
remembered, every log record of the run is written to one file, and at the end that file and every file the
tests' processes wrote under pytest's temporary folder (their output: tests/processes.py) is searched for them.
A match fails the run, naming the file and the line.
"""

import logging
import os
import sys
import tempfile
from pathlib import Path

import pytest

_secrets: set[str] = set()
_log: Path | None = None
MIN_LENGTH = 8  # shorter strings would match by chance (a test's "sk-test" hint, say)


def remember(secret: str) -> None:
    if isinstance(secret, str) and len(secret) >= MIN_LENGTH:
        _secrets.add(secret)


def _watch_where_secrets_are_made() -> None:
    """Every hub key (accounts.services.api_key_create, which also serves rotation) and every provider secret
    (Credential.set_secret), whichever test, fixture or view makes them."""
    try:
        from accounts import services
        from providers.models import Credential
    except Exception:  # not the hub's own run (pytester's inner runs): only remember() feeds the guard
        return
    create = services.api_key_create

    def api_key_create(*args, **kwargs):
        made = create(*args, **kwargs)
        remember(made[1])
        return made

    services.api_key_create = api_key_create
    set_secret = Credential.set_secret

    def remembered(self, secret):
        remember(secret)
        return set_secret(self, secret)

    Credential.set_secret = remembered  # type: ignore[method-assign]


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    global _log
    handle, name = tempfile.mkstemp(prefix="hub-test-log-", suffix=".log")
    os.close(handle)
    _log = Path(name)
    handler = logging.FileHandler(_log, encoding="utf-8")
    # Unformatted but for the message and any traceback: what any handler of the hub would write.
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    config._secret_guard_handler = handler
    _watch_where_secrets_are_made()


def _files(session) -> list[Path]:
    files = [_log] if _log is not None else []
    factory = getattr(session.config, "_tmp_path_factory", None)
    base = getattr(factory, "_basetemp", None) if factory is not None else None
    if base is not None and Path(base).is_dir():
        files += [p for p in Path(base).rglob("*") if p.is_file() and not p.is_symlink()]
    return files


def leaks(files: list[Path]) -> list[str]:
    found = []
    for path in files:
        try:
            if path.stat().st_size > 50_000_000:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for secret in _secrets:
            at = text.find(secret)
            if at >= 0:
                line = text.count("\n", 0, at) + 1
                found.append(f"{path}:{line}: a secret the tests used ({secret[:6]}…)")
    return found


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    handler = getattr(session.config, "_secret_guard_handler", None)
    if handler is not None:
        handler.flush()
    found = leaks(_files(session))
    if found:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        message = "secret guard: the run's output holds secrets:\n" + "\n".join(found)
        if reporter is not None:
            reporter.write_line(message, red=True)
        else:
            sys.stderr.write(message + "\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
