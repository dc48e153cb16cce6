"""Test settings: the real ones, with a private var/ and fast flushing."""

import os
import tempfile

os.environ["HUB_VAR_DIR"] = tempfile.mkdtemp(prefix="hub-test-")
os.environ.setdefault("HUB_METERING_FLUSH_SECONDS", "0.01")
os.environ.setdefault("HUB_ENCRYPTION_KEYS", "TEvbH2QyLzLaPzbmz7j4Hq7m-3aGQ7ydvrbqM8sC8vE=")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")

from hub.settings import *  # noqa: F403
from hub.settings import DATABASES, VAR_DIR

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not shared-cache memory: the live server's threads need real locking.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

# Tests serve static files from the apps' folders (finders), not collectstatic's output.
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
HUB_FETCH_ALLOW_PRIVATE = True  # test images are served on loopback
# The test process is not a server: its live hub's startup must not freeze every test's objects out of the
# collector. Served processes (gunicorn, uvicorn) keep the default; tests/test_gc_tuning.py checks both.
HUB_GC_FREEZE = False
CELERY_TASK_EAGER_PROPAGATES = True
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
