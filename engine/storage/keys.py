"""Redis key names. Every key carries the hash tag ``{prefix}`` so multi-key transactions
land in one Redis Cluster slot."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Key names for one freshrec deployment (``prefix`` separates deployments)."""

    prefix: str = "freshrec"

    @property
    def tag(self) -> str:
        return "{" + self.prefix + "}"

    @property
    def feedback(self) -> str:
        """Redis Stream of accepted events (the durable log)."""
        return f"{self.tag}:feedback"

    @property
    def dead(self) -> str:
        """Redis Stream of dead letters: entries of ``feedback`` the learner could not decode,
        check or apply, each under its original id (``engine.storage.dead_letters``)."""
        return f"{self.tag}:dead"

    @property
    def schema(self) -> str:
        """String: the deployment's event schema (JSON), stored beside the stream on first start."""
        return f"{self.tag}:schema"

    @property
    def snapshot_meta(self) -> str:
        """Hash ``version -> JSON metadata`` of retained snapshots."""
        return f"{self.tag}:snapshots"

    @property
    def snapshot_current(self) -> str:
        """String: version number of the serving snapshot (the pointer)."""
        return f"{self.tag}:snapshot:current"

    @property
    def snapshot_seq(self) -> str:
        """Counter that issues snapshot version numbers."""
        return f"{self.tag}:snapshot:seq"

    def snapshot_blob(self, version: int) -> str:
        """Bytes of one snapshot."""
        return f"{self.tag}:snapshot:{version}"

    def slates(self, bucket: str) -> str:
        """Slates served in one minute (hash: recommendation id -> slate), for the
        impression join; expires after the join window."""
        return f"{self.tag}:slates:{bucket}"


LEARNER_GROUP = "learner"
