"""Idempotent appends to the feedback stream: a client-supplied event key is recorded beside
the stream entry it produced, so an event retried by a client (a 503, a lost answer, a
timeout) is appended once and every retry answers with the original event id.

One Lua script per append does, for each event in order: ``GET`` its key; if present, the
stored id is the answer and nothing is appended; otherwise ``XADD`` the entry and ``SET
key id PX window``. A script runs atomically and, once it has written, Redis runs it to the
end even past ``maxmemory`` (its first write is the only one that can be refused), so an
event is either appended with its key recorded or neither. With AOF on, the whole script's
effects are written as one MULTI/EXEC block.

Key: ``{prefix}:dedup:<event key>`` (the deployment's hash tag: one Redis Cluster slot with
the stream). The key names the event: a second event reusing a key within the window is
dropped whatever its content.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from engine.storage.keys import Keys

DEFAULT_WINDOW_S = 86_400.0
"""How long an event key is remembered by default (24 h)."""

_APPEND_ONCE = """
local window = ARGV[1]
local ids = {}
local pos = 2
while pos <= #ARGV do
  local k = tonumber(ARGV[pos])
  local first = pos + 2
  pos = first + tonumber(ARGV[pos + 1])
  local id = false
  if k > 0 then id = redis.call('GET', KEYS[k]) end
  if not id then
    id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, first, pos - 1))
    if k > 0 then redis.call('SET', KEYS[k], id, 'PX', window) end
  end
  ids[#ids + 1] = id
end
return ids
"""
# KEYS[1]: the stream; KEYS[2..]: the dedup key of each keyed event.
# ARGV[1]: window (ms); then per event: its index in KEYS (0: no key), 2 * fields, fields.


class Dedup:
    """Appends that drop an event whose key was accepted within ``window_s``.

    Args:
        keys: the deployment's key names.
        window_s: how long an accepted event key is remembered (s); 0 turns dedup off (keys
            are ignored).

    Raises:
        ValueError: ``window_s`` is negative.
    """

    def __init__(self, keys: Keys, window_s: float = DEFAULT_WINDOW_S) -> None:
        if window_s < 0:
            raise ValueError(f"dedup window_s must be >= 0, got {window_s}")
        self.keys = keys
        self.window_s = window_s
        self._script = None  # redis-py's Script: EVALSHA, EVAL again after a Redis restart

    def key(self, event_key: str) -> str:
        """The Redis key that remembers ``event_key``."""
        return f"{self.keys.tag}:dedup:{event_key}"

    def applies(self, event_keys: Sequence[str | None] | None) -> bool:
        """Whether an append with these keys goes through dedup (any key given, window > 0)."""
        return bool(self.window_s > 0 and event_keys and any(event_keys))

    async def append(self, redis: Redis, stream: str, entries: Sequence[dict[str, str]],
                     event_keys: Sequence[str | None]) -> list[str]:
        """Append ``entries`` (stream fields, in order) to ``stream`` in one script, skipping
        each one whose key (``event_keys``, None for none) is remembered; returns one id per
        entry: the new entry's, or the original's for a duplicate (a key repeated within
        the batch counts as a duplicate of its first occurrence).

        Raises:
            ValueError: ``entries`` and ``event_keys`` differ in length.
            redis.exceptions.RedisError: Redis could not run the script (nothing was
                appended and no key recorded).
        """
        if len(entries) != len(event_keys):
            raise ValueError(f"{len(entries)} entries but {len(event_keys)} event keys")
        keys = [stream]
        args: list[str | int] = [max(1, round(self.window_s * 1000))]
        for fields, event_key in zip(entries, event_keys, strict=True):
            if event_key:
                keys.append(self.key(event_key))
            args += [len(keys) if event_key else 0, 2 * len(fields)]
            for name, value in fields.items():
                args += [name, value]
        if self._script is None:
            self._script = redis.register_script(_APPEND_ONCE)
        ids = await self._script(keys=keys, args=args, client=redis)
        return [i.decode() if isinstance(i, bytes) else i for i in ids]
