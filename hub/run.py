"""`make run`: honcho runs hub/Procfile, and stops all of it on Ctrl-C or SIGTERM.

honcho starts each process in a session of its own, so Ctrl-C in a terminal
(SIGINT to the foreground process group) and a SIGTERM to make's process group
reach honcho alone, never gunicorn's or Celery's children directly. Three
things of honcho's are changed here:

- It signals each process's whole group. The children then get SIGTERM twice,
  once from honcho and once from their parent, and Celery's pool children die
  of it: the worker's warm shutdown then waited forever for them (killed only
  by honcho's SIGKILL). Only the main process gets the one SIGTERM, as
  systemd's KillMode=mixed does: gunicorn then stops its workers gracefully
  and Celery its pool.
- It SIGKILLs what is left 5 seconds after the first process stopped, less
  than gunicorn gives requests in flight before its workers drain the meter
  and exit; it waits for that graceful timeout and a margin instead. The
  SIGKILL still goes to each process's whole group.
- It exits 130 or 143 after a stop that Ctrl-C or SIGTERM asked for, even when
  every process stopped cleanly; then it exits 0. When a process exits by
  itself (it failed to start), honcho stops the others and exits with its code.
"""

import errno
import os
import signal
import sys

from honcho import command, compat, manager

from hub import metrics_dir

GRACEFUL_TIMEOUT = int(os.environ.setdefault("HUB_GRACEFUL_TIMEOUT", "30"))  # read by hub/gunicorn.conf.py too


class MainProcessOnly(compat.ProcessManager):
    def terminate(self, pid):
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError as e:
            if e.errno != errno.ESRCH:
                raise


class Supervisor(manager.Manager):
    returncode: int | None  # honcho's: the exit code, once a process has stopped

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._procmgr = MainProcessOnly()

    def loop(self):
        super().loop()
        stopped = [p.get("returncode") for p in self._processes.values()]
        if self.returncode in (130, 143) and stopped and all(rc == 0 for rc in stopped):
            self.returncode = 0


command.Manager = Supervisor
manager.KILL_WAIT = GRACEFUL_TIMEOUT + 5


if __name__ == "__main__":
    # One folder for the web workers' and Celery's Prometheus figures, fresh for this start (hub/metrics_dir.py).
    metrics_dir.prepare(metrics_dir.var_dir())
    command.main(["--app-root", ".", "--procfile", "hub/Procfile", "start", *sys.argv[1:]])
