"""Child processes for tests, simulators and benchmarks: start one, wait until it is ready,
stop its whole process group, collect its log; plus free ports and resident memory.

Used by ``simulators.server_process`` (``freshrec serve``), ``tests.redis_proc``
(redis-server) and ``load/`` (bare apps, replicas, chantilly).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def project_env(**extra: str) -> dict[str, str]:
    """This process's environment with the project on ``PYTHONPATH`` and one BLAS thread
    (two cores are shared by everything here), plus ``extra``."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def rss_mb(pid: int | None = None, field: str = "VmRSS") -> float:
    """Resident memory of process ``pid`` (default: this one) in MB: ``VmRSS`` (all), or one
    of its parts ``RssAnon`` (heap) / ``RssShmem`` (shared memory).

    Raises:
        RuntimeError: the process has no such field (or is gone).
    """
    for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no {field} for pid {pid}")


class Child:
    """One child process in a session of its own, so ``stop`` reaches every process it
    started (a uvicorn master and its workers, a server and its snapshot writer).

    Args:
        cmd: argv.
        log_path: where its stdout and stderr go (appended); None discards them.
        env: environment (default ``project_env()``).
        cwd: working directory.
    """

    alive: list["Child"] = []

    def __init__(self, cmd: list[str], log_path: str | Path | None = None, env: dict | None = None,
                 cwd: str | None = None) -> None:
        self.cmd = cmd
        self.log_path = log_path
        self._log = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env or project_env(),
                                     cwd=cwd, start_new_session=True)
        Child.alive.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, ready: Callable[[], bool], timeout_s: float = 60.0, what: str = "ready") -> "Child":
        """Poll ``ready()`` until it returns True (exceptions count as not yet).

        Raises:
            RuntimeError: the process exited, or was not ready within ``timeout_s`` (it is
                stopped first).
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.cmd[0]} exited with {self.proc.returncode} before {what} "
                                   f"(log: {self.log_path})")
            with contextlib.suppress(Exception):
                if ready():
                    return self
            time.sleep(0.05)  # readiness poll of a child process, not test synchronisation
        self.stop()
        raise RuntimeError(f"{self.cmd[0]} not {what} after {timeout_s:.0f} s (log: {self.log_path})")

    def wait_http(self, url: str, timeout_s: float = 30.0, status: int | None = None) -> "Child":
        """``wait_ready`` for an HTTP server: until ``GET url`` answers (with ``status``, if
        given)."""
        import httpx

        def answered() -> bool:
            code = httpx.get(url, timeout=1.0).status_code
            return status is None or code == status

        return self.wait_ready(answered, timeout_s, f"answering {url}")

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM to the process group (graceful), SIGKILL to it if the leader does not exit
        in time; whatever else is left in the group gets SIGKILL too."""
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                print(f"{self.cmd[0]} (pid {self.proc.pid}) ignored SIGTERM for {timeout_s:.0f} s: killed",
                      file=sys.stderr)
                self._signal(signal.SIGKILL)
                self.proc.wait()
        self._signal(signal.SIGKILL)  # stragglers of the group (workers, helpers)
        self._close()

    def kill(self) -> None:
        """SIGKILL to the leader only, no cleanup: a crash (its helpers see their pipe close)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close()

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def _close(self) -> None:
        if self._log is not subprocess.DEVNULL and not self._log.closed:
            self._log.close()
        with contextlib.suppress(ValueError):
            Child.alive.remove(self)

    @classmethod
    def stop_all(cls) -> None:
        """Stop every child still alive (end of a benchmark)."""
        for child in list(cls.alive):
            child.stop()
