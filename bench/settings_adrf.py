"""The hub's settings, with /v1/chat/completions served by an async DRF view (bench/urls_adrf.py).

Used by `bench/run.py --variant adrf` to measure what adrf's APIView costs on
the hot path compared with the plain async Django view the hub ships.
"""

from hub.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls_adrf"
