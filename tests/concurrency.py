"""Running work at once from threads, as concurrent workers would, for tests of races."""

import threading

from django.db import connection


def at_once(*works, timeout: float = 60) -> list:
    """Call each of `works` in a thread of its own, released together; their results, in the order they finished.

    Each thread closes its database connection when done. The first exception
    any of them raised is raised here, once all have ended.
    """
    barrier, results, errors = threading.Barrier(len(works)), [], []

    def run(work):
        try:
            barrier.wait(10)
            results.append(work())
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(work,)) for work in works]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if errors:
        raise errors[0]
    return results
