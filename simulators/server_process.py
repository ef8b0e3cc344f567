"""Start ``freshrec serve`` as a child process (a real uvicorn server) and wait until it
answers ``GET /health``."""

from __future__ import annotations

import sys
from pathlib import Path

from simulators.harness import Child, free_port


class ServerProcess:
    """A ``freshrec serve`` child process on 127.0.0.1 (``simulators.harness.Child``).

    Args:
        redis_url: Redis to use; None lets the server start its embedded Redis in data_dir.
        data_dir: embedded Redis directory.
        extra_args: more ``serve`` flags (e.g. ``["--snapshot-every-events", "500"]``).
        log_path: where the server's stdout/stderr go.
    """

    def __init__(self, redis_url: str | None = None, data_dir: str | Path | None = None,
                 extra_args: list[str] | tuple = (), log_path: str | Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.redis_url = redis_url
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.log_path = log_path
        self.child: Child | None = None

    @property
    def proc(self):
        """The server's ``subprocess.Popen`` (None before ``start``)."""
        return self.child.proc if self.child else None

    def start(self, timeout_s: float = 60.0) -> "ServerProcess":
        """Spawn and wait for readiness.

        Raises:
            RuntimeError: the process exited or did not become healthy within ``timeout_s``.
        """
        cmd = [sys.executable, "-m", "api.cli", "serve", "--port", str(self.port)]
        if self.redis_url:
            cmd += ["--redis-url", self.redis_url]
        if self.data_dir:
            cmd += ["--data-dir", str(self.data_dir)]
        cmd += self.extra_args
        self.child = Child(cmd, self.log_path)
        self.child.wait_http(self.url + "/health", timeout_s, status=200)
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (graceful: final snapshot), SIGKILL if it does not exit in time."""
        if self.child:
            self.child.stop(timeout_s)

    def kill(self) -> None:
        """SIGKILL, no cleanup: simulates a crash."""
        if self.child:
            self.child.kill()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
