"""A small typed client of freshrec's HTTP API, on httpx: ``Client`` (sync) and
``AsyncClient`` (asyncio), with the same methods.

    from api.client import Client

    with Client("http://127.0.0.1:8000", api_key="...") as fr:
        slate = fr.recommend("alice", k=5)
        fr.feedback("alice", slate.items[0].item_id, "click", recommendation_id=slate.recommendation_id)

Bodies are built and checked with the server's own pydantic models (``api.schemas``), so a
malformed call raises ``pydantic.ValidationError`` before anything is sent.

Retries (``api.client_policy.Retry``; default 5 tries within 30 s): a 503 or 429 answer, and
a transport failure (connection refused or reset, a timeout), are tried again, waiting what
the answer's ``Retry-After`` says (seconds or an HTTP date) or, without one, an exponential
backoff with jitter; at most ``attempts`` tries and no wait that would end past ``total_s``
after the first try. Then ``Unavailable`` is raised. Feedback is safe to retry: every event
carries an ``event_key`` (the caller's, or a uuid4 drawn once per event and reused by every
retry), and the server appends a key once within its ``dedup_window_s`` (24 h by default),
answering a repeat with the original event id. Other error answers raise ``FreshrecError``
(``NotFound`` for 404, ``MethodNotAllowed`` for 405, e.g. a server without that endpoint)
with the server's JSON ``detail``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx

from api.client_policy import (ERRORS_BY_STATUS, RETRY_STATUS, FreshrecError, MethodNotAllowed, NotFound, Retry,
                               Unavailable, retry_after_s)
from api.schemas import (FeedbackAccepted, FeedbackBatch, FeedbackBatchAccepted, FeedbackRequest, ItemRequest,
                         RecommendRequest, RecommendResponse)

__all__ = ["AsyncClient", "Client", "FreshrecError", "MethodNotAllowed", "NotFound", "Retry", "Unavailable"]

_RETRY_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)

Events = Iterable[FeedbackRequest | Mapping[str, Any]]


class _Call(NamedTuple):
    """One API call: the request, and how a successful answer becomes the result."""

    method: str
    path: str
    parse: Callable[[httpx.Response], Any]
    body: dict | None = None
    params: dict | None = None


# ------------------------------------------------------------------ the calls

def _json(response: httpx.Response) -> Any:
    return None if response.status_code == 204 or not response.content else response.json()


def _model(cls) -> Callable[[httpx.Response], Any]:
    return lambda response: cls.model_validate_json(response.content)


def _dump(model) -> dict:
    return model.model_dump(mode="json", exclude_none=True)


def _segment(value: str) -> str:
    return quote(value, safe="")


def _keyed(item: FeedbackRequest | Mapping[str, Any]) -> FeedbackRequest:
    """A feedback body with an ``event_key`` (a fresh uuid4 when it has none)."""
    body = item if isinstance(item, FeedbackRequest) else FeedbackRequest.model_validate(item)
    return body if body.event_key else body.model_copy(update={"event_key": str(uuid.uuid4())})


def _recommend(user_id, k, exclude, context) -> _Call:
    body = RecommendRequest(user_id=user_id, k=k, exclude=list(exclude), context=dict(context or {}))
    return _Call("POST", "/recommend", _model(RecommendResponse), _dump(body))


def _feedback(user_id, item_id, event, value, recommendation_id, timestamp, context, event_key) -> _Call:
    body = _keyed(FeedbackRequest(user_id=user_id, item_id=item_id, event=event, value=value,
                                  recommendation_id=recommendation_id, timestamp=timestamp,
                                  context=None if context is None else dict(context), event_key=event_key))
    return _Call("POST", "/feedback", _model(FeedbackAccepted), _dump(body))


def _feedback_batch(events: Events) -> _Call:
    body = FeedbackBatch(events=[_keyed(e) for e in events])
    return _Call("POST", "/feedback/batch", _model(FeedbackBatchAccepted), _dump(body))


def _put_item(item_id, title, tags, hidden) -> _Call:
    body = ItemRequest(title=title, tags=list(tags), hidden=hidden)
    return _Call("PUT", f"/items/{_segment(item_id)}", _model(FeedbackAccepted), _dump(body))


def _similar(item_id, k) -> _Call:
    return _Call("GET", f"/items/{_segment(item_id)}/similar", _json, params={"k": k})


def _trending(k, tag) -> _Call:
    return _Call("GET", "/trending", _json, params={"k": k} if tag is None else {"k": k, "tag": tag})


def _delete_user(user_id) -> _Call:
    return _Call("DELETE", f"/users/{_segment(user_id)}", _json)


def _request(method, path, json, params) -> _Call:
    return _Call(method.upper(), path, _json, json, None if params is None else dict(params))


# ------------------------------------------------------------------ answers

def _headers(api_key: str | None, headers: Mapping[str, str] | None) -> dict[str, str]:
    out = {"user-agent": "freshrec-client/0.1", **(headers or {})}
    if api_key:
        out["authorization"] = f"Bearer {api_key}"
    return out


def _error(response: httpx.Response, cls: type[FreshrecError] | None = None, **extra) -> FreshrecError:
    """The error for an answer: its JSON ``detail`` (else its text), typed by status."""
    try:
        body = response.json()
        detail = body.get("detail", body) if isinstance(body, dict) else body
    except ValueError:
        detail = response.text
    cls = cls or ERRORS_BY_STATUS.get(response.status_code, FreshrecError)
    return cls(response.status_code, detail, response.request.method, str(response.request.url), **extra)


class _Attempts:
    """The retry loop's bookkeeping for one call: what to do after each try."""

    def __init__(self, retry: Retry, call: _Call, url: str) -> None:
        self.retry, self.call, self.url = retry, call, url
        self.start = time.monotonic()
        self.attempt = 0

    def failed(self, exc: Exception) -> float:
        """The wait after a transport failure. Raises ``Unavailable`` when out of retries."""
        wait = self.retry.delay(self.attempt, time.monotonic() - self.start)
        if wait is None:
            raise Unavailable(None, f"{type(exc).__name__}: {exc}", self.call.method, self.url, self.attempt) from exc
        return wait

    def answered(self, response: httpx.Response) -> tuple[bool, Any]:
        """``(True, result)`` for a final answer, ``(False, wait)`` for a 503 / 429 to retry.
        Raises ``FreshrecError`` for an error answer, ``Unavailable`` when out of retries."""
        if response.status_code not in RETRY_STATUS:
            if response.is_error:
                raise _error(response)
            return True, self.call.parse(response)
        after = retry_after_s(response.headers.get("retry-after"))
        wait = self.retry.delay(self.attempt, time.monotonic() - self.start, after)
        if wait is None:
            raise _error(response, Unavailable, attempts=self.attempt, retry_after=after)
        return False, wait


# ------------------------------------------------------------------ the clients

class Client:
    """Synchronous client (``httpx.Client``). Use it as a context manager, or ``close`` it.

    Args:
        base_url: the server, e.g. ``http://127.0.0.1:8000``.
        api_key: sent as ``Authorization: Bearer <api_key>``.
        timeout: of each try: connect, read, write, pool (s).
        retry: the retry policy (default ``Retry()``: 5 tries within 30 s).
        headers: more headers for every request.
        **httpx_kwargs: passed to ``httpx.Client`` (e.g. ``transport``, ``event_hooks``).

    Every method raises ``Unavailable`` when retries run out, ``FreshrecError`` (``NotFound``,
    ``MethodNotAllowed``) for any other error answer, and ``pydantic.ValidationError`` for
    arguments the server's schemas refuse (nothing is sent).
    """

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 10.0,
                 retry: Retry | None = None, headers: Mapping[str, str] | None = None, **httpx_kwargs) -> None:
        self.retry = retry or Retry()
        self._http = httpx.Client(base_url=base_url, timeout=timeout, headers=_headers(api_key, headers),
                                  **httpx_kwargs)

    def recommend(self, user_id: str, k: int = 10, exclude: Iterable[str] = (),
                  context: Mapping[str, Any] | None = None) -> RecommendResponse:
        """``POST /recommend``: the top ``k`` (1..100) items for ``user_id``, none of
        ``exclude``, in ``context`` (at most 16 ``key: value`` pairs)."""
        return self._call(_recommend(user_id, k, exclude, context))

    def feedback(self, user_id: str, item_id: str, event: str, value: float | None = None,
                 recommendation_id: str | None = None, timestamp: float | None = None,
                 context: Mapping[str, Any] | None = None, event_key: str | None = None) -> FeedbackAccepted:
        """``POST /feedback``: one event (``event``: a type of the server's schema; ``value``:
        a rating's; ``timestamp``: event time, unix s), answered once durable. ``event_key``
        names the event across retries (default: a fresh uuid4)."""
        return self._call(_feedback(user_id, item_id, event, value, recommendation_id, timestamp, context, event_key))

    def feedback_batch(self, events: Events) -> FeedbackBatchAccepted:
        """``POST /feedback/batch``: 1..1000 events (``FeedbackRequest`` or dicts of its
        fields), durable all together or not at all; each gets an ``event_key`` if it has none."""
        return self._call(_feedback_batch(events))

    def put_item(self, item_id: str, title: str | None = None, tags: Iterable[str] = (),
                 hidden: bool = False) -> FeedbackAccepted:
        """``PUT /items/{item_id}``: add or update a catalogue item (``hidden``: never
        recommended)."""
        return self._call(_put_item(item_id, title, tags, hidden))

    def similar(self, item_id: str, k: int = 10) -> Any:
        """``GET /items/{item_id}/similar?k=``: items like ``item_id`` (the server's JSON).
        ``NotFound`` from a server without the endpoint."""
        return self._call(_similar(item_id, k))

    def trending(self, k: int = 10, tag: str | None = None) -> Any:
        """``GET /trending?k=&tag=``: what is popular now, within ``tag`` if given (the
        server's JSON). ``NotFound`` from a server without the endpoint."""
        return self._call(_trending(k, tag))

    def delete_user(self, user_id: str) -> Any:
        """``DELETE /users/{user_id}``: forget a user (the server's JSON; None for 204).
        ``NotFound`` or ``MethodNotAllowed`` from a server without the endpoint."""
        return self._call(_delete_user(user_id))

    def model(self) -> dict[str, Any]:
        """``GET /model``: model version, events learned, stream lag, freshness, guard, sizes."""
        return self._call(_request("GET", "/model", None, None))

    def request(self, method: str, path: str, json: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        """Any other endpoint, with the same retries and errors: the answer's JSON (None when
        empty)."""
        return self._call(_request(method, path, json, params))

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def _call(self, call: _Call) -> Any:
        tries = _Attempts(self.retry, call, str(self._http.base_url.join(call.path)))
        while True:
            tries.attempt += 1
            try:
                response = self._http.request(call.method, call.path, json=call.body, params=call.params)
            except _RETRY_ERRORS as exc:
                wait = tries.failed(exc)
            else:
                done, value = tries.answered(response)
                if done:
                    return value
                wait = value
            self._sleep(wait)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncClient:
    """Asyncio client (``httpx.AsyncClient``): ``Client``'s methods, as coroutines, with the
    same arguments, retries and errors. Use it with ``async with``, or ``await aclose()``."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 10.0,
                 retry: Retry | None = None, headers: Mapping[str, str] | None = None, **httpx_kwargs) -> None:
        self.retry = retry or Retry()
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, headers=_headers(api_key, headers),
                                       **httpx_kwargs)

    async def recommend(self, user_id: str, k: int = 10, exclude: Iterable[str] = (),
                        context: Mapping[str, Any] | None = None) -> RecommendResponse:
        """``Client.recommend``."""
        return await self._call(_recommend(user_id, k, exclude, context))

    async def feedback(self, user_id: str, item_id: str, event: str, value: float | None = None,
                       recommendation_id: str | None = None, timestamp: float | None = None,
                       context: Mapping[str, Any] | None = None, event_key: str | None = None) -> FeedbackAccepted:
        """``Client.feedback``."""
        return await self._call(_feedback(user_id, item_id, event, value, recommendation_id, timestamp, context,
                                          event_key))

    async def feedback_batch(self, events: Events) -> FeedbackBatchAccepted:
        """``Client.feedback_batch``."""
        return await self._call(_feedback_batch(events))

    async def put_item(self, item_id: str, title: str | None = None, tags: Iterable[str] = (),
                       hidden: bool = False) -> FeedbackAccepted:
        """``Client.put_item``."""
        return await self._call(_put_item(item_id, title, tags, hidden))

    async def similar(self, item_id: str, k: int = 10) -> Any:
        """``Client.similar``."""
        return await self._call(_similar(item_id, k))

    async def trending(self, k: int = 10, tag: str | None = None) -> Any:
        """``Client.trending``."""
        return await self._call(_trending(k, tag))

    async def delete_user(self, user_id: str) -> Any:
        """``Client.delete_user``."""
        return await self._call(_delete_user(user_id))

    async def model(self) -> dict[str, Any]:
        """``Client.model``."""
        return await self._call(_request("GET", "/model", None, None))

    async def request(self, method: str, path: str, json: Any = None,
                      params: Mapping[str, Any] | None = None) -> Any:
        """``Client.request``."""
        return await self._call(_request(method, path, json, params))

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def _call(self, call: _Call) -> Any:
        tries = _Attempts(self.retry, call, str(self._http.base_url.join(call.path)))
        while True:
            tries.attempt += 1
            try:
                response = await self._http.request(call.method, call.path, json=call.body, params=call.params)
            except _RETRY_ERRORS as exc:
                wait = tries.failed(exc)
            else:
                done, value = tries.answered(response)
                if done:
                    return value
                wait = value
            await self._sleep(wait)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()
