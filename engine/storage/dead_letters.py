"""The dead-letter stream ``{prefix}:dead``: the feedback entries the learner could not use.

An entry that cannot be decoded (a missing field, bad UTF-8, a non-numeric or non-finite
number, malformed meta or context JSON), that the intake would have refused (an unknown
event type, an event time beyond its acceptance time + ``max_clock_skew_s``, ...), whose
``apply`` raised ``ValueError`` / ``KeyError``, or that crashed the learner twice in a row, is
copied here and then acknowledged, and learning goes on with the next entry.

Each dead letter is stored under the *original* entry id, with fields ``stage`` (decode,
check, apply, crash), ``error``, ``dead_at`` (unix s) and the raw fields as ``raw.<name>``.
Reusing the id makes the copy idempotent: a replay after a crash dead-letters the same
entries again, and Redis refuses an id that is not above the stream's last one, which
``add`` counts as "already there". Inspect with ``XRANGE {freshrec}:dead - +``. The stream is
capped at ``MAX_DEAD_LETTERS`` entries (approximate trimming), oldest dropped first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from engine.storage.keys import Keys

MAX_DEAD_LETTERS = 100_000
_NOT_ABOVE_TOP = "equal or smaller than the target stream top item"  # XADD with an id already passed


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A stream entry set aside.

    Attributes:
        entry_id: its id in ``{prefix}:feedback``.
        stage: ``decode`` | ``check`` | ``apply`` | ``crash``.
        error: why (the exception's message).
        fields: the raw fields as read (bytes or str keys and values).
    """

    entry_id: str
    stage: str
    error: str
    fields: dict = field(default_factory=dict)


def _text(value) -> str | bytes:
    return value if isinstance(value, (str, bytes)) else str(value)


class DeadLetters:
    """Writes and reads ``{prefix}:dead``.

    Args:
        redis: ``redis.asyncio.Redis``.
        keys: key names.
    """

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def add(self, letters: list[DeadLetter]) -> list[DeadLetter]:
        """Copy ``letters`` (in stream order) to the dead-letter stream in one round trip;
        returns those that were not there yet (a replay finds the others already copied).

        Raises:
            redis.exceptions.RedisError: Redis could not take them (nothing may be
                acknowledged; retry).
        """
        if not letters:
            return []
        now = repr(time.time())
        async with self.redis.pipeline(transaction=False) as pipe:
            for letter in letters:
                fields = {"stage": letter.stage, "error": letter.error[:1000], "dead_at": now}
                for name, value in letter.fields.items():
                    key = name.decode(errors="backslashreplace") if isinstance(name, bytes) else str(name)
                    fields[f"raw.{key}"] = _text(value)
                pipe.xadd(self.keys.dead, fields, id=letter.entry_id, maxlen=MAX_DEAD_LETTERS, approximate=True)
            results = await pipe.execute(raise_on_error=False)
        new = []
        for letter, result in zip(letters, results):
            if isinstance(result, ResponseError) and _NOT_ABOVE_TOP in str(result):
                continue  # copied before a crash: the replay finds it there
            if isinstance(result, Exception):
                raise result
            new.append(letter)
        return new

    async def list(self, count: int = 100) -> list[tuple[str, dict]]:
        """The newest ``count`` dead letters, newest first: ``(entry id, fields)``."""
        rows = await self.redis.xrevrange(self.keys.dead, "+", "-", count=count)
        return [(i.decode() if isinstance(i, bytes) else i, f) for i, f in rows]
