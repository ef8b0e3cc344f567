"""Start ``freshrec serve`` as a child process (a real uvicorn server) and wait until it
answers ``GET /health``."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A ``freshrec serve`` child process on 127.0.0.1.

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
        self.proc: subprocess.Popen | None = None

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
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"freshrec serve exited with {self.proc.returncode} (log: {self.log_path})")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            time.sleep(0.05)  # readiness poll of a child process, not test synchronisation
        self.stop()
        raise RuntimeError(f"freshrec serve not healthy after {timeout_s}s")

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (graceful: final snapshot), SIGKILL if it does not exit in time."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                print(f"freshrec serve (pid {self.proc.pid}) ignored SIGTERM for {timeout_s:.0f} s: killed "
                      f"(no graceful shutdown, no final snapshot)", file=sys.stderr)
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL, no cleanup: simulates a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
