"""Who may call what: API keys with scopes, the open mode and its guard rail, and rate limits
per key shared by every replica through Redis.

**Scopes.** ``serve`` (``POST /recommend``, ``/feedback``, ``/feedback/batch``),
``catalogue`` (``PUT /items/{id}`` and the other catalogue writes), ``admin`` (the snapshot
routes; an admin key has every scope). A router or route takes ``Depends(require(scope))``.
The read-only routes (``/health``, ``/metrics``, ``/model``, ``/model/learned``, the OpenAPI
document and ``/docs``) take no scope and stay open.

**Keys.** A key is sent as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (both
declared in OpenAPI as the security schemes ``bearer`` and ``apiKey``). The setting
``api_keys`` maps keys to lists of scopes; each key is given either as
``sha256:<hex digest>`` (``python -m api.security`` prints it for the keys on its standard
input) or in plain, and plain keys are hashed when the settings load, so a running process
holds SHA-256 digests only. A presented key is hashed and compared with every stored digest
by ``hmac.compare_digest``. Keys are random secrets (``python -c "import secrets; print(secrets.token_urlsafe(32))"``),
not passwords: one SHA-256 is the right hash for them, a plain key shorter than 16
characters is refused. Keys never reach a log line or an error message: a key is named by
its id, the first 12 hex digits of its digest. ``admin_token`` (the setting from before
``api_keys``) is one more admin key.

**Open mode.** Without ``api_keys`` the server behaves as before keys existed: ``serve`` and
``catalogue`` routes answer everyone; admin routes need ``admin_token`` when it is set (403
otherwise), else answer loopback clients only, and never a request that carries a proxy's
forwarding header. ``check_exposure`` (called by ``freshrec serve``) logs one warning line
about it, and refuses to start on a non-loopback ``host`` unless ``insecure`` is set. With
``api_keys``, a loopback client has no privilege at all: a reverse proxy on the same host
makes every client look local.

**Rate limits.** ``rate_limit`` in the notation of the ``limits`` library (``100/second``,
``10/second;1000/minute``): a string is one budget per client over every scoped route, a
``{scope: limit}`` mapping one budget per scope (scopes it does not name are unlimited). A
client is its key (its key id), or in open mode its IP address as uvicorn reports it. The
counters (``limits``' sliding window counter, one Lua call per request) live in freshrec's
Redis, under ``{prefix}:ratelimit:`` inside the deployment's hash tag (``limits`` adds a
hash tag of its own after ours; Redis Cluster hashes the first), so every replica on one
Redis spends the same budget. Over budget: 429 with ``Retry-After`` (whole seconds) and a
JSON ``detail``. When Redis does not answer within ``LIMITER_TIMEOUT_S`` the request is
served unlimited (fail open), one warning is logged per outage, and the limiter is not asked
again for ``LIMITER_RETRY_S``, so an outage costs at most one timeout per second.
"""

import asyncio
import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import re
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPBearer
from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from pydantic import Secret, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from api.settings import Settings

log = logging.getLogger("freshrec.security")

Scope = Literal["serve", "catalogue", "admin"]
SCOPES: tuple[str, ...] = ("serve", "catalogue", "admin")
ADMIN = "admin"
HASH_PREFIX = "sha256:"
MIN_KEY_CHARS = 16
RATE_LIMIT_KEYS = "ratelimit"
"""Rate-limit counters are Redis keys ``{prefix}:ratelimit:...``."""
LIMITER_TIMEOUT_S = 0.25
"""Longest a request waits for the rate limiter's Redis before it is served unlimited (s)."""
LIMITER_RETRY_S = 1.0
"""After a limiter failure, requests are served unlimited for this long before Redis is asked
again (s)."""
_FORWARDED = (b"forwarded", b"x-forwarded-for", b"x-real-ip")

api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKey",
                              description="`X-API-Key: <API key>` (the same keys as `bearer`)")
"""The ``X-API-Key`` header as an OpenAPI security scheme (``ScopeCheck`` takes it as a sub-dependency)."""


# ------------------------------------------------------------------ settings helpers

def digest_of(key: str) -> str:
    """``sha256:<hex digest>`` of a key (UTF-8): the form ``api_keys`` stores."""
    return HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def _refuse(message: str) -> ValidationError:
    """A validation error for ``api_keys`` that shows no part of its input (it holds keys)."""
    return ValidationError.from_exception_data("api_keys", [InitErrorDetails(
        type=PydanticCustomError("api_keys", message), loc=(), input="(hidden)")])


def normalise_api_keys(value):
    """``api_keys`` as the settings hold it: ``{"sha256:<hex>": [scope, ...]}``, or None (open
    mode). Takes a mapping (TOML table) or its JSON text (environment); each key is
    ``sha256:<64 hex digits>`` or a plain key of at least 16 characters, hashed here; each
    value a scope or a non-empty list of ``serve``, ``catalogue``, ``admin``. An empty mapping
    is no keys.

    Raises:
        pydantic.ValidationError: malformed input; the message names an entry by its position
            or its digest's first hex digits, never by the key.
    """
    if isinstance(value, Secret):
        value = value.get_secret_value()
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise _refuse(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(value, dict):
        raise _refuse("expected a mapping of API key (or sha256:<hex digest>) to a list of scopes")
    out: dict[str, list[str]] = {}
    for n, (key, scopes) in enumerate(value.items(), start=1):
        if not isinstance(key, str) or not key:
            raise _refuse(f"entry {n}: empty key")
        if key.startswith(HASH_PREFIX):
            hexdigest = key[len(HASH_PREFIX):].lower()
            if not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
                raise _refuse(f"entry {n}: {HASH_PREFIX} must be followed by the 64 hex digits of a SHA-256 digest")
            name = HASH_PREFIX + hexdigest
        elif len(key) < MIN_KEY_CHARS:
            raise _refuse(f"entry {n}: a plain key needs at least {MIN_KEY_CHARS} characters (make one with "
                          "secrets.token_urlsafe(32))")
        else:
            name = digest_of(key)
        if isinstance(scopes, str):
            scopes = [scopes]
        if not isinstance(scopes, (list, tuple)) or not scopes:
            raise _refuse(f"entry {n} (key id {name[7:19]}): expected a non-empty list of scopes ({', '.join(SCOPES)})")
        for scope in scopes:
            if scope not in SCOPES:
                raise _refuse(f"entry {n} (key id {name[7:19]}): unknown scope {str(scope)[:20]!r}; "
                              f"scopes are {', '.join(SCOPES)}")
        out[name] = sorted(set(out.get(name, ())) | set(scopes), key=SCOPES.index)
    return out or None


def _parse_limit(text: str) -> list[RateLimitItem]:
    try:
        return parse_many(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a rate limit such as 100/second or 10/second;1000/minute") from None


def normalise_rate_limit(value):
    """``rate_limit`` as the settings hold it: None (off), a ``limits`` string (one budget per
    client over every scoped route) or ``{scope: string}`` (one budget per scope). Takes the
    string, the mapping, or the mapping's JSON text; ``off`` / empty is None.

    Raises:
        ValueError: not a rate limit, or an unknown scope.
    """
    if isinstance(value, str):
        text = value.strip()
        if not text or text.lower() in ("off", "none"):
            return None
        if not text.startswith("{"):
            _parse_limit(text)
            return text
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from None
    if isinstance(value, dict):
        for scope, text in value.items():
            if scope not in SCOPES:
                raise ValueError(f"unknown scope {scope!r}; scopes are {', '.join(SCOPES)}")
            if not isinstance(text, str):
                raise ValueError(f"{scope}: expected a string such as 100/second")
            _parse_limit(text)
    return value


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an address to bind, or a client's address) is on the loopback
    interface: ``localhost``, 127.0.0.0/8, ``::1``."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(settings: "Settings") -> None:
    """The open mode's guard rail, before ``freshrec serve`` binds: with ``api_keys`` set,
    nothing to say; without, one warning line when ``host`` is loopback (or ``insecure``).

    Raises:
        SystemExit: no ``api_keys``, a non-loopback ``host`` and not ``insecure`` (the message
            says what to do; the exit status is 1).
    """
    if settings.api_keys is not None:
        return
    where = f"{settings.host}:{settings.port}"
    if not is_loopback(settings.host) and not settings.insecure:
        raise SystemExit(
            f"freshrec: refusing to serve on {where} without API keys: in open mode anyone who reaches the port can "
            "send feedback and catalogue writes. Set api_keys (FRESHREC_API_KEYS or the TOML file), bind a loopback "
            "host (--host 127.0.0.1), or pass --insecure to serve it open anyway.")
    admin = "need admin_token" if settings.admin_token else "answer loopback clients only"
    log.warning("open mode (no api_keys): /recommend, /feedback and /items answer every client that reaches %s%s; "
                "the admin routes %s", where, " (--insecure)" if settings.insecure else "", admin)


# ------------------------------------------------------------------ the check

@dataclass(frozen=True)
class Principal:
    """Who a request is: ``client`` names it for rate limits and logs (``key:<key id>``, or
    ``ip:<address>`` in open mode), ``scopes`` what it may call."""

    client: str
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        return scope in self.scopes or ADMIN in self.scopes


_EVERYTHING = frozenset(SCOPES)


class Access:
    """The keys, the open-mode rules and the rate limits of one app (``access_of``).

    Args:
        api_keys: ``{"sha256:<hex>": [scope, ...]}`` (``normalise_api_keys``) or None: open mode.
        admin_token: the legacy admin key (plain), or None.
        rate_limit: ``normalise_rate_limit``'s value, or None.
    """

    def __init__(self, api_keys: dict[str, list[str]] | None, admin_token: str | None = None,
                 rate_limit: str | dict[str, str] | None = None) -> None:
        self.keyed = bool(api_keys)
        scopes: dict[bytes, set[str]] = {}
        for name, granted in (api_keys or {}).items():
            scopes.setdefault(bytes.fromhex(name[len(HASH_PREFIX):]), set()).update(granted)
        self.admin_token = bool(admin_token)
        if admin_token:
            scopes.setdefault(hashlib.sha256(admin_token.encode()).digest(), set()).add(ADMIN)
        self._entries = tuple((digest, Principal(f"key:{digest.hex()[:12]}", frozenset(s)))
                              for digest, s in scopes.items())
        if isinstance(rate_limit, str):
            everywhere = ("all", tuple(_parse_limit(rate_limit)))
            self._limits = {scope: everywhere for scope in SCOPES}
        else:
            self._limits = {scope: (scope, tuple(_parse_limit(text))) for scope, text in (rate_limit or {}).items()}
        self._limiter: SlidingWindowCounterRateLimiter | None = None
        self._failing = False
        self._skip_until = 0.0

    @classmethod
    def from_settings(cls, settings: "Settings") -> "Access":
        keys = settings.api_keys.get_secret_value() if settings.api_keys is not None else None
        token = settings.admin_token.get_secret_value() if settings.admin_token is not None else None
        return cls(keys, token, settings.rate_limit)

    # -------------------------------------------------------------- keys
    def lookup(self, key: str) -> Principal | None:
        """The principal of a presented key, or None: its SHA-256 digest compared with every
        stored digest in constant time (no early exit)."""
        digest = hashlib.sha256(key.encode()).digest()
        found = None
        for stored, principal in self._entries:
            if hmac.compare_digest(digest, stored):
                found = principal
        return found

    def authenticate(self, scope: str, request: Request, bearer: str | None, header_key: str | None) -> Principal:
        """Who the request is, if it may call a route of ``scope``.

        Raises:
            HTTPException: 401 (with keys: no key, an unknown key, or two different keys in
                the two headers), 403 (the key lacks the scope; in open mode: an admin route
                without the admin token, or not from a direct loopback client).
        """
        given = bearer
        if header_key:
            if given is not None and not hmac.compare_digest(given.encode(), header_key.encode()):
                raise HTTPException(status_code=401, detail="two different API keys in Authorization and X-API-Key",
                                    headers={"WWW-Authenticate": "Bearer"})
            given = header_key
        if self.keyed:
            if not given:
                raise HTTPException(status_code=401, detail="API key required: Authorization: Bearer <key> or "
                                    "X-API-Key: <key>", headers={"WWW-Authenticate": "Bearer"})
            principal = self.lookup(given)
            if principal is None:
                raise HTTPException(status_code=401, detail="unknown API key", headers={"WWW-Authenticate": "Bearer"})
            if not principal.may(scope):
                raise HTTPException(status_code=403, detail=f"this API key lacks the {scope!r} scope")
            return principal
        host = request.client.host if request.client else ""
        if scope != ADMIN:
            return Principal(f"ip:{host}", _EVERYTHING - {ADMIN})
        if self.admin_token:
            principal = self.lookup(given) if given else None
            if principal is None:
                raise HTTPException(status_code=403, detail="admin token required")
            return principal
        if not is_loopback(host) or any(name in _FORWARDED for name, _ in request.scope["headers"]):
            raise HTTPException(status_code=403, detail="admin endpoints are loopback-only without "
                                "FRESHREC_API_KEYS or FRESHREC_ADMIN_TOKEN")
        return Principal(f"ip:{host}", _EVERYTHING)

    # -------------------------------------------------------------- rate limits
    async def limit(self, scope: str, principal: Principal, request: Request) -> None:
        """Spend one request of ``principal``'s budget for ``scope`` (nothing when no limit
        applies). Fails open: Redis unreachable, failing or slower than
        ``LIMITER_TIMEOUT_S`` serves the request, logs one warning per outage, and skips
        the limiter for ``LIMITER_RETRY_S``.

        Raises:
            HTTPException: 429 with ``Retry-After`` (s, >= 1) when the budget is spent.
        """
        spec = self._limits.get(scope)
        if spec is None or (self._skip_until and time.monotonic() < self._skip_until):
            return
        bucket, items = spec
        limiter = self._limiter or self._bind(request)
        over = None
        try:
            async with asyncio.timeout(LIMITER_TIMEOUT_S):
                for item in items:
                    if not await limiter.hit(item, bucket, principal.client):
                        over = item, await limiter.get_window_stats(item, bucket, principal.client)
                        break
        except (RedisError, OSError, TimeoutError) as exc:
            self._skip_until = time.monotonic() + LIMITER_RETRY_S
            if not self._failing:
                self._failing = True
                log.warning("rate limiter: Redis failed (%s); serving without rate limits until it answers",
                            type(exc).__name__)
            return
        self._skip_until = 0.0
        if self._failing:
            self._failing = False
            log.warning("rate limiter: Redis answers again; rate limits apply")
        if over is not None:
            item, stats = over
            retry = max(1, math.ceil(stats.reset_time - time.time()))
            who = "this API key" if principal.client.startswith("key:") else "this client"
            scope_note = "" if bucket == "all" else f" ({bucket})"
            raise HTTPException(status_code=429, headers={"Retry-After": str(retry)},
                                detail=f"rate limit exceeded: {item} for {who}{scope_note}; retry after {retry} s")

    def _bind(self, request: Request) -> SlidingWindowCounterRateLimiter:
        """The limiter on the node's Redis connection pool, its keys in the node's hash tag."""
        node = request.app.state.node
        prefix = f"{node.keys.tag}:{RATE_LIMIT_KEYS}"
        storage = RedisStorage("async+redis://", implementation="redispy", key_prefix=prefix,
                               connection_pool=node.redis.connection_pool)
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        return self._limiter


def access_of(request: Request) -> Access:
    """The app's ``Access``, built from ``app.state.settings`` on first use."""
    state = request.app.state
    access = getattr(state, "access", None)
    if access is None:
        access = state.access = Access.from_settings(state.settings)
    return access


class ScopeCheck(HTTPBearer):
    """The dependency of the routes of one scope: the ``bearer`` security scheme in OpenAPI
    (with ``apiKey`` as its sub-dependency, so both are declared as alternatives), and the
    whole check: ``Access.authenticate`` then ``Access.limit``. Answers the ``Principal``.

    One dependency that reads the ``Authorization`` header itself, instead of a function over
    an ``HTTPBearer`` and an ``APIKeyHeader``: FastAPI spends ~10 us per dependency it
    resolves (measured in-process: 76 -> 63 us on a bare route).
    """

    def __init__(self, scope: Scope) -> None:
        super().__init__(auto_error=False, scheme_name="bearer", bearerFormat="API key",
                         description="`Authorization: Bearer <API key>`; scopes: `serve` (/recommend, /feedback), "
                                     "`catalogue` (/items), `admin` (/snapshots, and every scope)")
        self.scope = scope

    async def __call__(self, request: Request,
                       api_key: Annotated[str | None, Depends(api_key_scheme)] = None) -> Principal:
        scheme, _, credentials = (request.headers.get("authorization") or "").partition(" ")
        bearer = credentials.strip() if scheme.lower() == "bearer" else None
        access = access_of(request)
        principal = access.authenticate(self.scope, request, bearer or None, api_key)
        await access.limit(self.scope, principal, request)
        return principal


@functools.cache
def require(scope: Scope) -> ScopeCheck:
    """The dependency that admits a request to a route of ``scope`` and spends its rate limit
    (``Depends(require("serve"))`` on a router or a route); it answers the ``Principal``.

    Raises:
        ValueError: an unknown scope (when the router is built).
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; scopes are {', '.join(SCOPES)}")
    return ScopeCheck(scope)


def main() -> int:
    """``python -m api.security < keys.txt``: the ``sha256:<hex>`` form of each key read from
    standard input (one a line; never from the command line, which other users can read)."""
    keys = [line.strip() for line in sys.stdin if line.strip()]
    if not keys:
        print("usage: python -m api.security < keys.txt (one key a line; prints sha256:<hex digest> for api_keys)",
              file=sys.stderr)
        return 2
    for key in keys:
        print(digest_of(key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
