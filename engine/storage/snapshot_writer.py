"""The snapshot writer process: signs a packed snapshot and writes it to Redis, outside the
serving process.

Why a process: a checkpoint moves ~70 MB (100k users + 100k items, 32 factors). Written
from a thread of the serving process, every chunk hands the GIL back and forth with the
event loop, and each handoff can stall ``/recommend`` for a scheduler tick (measured:
server-side p99 2.7 ms -> 7-18 ms during checkpoints; more handoffs, worse). Forking a
writer per checkpoint (Redis's BGSAVE pattern) pauses a ~0.5 GB Python heap ~10 ms and
then pays copy-on-write faults. So the serving process only packs the model into a
shared-memory buffer (GIL-free memcpys, under its write lock), and this long-lived helper,
started once with ``python -m engine.storage.snapshot_writer`` at nice 10, does the rest: HMAC,
paced ``SETRANGE`` chunks. The parent waits for one line on a pipe.

Protocol (JSON lines): the parent sends ``{"path", "size", "redis_url", "blob_key", "key"
(hex HMAC key), "pace_mb_s"}`` on the helper's stdin (never argv or the environment, which
other users can read); the helper answers ``{"signature", "ms"}`` or ``{"error"}``. The
helper exits when its stdin closes (the parent exited or was killed).
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import redis.exceptions

from engine.core.snapshot_codec import SnapshotError, sign, signature
from engine.storage.snapshot_store import blob_client, write_blob

log = logging.getLogger("freshrec.snapshot_writer")

_SHM_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


class SnapshotWriter:
    """Parent side: a shared buffer to pack snapshots into, and the helper process that
    signs and writes them.

    Args:
        redis_url: where the helper writes (its own connection).
        key: HMAC key for the signature.
        pace_mb_s: write pace (MB/s; 0 = unpaced).
        timeout_s: a write that takes longer kills the helper and fails.
    """

    def __init__(self, redis_url: str, key: bytes, pace_mb_s: float = 0.0, timeout_s: float = 60.0) -> None:
        self.redis_url = redis_url
        self.key = key
        self.pace_mb_s = pace_mb_s
        self.timeout_s = timeout_s
        self._proc: subprocess.Popen | None = None
        self._path: str | None = None
        self._fd: int | None = None
        self._map: mmap.mmap | None = None

    def buffer(self, size: int) -> np.ndarray:
        """A writable uint8 view (>= ``size`` bytes) of the shared buffer, grown by 25 %
        headroom when too small (``engine.core.snapshot_codec.pack``'s ``alloc``)."""
        if self._map is None or len(self._map) < size:
            self._release_buffer()
            fd, path = tempfile.mkstemp(prefix="freshrec-snapshot-", dir=_SHM_DIR)
            os.ftruncate(fd, size + size // 4)
            self._map = mmap.mmap(fd, size + size // 4)
            if os.path.isdir("/proc/self/fd"):
                # unlinked at once, reached by the helper through our open descriptor: a
                # kill -9 of this process leaves nothing behind in /dev/shm
                os.unlink(path)
                self._fd, self._path = fd, f"/proc/{os.getpid()}/fd/{fd}"
            else:
                os.close(fd)
                self._path = path
        return np.frombuffer(self._map, dtype=np.uint8)

    def release_pages(self) -> None:
        """Give the buffer's memory back (its size stays): the pages are freed from the
        shared-memory file (``madvise(MADV_REMOVE)``), so between checkpoints this process
        holds no snapshot-sized buffer and its RSS does not track the snapshot's size; the
        next ``pack`` faults fresh zero pages in its worker thread (GIL released). Measured
        cost at 63 MB (``load/bench_checkpoint.py``): ~65 ms more per checkpoint and a
        client-side ``/recommend`` p99 during checkpoints of ~15 ms instead of ~9 ms; without
        it the process keeps a buffer as large as the latest snapshot, which grows as the
        model learns. Call it once the helper has written the buffer. A no-op where the
        kernel or file system cannot free them."""
        if self._map is not None and hasattr(mmap, "MADV_REMOVE"):
            try:
                self._map.madvise(mmap.MADV_REMOVE)
            except OSError as exc:
                log.debug("snapshot buffer pages not released: %s", exc)

    def start(self) -> None:
        """Start the helper now (about 0.3 s of interpreter start-up that the first
        checkpoint would otherwise pay)."""
        self._helper()

    def write(self, size: int, blob_key: str) -> tuple[str, float]:
        """Have the helper sign the first ``size`` bytes of the buffer and write them to
        ``blob_key``; blocks (call it from a worker thread). Returns (hex signature, helper
        ms).

        Raises:
            redis.exceptions.RedisError: the helper's write met this Redis error (same class
                and message, so an outage is retried as one).
            engine.core.snapshot_codec.SnapshotError: the helper failed otherwise, died or
                timed out.
        """
        proc = self._helper()
        request = {"path": self._path, "size": size, "redis_url": self.redis_url, "blob_key": blob_key,
                   "key": self.key.hex(), "pace_mb_s": self.pace_mb_s}
        try:
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], self.timeout_s)
            line = proc.stdout.readline() if ready else b""
        except OSError as exc:
            self._stop_helper()
            raise SnapshotError(f"snapshot writer process failed: {exc}") from exc
        if not line:
            self._stop_helper()
            raise SnapshotError("snapshot writer process died or timed out")
        reply = json.loads(line)
        if "error" in reply:
            redis_error = getattr(redis.exceptions, reply.get("type", ""), None)
            if isinstance(redis_error, type) and issubclass(redis_error, redis.exceptions.RedisError):
                raise redis_error(reply["message"])  # a Redis outage in the helper is an outage here too
            raise SnapshotError(f"snapshot writer: {reply['error']}")
        return reply["signature"], reply["ms"]

    def close(self) -> None:
        """Stop the helper and remove the shared buffer."""
        self._stop_helper()
        self._release_buffer()

    def _helper(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            root = str(Path(__file__).resolve().parents[2])
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
            self._proc = subprocess.Popen([sys.executable, "-m", "engine.storage.snapshot_writer"], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, env=env, close_fds=True)
        return self._proc

    def _stop_helper(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc is not None:
            for pipe in (proc.stdin, proc.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass

    def _release_buffer(self) -> None:
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a view is still alive somewhere: the map goes with it
                pass
            self._map = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        elif self._path is not None:
            try:
                os.unlink(self._path)
            except FileNotFoundError:
                pass
        self._path = None


def serve(stdin, stdout) -> None:
    """Helper side: answer write requests until ``stdin`` closes."""
    clients = {}
    for line in stdin:
        t0 = time.perf_counter()
        try:
            req = json.loads(line)
            with open(req["path"], "rb") as f:
                # private copy-on-write mapping: the MAC goes into our pages, not the shared file
                view = mmap.mmap(f.fileno(), req["size"], access=mmap.ACCESS_COPY)
            blob = np.frombuffer(view, dtype=np.uint8)
            sign(blob, bytes.fromhex(req["key"]))
            client = clients.get(req["redis_url"]) or clients.setdefault(req["redis_url"], blob_client(req["redis_url"]))
            write_blob(client, req["blob_key"], blob, req["pace_mb_s"] * 1e6)
            reply = {"signature": signature(blob), "ms": (time.perf_counter() - t0) * 1000.0}
            del blob
            view.close()
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
            message = str(exc)
            code = getattr(exc, "status_code", None)  # redis-py strips e.g. "OOM" from the reply
            if code and not message.startswith(code):
                message = f"{code} {message}"
            reply = {"error": f"{type(exc).__name__}: {exc}", "type": type(exc).__name__, "message": message}
        stdout.write(json.dumps(reply).encode() + b"\n")
        stdout.flush()


def main() -> None:
    """Entry point of ``python -m engine.storage.snapshot_writer``."""
    try:
        os.nice(10)  # serving keeps the CPU when cores are scarce
    except OSError:
        pass
    serve(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
