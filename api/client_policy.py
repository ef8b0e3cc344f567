"""The client's errors and retry policy (``api.client``): what a failed call raises, and
when a call is tried again."""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field
from typing import Any

RETRY_STATUS = frozenset({429, 503})
"""Answers that mean "not now, try again" (Too Many Requests, Service Unavailable)."""


class FreshrecError(Exception):
    """The server answered an error (or could not be reached: ``Unavailable``).

    Attributes:
        status_code: the HTTP status (None: no answer, the transport failed).
        detail: the ``detail`` of the server's JSON error body (a string, or FastAPI's list of
            ``{loc, msg, type}`` for a 422), else the body's text.
        method, url: the request.
    """

    def __init__(self, status_code: int | None, detail: Any, method: str, url: str) -> None:
        self.status_code = status_code
        self.detail = detail
        self.method = method
        self.url = url
        super().__init__(f"{method} {url}: {status_code if status_code is not None else 'no answer'}: {detail}")


class NotFound(FreshrecError):
    """404: no such resource, or no such endpoint on this server (``detail == "Not Found"``)."""


class MethodNotAllowed(FreshrecError):
    """405: the path exists but not with this method (a server older than the call)."""


class Unavailable(FreshrecError):
    """Retries ran out: the last answer was a 503 / 429 (``status_code``), or the transport
    failed (``status_code`` None, the httpx error as ``__cause__``).

    Attributes:
        attempts: tries made.
        retry_after: the last answer's ``Retry-After`` (s; None if absent).
    """

    def __init__(self, status_code: int | None, detail: Any, method: str, url: str, attempts: int,
                 retry_after: float | None = None) -> None:
        super().__init__(status_code, detail, method, url)
        self.attempts = attempts
        self.retry_after = retry_after


ERRORS_BY_STATUS: dict[int, type[FreshrecError]] = {404: NotFound, 405: MethodNotAllowed}


@dataclass(frozen=True)
class Retry:
    """When to try a call again (a 503 or 429 answer, or a transport failure).

    Attributes:
        attempts: tries in all, the first included (1: never retry).
        total_s: no retry whose wait would end later than this after the first try began (s).
        backoff_s: first wait when the server gives no ``Retry-After`` (s); doubled per try,
            with full jitter.
        max_backoff_s: cap of that wait (s); a ``Retry-After`` is honoured as given, within
            ``total_s``.
        seed: seeds the jitter (None: unseeded).

    Raises:
        ValueError: a negative time, or ``attempts`` < 1.
    """

    attempts: int = 5
    total_s: float = 30.0
    backoff_s: float = 0.1
    max_backoff_s: float = 5.0
    seed: int | None = None
    _rng: random.Random = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1 or min(self.total_s, self.backoff_s, self.max_backoff_s) < 0:
            raise ValueError(f"invalid retry policy {self}")
        object.__setattr__(self, "_rng", random.Random(self.seed))

    def delay(self, attempt: int, elapsed_s: float, retry_after: float | None = None) -> float | None:
        """Seconds to wait before try ``attempt + 1``, try ``attempt`` (1-based) having failed
        ``elapsed_s`` after the first began; ``retry_after``: the server's ``Retry-After``
        (s). None: give up (no tries left, or the wait would end past ``total_s``)."""
        if attempt >= self.attempts:
            return None
        if retry_after is not None:
            wait = max(0.0, retry_after)
        else:
            wait = self._rng.uniform(0.0, min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)))
        return wait if elapsed_s + wait <= self.total_s else None


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """A ``Retry-After`` header in seconds from ``now`` (unix s, default the clock):
    delta-seconds or an HTTP date; None when absent or unparseable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when - (time.time() if now is None else now))
