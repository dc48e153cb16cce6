"""`make run` as users run it: serve, take a burst of requests, stop on Ctrl-C or SIGTERM.

`make run` used to supervise with `trap 'kill 0'`, which re-triggered itself
(thousands of "Warm shutdown" lines, make ending in a segfault) and on SIGTERM
left the Celery worker running. Now honcho runs hub/Procfile (hub/run.py).
Each process here sees only what requirements.txt installs, its own var/ and
SQLite database (tests/processes.py).
"""

import json
import os
import re
import signal
import sqlite3
import subprocess
import threading

import openai
import psutil
import pytest

from tests import secret_guard
from tests.fakes.server import free_port
from tests.processes import ROOT, VENV_BIN, runtime_env, wait_for

pytestmark = pytest.mark.processes

ACCESS_LINE = re.compile(
    r'\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] 127\.0\.0\.1 "POST /v1/chat/completions '
    r'HTTP/1\.1" 200 \d+ \d+\.\d{6}s (req_\w+)'
)


def _burst_then_signal(port: int, key: str, make: subprocess.Popen, sig: int) -> list[str]:
    """Chat requests from 8 threads; once 40 have answered, `sig` goes to make's process group while
    the others are in flight. Returns the request ids of the answers that came back 200."""
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=60)
    answered: list[str] = []
    lock = threading.Lock()
    enough = threading.Event()

    def send():
        for _ in range(200):
            try:
                raw = client.chat.completions.with_raw_response.create(
                    model="demo/echo", messages=[{"role": "user", "content": "count my words please"}]
                )
            except openai.APIConnectionError:
                return  # the hub stopped taking connections
            assert raw.http_response.status_code == 200
            with lock:
                answered.append(raw.headers["x-request-id"])
                if len(answered) >= 40:
                    enough.set()

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    assert enough.wait(60), "the hub did not answer 40 requests"
    os.killpg(make.pid, sig)  # make leads its process group: a terminal's Ctrl-C, or `kill -TERM -<pgid>`
    for thread in threads:
        thread.join(60)
    return answered


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_make_run_stops_everything_once_and_loses_no_usage(tmp_path, sig):
    var = tmp_path / "var"
    port = free_port()
    log_path = tmp_path / "make-run.log"
    # -o: the test venv is installed already; `make run`'s install step is not under test.
    make = subprocess.Popen(
        ["make", "-o", ".venv/.runtime", "run", f"PORT={port}"],
        cwd=ROOT,
        env=runtime_env(var),
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # its own process group, as a terminal gives it

    def log() -> str:
        return log_path.read_text(errors="replace")

    try:
        # Serving, and the worker and beat past their start (banners printed, signal handlers set).
        wait_for(
            lambda: (
                all(s in log() for s in ("Application startup complete", "[queues]", "maxinterval"))
                or make.poll() is not None
            ),
            180,
            "make run serving",
            log,
        )
        assert make.poll() is None, log()
        everything = [psutil.Process(make.pid), *psutil.Process(make.pid).children(recursive=True)]
        assert len(everything) >= 8, everything  # make, honcho and its readers, gunicorn ×2, worker ×3, beat
        assert (var / "gunicorn.ctl").is_socket(), "gunicorn's control socket is not in this hub's var/"

        demo_key = (var / "demo_api_key").read_text().strip()
        # Printed once by the bootstrap for the quick start; anywhere else in the run's output it is a leak.
        secret_guard.remember(demo_key, shown_after=("API key:  ",))
        answered = _burst_then_signal(port, demo_key, make, sig)

        # make waits for honcho (which exits 0), then dies of the signal it got, as a shell expects.
        assert make.wait(timeout=60) == -sig, log()
    finally:
        if make.poll() is None:
            for process in psutil.Process(make.pid).children(recursive=True):
                process.kill()
            make.kill()

    def left():
        return [p for p in everything if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    wait_for(lambda: not left(), 10, "every process gone", lambda: f"{left()}\n{log()}")

    text = log()
    # One SIGTERM each, one shutdown line each, no flood, nothing killed.
    assert text.count("sending SIGTERM to") == 3, text
    assert "SIGKILL" not in text and "Traceback" not in text, text
    assert "AXES: BEGIN" not in text, text
    assert text.count("Handling signal: term") == 1, text
    assert text.count("Warm shutdown") == 1, text
    for name in ("web.1", "worker.1", "beat.1"):
        assert text.count(f"{name} stopped (rc=0)") == 1, text
    assert text.count("Application shutdown complete") == 1, text  # the worker drained the meter

    # Every request answered 200 has its usage record; the access log has time, status, bytes and duration.
    assert len(answered) >= 40
    with sqlite3.connect(var / "hub.sqlite3") as db:
        recorded = {row[0] for row in db.execute("SELECT request_id FROM billing_usagerecord")}
    assert set(answered) <= recorded, f"{len(set(answered) - recorded)} of {len(answered)} answers have no usage record"
    assert set(answered) <= set(ACCESS_LINE.findall(text)), text[-3000:]


def test_two_hubs_have_their_own_gunicorn_control_socket(tmp_path):
    """gunicorn's default control socket is one per user ($HOME/.gunicorn/gunicorn.ctl): the second
    hub on a host took the first one's. Each asks its own socket about its own workers."""
    hubs = {}
    for name in ("a", "b"):
        var = tmp_path / name
        env = runtime_env(var, HUB_BIND=f"127.0.0.1:{free_port()}")
        hubs[name] = (
            var,
            subprocess.Popen(
                [str(VENV_BIN / "gunicorn"), "-c", "hub/gunicorn.conf.py", "hub.asgi:application"],
                cwd=ROOT,
                env=env,
                stdout=(tmp_path / f"{name}.log").open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            ),
        )
    try:
        for name, (var, master) in hubs.items():
            wait_for(
                lambda: "Application startup complete" in (tmp_path / f"{name}.log").read_text(),
                120,
                f"hub {name} serving",
                lambda: (tmp_path / f"{name}.log").read_text(),
            )
        for name, (var, master) in hubs.items():
            asked = subprocess.run(
                [str(VENV_BIN / "gunicornc"), "-s", str(var / "gunicorn.ctl"), "-c", "show workers", "-j"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert asked.returncode == 0, asked.stdout + asked.stderr
            pids = {w["pid"] for w in json.loads(asked.stdout)["workers"]}
            assert pids == {c.pid for c in psutil.Process(master.pid).children()}, (name, asked.stdout)
    finally:
        for var, master in hubs.values():
            master.terminate()
        for var, master in hubs.values():
            master.wait(timeout=60)


def test_manage_py_prints_no_axes_banner(tmp_path):
    """django-axes logged "AXES: BEGIN version …" at every manage.py call and process start."""
    env = runtime_env(tmp_path / "var")
    done = subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "AXES" not in done.stdout + done.stderr, done.stdout + done.stderr
