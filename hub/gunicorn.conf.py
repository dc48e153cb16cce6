"""gunicorn's settings for `make run` (hub/Procfile): `gunicorn -c hub/gunicorn.conf.py hub.asgi:application`.

HUB_BIND and HUB_WORKERS come from the Makefile's HOST, PORT and WORKERS.
"""

import logging
import os
import time
from datetime import timedelta
from pathlib import Path

bind = [os.environ.get("HUB_BIND", "127.0.0.1:8000")]
workers = int(os.environ.get("HUB_WORKERS", "1"))
worker_class = "uvicorn_worker.UvicornWorker"
# Each worker listens on a socket of its own (SO_REUSEPORT) and the kernel spreads new connections over them. On
# one shared socket the first worker to wake accepted every connection a client opened at once (bench/run.py
# --scale: 32 keep-alive connections, all on one of two workers, the other idle).
reuse_port = True
# Requests in flight get this long to finish on SIGTERM; then each worker
# drains the meter (the ASGI lifespan, hub/lifecycle.py). hub/run.py waits as long.
graceful_timeout = int(os.environ.get("HUB_GRACEFUL_TIMEOUT", "30"))

# gunicorn's default control socket is one path per user ($HOME/.gunicorn/),
# which every hub on the host would share: each hub keeps its own in its var/
# (the same folder hub/settings.py uses).
_var = Path(os.environ.get("HUB_VAR_DIR") or Path(__file__).resolve().parent.parent / "var")
_var.mkdir(parents=True, exist_ok=True)
control_socket = str(_var / "gunicorn.ctl")

# The proxies whose X-Forwarded-For and -Proto uvicorn believes are the hub's HUB_TRUSTED_PROXIES, read from its
# settings as the hub reads them (accounts/addresses.py), so server and hub agree on the client's address and
# scheme. Empty: nobody's, where uvicorn's own default would trust 127.0.0.1.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
from django.conf import settings  # noqa: E402 - after the settings module is named

forwarded_allow_ips = ",".join(settings.HUB_TRUSTED_PROXIES)

from hub import metrics_dir  # noqa: E402 - the same; it imports nothing of the hub

# Before any worker starts, and before prometheus_client is imported (it reads the folder once): each worker
# writes its Prometheus figures there, and /metrics adds them up (hub/metrics.py).
metrics_dir.prepare(_var)
from prometheus_client import multiprocess  # noqa: E402 - after the folder is set

# Time, client, request line, status, bytes sent, duration in seconds and the
# request id (the usage record's). uvicorn's worker logs its own fixed line
# instead of gunicorn's format, so the line is written by access_logged() below.
accesslog = "-"
access_log_format = '%(t)s %(h)s "%(r)s" %(s)s %(b)s %(L)ss %({x-request-id}o)s'


def child_exit(server, worker):
    # A worker gone (stopped, crashed, killed): its in-flight and queue gauges stop counting; its counters stay.
    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    # worker.wsgi is the loaded ASGI application; uvicorn's own access line is turned off.
    logging.getLogger("uvicorn.access").handlers = []
    worker.wsgi = access_logged(worker.wsgi, worker.log)


class _Response:
    def __init__(self):
        self.status = "-"
        self.headers = []
        self.sent = 0


# Request headers that may reach the log (the format can name any): never the credentials.
_LOGGED_HEADERS = {b"user-agent", b"referer", b"x-forwarded-for", b"content-type", b"content-length"}


def access_logged(app, log):
    """The ASGI app, writing one access line per HTTP request through gunicorn's logger when it ends."""

    async def logged(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        started = time.monotonic()
        response = _Response()

        async def counting_send(message):
            if message["type"] == "http.response.start":
                response.status = message["status"]
                response.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", ())]
            elif message["type"] == "http.response.body":
                response.sent += len(message.get("body", b""))
            await send(message)

        try:
            await app(scope, receive, counting_send)
        finally:
            headers = [
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", ()) if k in _LOGGED_HEADERS
            ]
            query = scope.get("query_string", b"").decode("latin-1")
            path = scope.get("raw_path", b"").decode("latin-1") or scope["path"]
            environ = {
                "REQUEST_METHOD": scope["method"],
                "RAW_URI": f"{path}?{query}" if query else path,
                "PATH_INFO": scope["path"],
                "QUERY_STRING": query,
                "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
                "REMOTE_ADDR": (scope.get("client") or ("-",))[0],
                **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers},
            }
            log.access(response, headers, environ, timedelta(seconds=time.monotonic() - started))

    return logged
