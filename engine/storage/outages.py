"""Which failures of Redis mean "not now": outages a role waits out with backoff, as opposed
to errors that retrying will not cure (a wrong password, a key of the wrong type, a bug).

A role that meets an outage pauses and retries (``engine.roles.supervisor``); the API answers
503 with ``Retry-After``. Anything else is a failure: logged with its traceback, the role
restarts, and after ``ops.max_failures`` in a row it is failed.
"""

from __future__ import annotations

from redis.exceptions import (AuthenticationError, AuthorizationError, BusyLoadingError, ClusterDownError,
                              ConnectionError, OutOfMemoryError, ReadOnlyError, ResponseError, TimeoutError,
                              TryAgainError)

# Error replies whose first word says the server cannot do it now but will (redis-py maps
# some to classes; MISCONF, BUSY, NOREPLICAS and UNBLOCKED stay plain ResponseErrors):
#   LOADING     the server is loading its dataset at start (BusyLoadingError)
#   READONLY    it is a replica (failover in progress, or REPLICAOF by mistake) (ReadOnlyError)
#   MISCONF     it cannot persist (disk full, AOF/RDB write error): writes are refused
#   OOM         maxmemory reached with noeviction (OutOfMemoryError; the prefix is stripped)
#   BUSY        a script or function runs too long
#   MASTERDOWN  a replica lost its master; TRYAGAIN / CLUSTERDOWN: a cluster resharding
#   NOREPLICAS  min-replicas-to-write not met
#   UNBLOCKED   a blocking read (XREADGROUP BLOCK) was cut off because the server changed role
_NOT_NOW = ("LOADING", "READONLY", "MISCONF", "OOM", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN",
            "NOREPLICAS", "UNBLOCKED")


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` is a Redis outage (retry later) rather than a failure.

    Outages: the server unreachable or timing out (``ConnectionError`` but not an
    authentication or authorisation error, ``TimeoutError``), loading, read-only, unable to
    persist, out of memory, busy, or a cluster in transition.
    """
    if isinstance(exc, (AuthenticationError, AuthorizationError)):
        return False  # misconfiguration: retrying the same password will not help
    if isinstance(exc, (ConnectionError, TimeoutError, BusyLoadingError, ReadOnlyError, OutOfMemoryError,
                        TryAgainError, ClusterDownError)):
        return True
    if isinstance(exc, ResponseError):
        word = str(exc).split(" ", 1)[0].upper()
        return word in _NOT_NOW or getattr(exc, "status_code", None) in _NOT_NOW
    return False


def describe(exc: BaseException) -> str:
    """A one-line description of a Redis error for logs and ``/health/ready``: its class and
    message, with the reply's first word that redis-py strips (``OOM``) put back."""
    code = getattr(exc, "status_code", None)
    text = str(exc)
    if code and not text.startswith(code):
        text = f"{code} {text}"
    return f"{type(exc).__name__}: {text}"
