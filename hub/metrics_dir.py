"""The folder the processes of one server start share their Prometheus figures in (PROMETHEUS_MULTIPROC_DIR).

gunicorn's workers are separate processes, and a scrape reaches one of them: each writes its figures to files
in this folder and /metrics adds them all up (hub/metrics.py). It is made here, empty, once per start, by
hub/run.py for `make run` (so Celery's worker and beat write there too) or by hub/gunicorn.conf.py when gunicorn
runs by itself: a previous run's counts and its dead workers' gauges must not add up with this one's. No import
of prometheus_client here: it reads the variable once, when first imported, which must come after.
"""

import os
import shutil
from pathlib import Path

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def prepare(var_dir: Path) -> str:
    """The folder, `var_dir`/metrics emptied, set in this process's environment for its children.

    Set already (hub/run.py did, or the operator, who then empties it before each start): kept as it is."""
    if os.environ.get(VARIABLE):
        return os.environ[VARIABLE]
    folder = var_dir / "metrics"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ[VARIABLE] = str(folder)
    return str(folder)


def var_dir() -> Path:
    """The hub's var/ folder, as hub/settings.py finds it, for the launchers that run before Django."""
    return Path(os.environ.get("HUB_VAR_DIR") or Path(__file__).resolve().parent.parent / "var")
