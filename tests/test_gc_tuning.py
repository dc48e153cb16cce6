"""A serving process's garbage collector is set at the ASGI lifespan's startup (hub/lifecycle.py: tune_gc).

The served processes run the hub's own settings, so they are checked in a process of their own: the real
application (hub.asgi) answers the lifespan startup there and the process reports its collector.
"""

import gc
import json
import os
import subprocess
import sys
import tempfile

import pytest

from hub import lifecycle
from tests.processes import ROOT

# The real ASGI application answers the lifespan's startup, as uvicorn sends it, and the collector is read.
STARTUP = """
import asyncio, gc, json
from hub.asgi import application

async def main():
    messages = [{"type": "lifespan.startup"}]
    sent = []
    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # no shutdown: the startup's answer is all this test reads
    async def send(message):
        sent.append(message["type"])
    task = asyncio.create_task(application({"type": "lifespan"}, receive, send))
    while not sent:
        await asyncio.sleep(0.01)
    task.cancel()
    print(json.dumps({"sent": sent, "threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}))

asyncio.run(main())
"""


def starting(**env: str) -> subprocess.CompletedProcess:
    """A process serving the hub (hub.settings, as gunicorn and uvicorn run it), through its startup."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "HUB_GC_"))}
    environ.update(DJANGO_SETTINGS_MODULE="hub.settings", HUB_VAR_DIR=tempfile.mkdtemp(prefix="hub-gc-"), **env)
    return subprocess.run(
        [sys.executable, "-c", STARTUP], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120
    )


def served(**env: str) -> dict:
    """What such a process reports after its startup."""
    out = starting(**env)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.processes
def test_a_served_process_freezes_what_it_loaded_and_collects_less_often():
    report = served()
    assert report["sent"] == ["lifespan.startup.complete"]
    assert report["threshold"] == [10000, 10, 10]
    # Django, the adapters and their libraries: tens of thousands of objects no collection walks again.
    assert report["frozen"] > 10000


@pytest.mark.processes
def test_the_collector_can_be_left_as_python_sets_it():
    report = served(HUB_GC_FREEZE="false", HUB_GC_THRESHOLD="")
    assert report["sent"] == ["lifespan.startup.complete"]
    assert report["threshold"] == [700, 10, 10]  # Python's own
    assert report["frozen"] == 0


@pytest.mark.processes
def test_an_operators_threshold_is_used():
    assert served(HUB_GC_THRESHOLD="50000,20")["threshold"] == [50000, 20, 10]


@pytest.mark.processes
@pytest.mark.parametrize("threshold", ["0", "10000,0", "1,2,3,4", "-5"])
def test_a_threshold_that_would_stop_or_break_the_collector_is_refused_before_serving(threshold):
    # At the settings, not at the lifespan's startup: uvicorn takes a failed startup for an app without a
    # lifespan and serves on, without the shutdown that drains the meter.
    out = starting(HUB_GC_THRESHOLD=threshold)
    assert out.returncode != 0 and "lifespan" not in out.stdout
    assert "ImproperlyConfigured: HUB_GC_THRESHOLD" in out.stderr


@pytest.fixture
def collector():
    """The test process's own collector, put back as it was."""
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_the_test_process_is_not_frozen(settings, collector):
    # tests/settings.py: a live hub's startup in the test process leaves every test's objects collectable.
    assert settings.HUB_GC_FREEZE is False
    frozen = gc.get_freeze_count()
    lifecycle.tune_gc()
    assert gc.get_freeze_count() == frozen
