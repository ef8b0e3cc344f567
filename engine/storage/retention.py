"""Which snapshots to keep: the retention policy, and the metadata it decides on."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SnapshotInfo:
    """Metadata of one snapshot (JSON in the ``{prefix}:snapshots`` hash).

    version: increasing integer. created_at: unix s. events_learned: events applied when it
    was taken. last_event_id: stream id of the last applied event (recovery replays entries
    after it). signature: hex HMAC-SHA256 of the blob (a keyed checksum). size: bytes. verdict: guard / lifecycle
    verdict ("ok", "restored from vN", ...).
    """

    version: int
    created_at: float
    events_learned: int
    last_event_id: str | None
    signature: str
    size: int
    verdict: str = "ok"
    note: dict = field(default_factory=dict)


@dataclass
class Retention:
    """Which snapshots to keep: the newest ``recent``, plus the newest of every hour for the
    last ``hours`` hours, all within ``max_bytes`` in total (oldest dropped first; the
    newest is always kept). Defaults keep >= 24 h of history at any checkpoint interval."""

    recent: int = 10
    hours: float = 25.0
    max_bytes: int = 2 * 1024**3

    def keep(self, infos: list[SnapshotInfo], now: float) -> set[int]:
        """Versions to keep out of ``infos`` (any order)."""
        newest_first = sorted(infos, key=lambda i: i.version, reverse=True)
        kept = {i.version for i in newest_first[: max(1, self.recent)]}
        hourly: set[int] = set()
        for info in newest_first:
            age_h = (now - info.created_at) / 3600.0
            if age_h <= self.hours and int(info.created_at // 3600) not in hourly:
                hourly.add(int(info.created_at // 3600))
                kept.add(info.version)
        total = 0
        final = set()
        for info in newest_first:
            if info.version in kept and (not final or total + info.size <= self.max_bytes):
                final.add(info.version)
                total += info.size
        return final
