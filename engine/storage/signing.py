"""The snapshot signing key (HMAC-SHA256)."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from engine.storage.redis_server import DEFAULT_DATA_DIR

log = logging.getLogger("freshrec.signing")

KEY_FILE = "snapshot.key"


def load_key(data_dir: str | os.PathLike | None = None, key: str | None = None) -> bytes:
    """The key that signs and verifies snapshots.

    ``key`` (any string; setting ``snapshot_key``, shared by every process that reads the
    same Redis) wins. Otherwise a 32-byte random key is generated once and kept in
    ``<data_dir>/snapshot.key`` (mode 0600; ``data_dir`` defaults to ./freshrec-data),
    which is what the embedded default uses.
    """
    if key:
        return key.encode()
    directory = Path(data_dir or DEFAULT_DATA_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / KEY_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        log.warning("generated a new snapshot signing key in %s", path)
    return path.read_text().strip().encode()
