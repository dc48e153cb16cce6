"""Put on PYTHONPATH of a process a test starts (tests/processes.py): the process
then imports only what requirements.txt installs, as in a venv made by `make run`.

The test venv also holds requirements-dev.txt, whose packages (pytest needs
`packaging`) hid that the Celery worker could not start on Redis without them.
HUB_TEST_SITE_PACKAGES is a folder of links to the runtime's part of the
venv's site-packages; it takes that site-packages' place on sys.path.
"""

import os
import sys

_runtime = os.environ.get("HUB_TEST_SITE_PACKAGES")
if _runtime:
    _real = os.path.realpath(os.environ["HUB_TEST_REAL_SITE_PACKAGES"])
    sys.path[:] = [_runtime if os.path.realpath(p) == _real else p for p in sys.path]
