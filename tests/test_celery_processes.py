"""A real Celery worker and beat, as `make run` starts them, on each broker the settings can select.

Not eager mode: the worker and beat are processes seeing only what
requirements.txt installs (tests/processes.py). Beat runs the whole schedule
every 2 seconds (HUB_BEAT_MAX_INTERVAL_SECONDS); the test waits until every
interval task has succeeded on the worker, and until one of them,
release_expired_holds, has released an expired credit hold in the database.
"""

import os
import re
import shutil
import signal
import sqlite3
import subprocess
from urllib.parse import urlsplit

import pytest

from tests.processes import ROOT, VENV_BIN, manage, reachable, runtime_env, wait_for

pytestmark = pytest.mark.processes

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/6"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"

# The expired hold of a request whose process died, on the demo organisation's account.
EXPIRED_HOLD = """
from datetime import timedelta
from decimal import Decimal
from django.db.models import F
from django.utils import timezone
from billing.money import money_value
from billing.models import CreditAccount, CreditHold
account = CreditAccount.objects.get(organization__slug="demo")
CreditHold.objects.create(account=account, request_id="req_died", amount=Decimal("0.5"),
                          expires_at=timezone.now() - timedelta(hours=2))
CreditAccount.objects.filter(pk=account.pk).update(held=F("held") + money_value(Decimal("0.5")))
"""


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    var = tmp_path_factory.mktemp("celery-template")
    env = runtime_env(var)
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "hub_bootstrap", "--key-only")
    manage(env, "shell", "-c", EXPIRED_HOLD)
    with sqlite3.connect(var / "hub.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM billing_credithold").fetchone() == (1,)
    return var


def _interval_tasks() -> set[str]:
    from django.conf import settings

    return {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values() if isinstance(entry["schedule"], float)}


def _run_schedule(template, tmp_path, **broker):
    var = tmp_path / "var"
    shutil.copytree(template, var)
    env = runtime_env(var, HUB_BEAT_MAX_INTERVAL_SECONDS="2", **broker)
    logs = {name: (tmp_path / f"{name}.log").open("w+") for name in ("worker", "beat")}
    commands = {
        "worker": ["celery", "-A", "hub", "worker", "--loglevel=info", "--concurrency=2"],
        "beat": ["celery", "-A", "hub", "beat", "--loglevel=info"],
    }
    procs = {
        name: subprocess.Popen(
            [str(VENV_BIN / cmd[0]), *cmd[1:]],
            cwd=ROOT,
            env=env,
            stdout=logs[name],
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for name, cmd in commands.items()
    }

    def output():
        return "".join(f"--- {name}\n{(tmp_path / f'{name}.log').read_text()}" for name in procs)

    def succeeded():
        return set(re.findall(r"Task ([\w.]+)\[[\w-]+\] succeeded", (tmp_path / "worker.log").read_text()))

    def holds():
        with sqlite3.connect(var / "hub.sqlite3") as db:
            return db.execute(
                "SELECT COUNT(*), (SELECT held FROM billing_creditaccount) FROM billing_credithold"
            ).fetchone()

    try:
        for name, proc in procs.items():
            assert proc.poll() is None or proc.returncode == 0, output()
        wait_for(
            lambda: _interval_tasks() <= succeeded() or any(p.poll() is not None for p in procs.values()),
            90,
            "every scheduled task succeeding",
            output,
        )
        assert all(p.poll() is None for p in procs.values()), output()
        assert holds() == (0, 0), "release_expired_holds ran but the hold is still there"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for name, proc in procs.items():
            try:
                codes[name] = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                codes[name] = "still running 30 s after SIGTERM"
    assert codes == {"worker": 0, "beat": 0}, output()
    text = output()
    assert "Traceback" not in text and "ERROR/" not in text, text
    return text


def test_filesystem_broker_runs_the_schedule(migrated, tmp_path):
    """The default: no REDIS_URL, a broker in var/."""
    text = _run_schedule(migrated, tmp_path)
    assert "filesystem://" in text


def test_redis_broker_runs_the_schedule(migrated, tmp_path):
    """REDIS_URL set: broker (and cache) on Redis. kombu's Redis transport imports `packaging`,
    which only the test tools had installed: the worker and beat died at start."""
    url = urlsplit(REDIS_URL)
    if not reachable(url.hostname, url.port or 6379):
        if os.environ.get("CI"):
            pytest.fail(f"no Redis at {REDIS_URL}: CI starts one")
        pytest.skip(f"no Redis at {REDIS_URL}")
    text = _run_schedule(migrated, tmp_path, REDIS_URL=REDIS_URL)
    assert "transport:   redis://" in text


def test_amqp_broker_runs_the_schedule(migrated, tmp_path):
    """CELERY_BROKER_URL=amqp://…: RabbitMQ, Celery's own default broker."""
    if not reachable("127.0.0.1", 5672):
        pytest.skip("no RabbitMQ on 127.0.0.1:5672")
    text = _run_schedule(migrated, tmp_path, CELERY_BROKER_URL=AMQP_URL)
    assert "transport:   amqp://" in text
