"""The test run's log output holds no secret it used: every provider secret and hub API key the tests make is
remembered, every log record of the run is written to one file, and at the end that file and every file the
tests' processes wrote under pytest's temporary folder (their output: tests/processes.py) is searched for them;
so is the output of every subprocess.run the tests make with its output captured, as it returns. A match fails
the run, naming the file (or command) and the line.

A secret meant to be shown (the demo key `make run` prints under "API key:") is remembered with the text it is
shown after: there it is no leak, anywhere else it is. Files that store a secret on purpose (SECRET_STORES) are
not output, and are not searched.
"""

import logging
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

_secrets: set[str] = set()
_shown_after: dict[str, tuple[str, ...]] = {}  # secret: the texts it is meant to be shown right after
_captured_leaks: list[str] = []
_log: Path | None = None
MIN_LENGTH = 8  # shorter strings would match by chance (a test's "sk-test" hint, say)
SECRET_STORES = {"demo_api_key"}  # hub_bootstrap keeps the demo key there, owner-only


def remember(secret: str, *, shown_after: tuple[str, ...] = ()) -> None:
    if isinstance(secret, str) and len(secret) >= MIN_LENGTH:
        _secrets.add(secret)
        if shown_after:
            _shown_after[secret] = _shown_after.get(secret, ()) + shown_after


# A secret made only of these is found as a whole token of the text: one set lookup a token, however many
# secrets the run made (thousands of keys, searched one by one through every file, took minutes).
TOKEN = re.compile(rf"[A-Za-z0-9_\-]{{{MIN_LENGTH},}}")


def _found_in(text: str, where: str) -> list[str]:
    """One line per secret found in `text` outside the places it is meant to be shown."""
    found = []

    def leaked(secret: str, at: int) -> bool:
        if any(text[:at].endswith(before) for before in _shown_after.get(secret, ())):
            return False
        found.append(f"{where}:{text.count(chr(10), 0, at) + 1}: a secret the tests used ({secret[:6]}…)")
        return True

    seen: set[str] = set()
    for match in TOKEN.finditer(text):
        secret = match.group()
        if secret in _secrets and secret not in seen and leaked(secret, match.start()):
            seen.add(secret)
    for secret in _secrets:
        if TOKEN.fullmatch(secret):
            continue  # found as a token above
        at = text.find(secret)
        while at >= 0 and not leaked(secret, at):
            at = text.find(secret, at + 1)
    return found


def _watch_captured_output() -> None:
    """subprocess.run (check_output calls it too) with captured output: the output is searched as it returns,
    against the secrets made so far (a process can only have been given those)."""
    run = subprocess.run

    def watched(*args, **kwargs):
        done = run(*args, **kwargs)
        command = args[0] if args else kwargs.get("args", "")
        where = "output of " + (" ".join(map(str, command)) if isinstance(command, list | tuple) else str(command))
        for out in (done.stdout, done.stderr):
            if out:
                text = out.decode("utf-8", "replace") if isinstance(out, bytes) else str(out)
                _captured_leaks.extend(_found_in(text, where[:200]))
        return done

    subprocess.run = watched


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
    _watch_captured_output()


def _files(session) -> list[Path]:
    files = [_log] if _log is not None else []
    factory = getattr(session.config, "_tmp_path_factory", None)
    base = getattr(factory, "_basetemp", None) if factory is not None else None
    if base is not None and Path(base).is_dir():
        files += [
            p for p in Path(base).rglob("*") if p.is_file() and not p.is_symlink() and p.name not in SECRET_STORES
        ]
    return files


def leaks(files: list[Path]) -> list[str]:
    found = list(_captured_leaks)
    for path in files:
        try:
            if path.stat().st_size > 50_000_000:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        found += _found_in(text, str(path))
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
