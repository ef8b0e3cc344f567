"""The Python client (``api.client``): against a real server on a real redis-server, and its
retry policy on httpx's own test transport (429s and Retry-After dates, which the server
never sends)."""

import asyncio
import json
import os
import signal
import threading
import time
import uuid
from email.utils import formatdate

import httpx
import pydantic
import pytest

from api.client import AsyncClient, Client, FreshrecError, MethodNotAllowed, NotFound, Retry, Unavailable
from simulators.server_process import ServerProcess

STREAM = "{freshrec}:feedback"


def wait_until(condition, timeout_s: float = 30.0, what: str = "the condition") -> None:
    """Bounded polling of ``condition``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)


def clicks_in_stream(redis_server) -> list[tuple[str, bytes]]:
    client = redis_server.client()
    try:
        return [(i.decode(), f[b"i"]) for i, f in client.xrange(STREAM) if f[b"k"] == b"click"]
    finally:
        client.close()


@pytest.fixture
def server(redis_server, tmp_path):
    with ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "server.log",
                       extra_args=["--dedup-window-s", "60"]) as srv:
        yield srv


# ------------------------------------------------------------------ a real server

def test_sync_and_async_clients_call_the_api_and_parse_its_answers(server):
    with Client(server.url) as fr:
        fr.put_item("a", title="A", tags=["drama"])
        fr.feedback_batch([{"user_id": "u1", "item_id": "b", "event": "click", "timestamp": 1000},
                           {"user_id": "u2", "item_id": "b", "event": "rating", "value": 9, "timestamp": 1001}])
        last = fr.feedback("u3", "b", "click", timestamp=1002, context={"device": "mobile"})
        assert fr.request("GET", "/model/learned", params={"event_id": last.event_id, "timeout_ms": 10_000})["learned"]
        slate = fr.recommend("alice", k=2, exclude=["a"])
        assert [i.item_id for i in slate.items] == ["b"] and slate.model_version == 4
        assert fr.model()["events_learned"] == 4

    async def async_calls():
        async with AsyncClient(server.url) as fr:
            accepted = await fr.feedback("alice", "b", "click", recommendation_id=slate.recommendation_id)
            learned = await fr.request("GET", "/model/learned", params={"event_id": accepted.event_id,
                                                                        "timeout_ms": 10_000})
            return learned, await fr.recommend("alice", k=2), await fr.model()

    learned, second, model = asyncio.run(async_calls())
    assert learned["learned"] and model["events_learned"] == 5
    assert "b" not in [i.item_id for i in second.items]  # alice clicked it


def test_error_answers_raise_typed_errors_with_the_servers_detail(server):
    with Client(server.url) as fr:
        with pytest.raises(FreshrecError) as bad:
            fr.feedback("u", "i", "purchase")
        assert bad.value.status_code == 422 and bad.value.detail[0]["loc"][-1] == "event"
        with pytest.raises(NotFound) as missing:
            fr.request("GET", "/no-such-endpoint")
        assert missing.value.status_code == 404 and missing.value.detail == "Not Found"
        with pytest.raises(MethodNotAllowed):
            fr.request("DELETE", "/recommend")
        with pytest.raises(pydantic.ValidationError):  # refused before anything is sent
            fr.recommend("u", k=0)


def test_a_repeated_event_key_within_the_window_answers_the_original_id(server, redis_server):
    body = {"user_id": "u", "item_id": "i", "event": "click", "event_key": "key-1"}
    with httpx.Client(base_url=server.url) as http:
        first = http.post("/feedback", json=body).json()["event_id"]
        again = http.post("/feedback", json=body).json()["event_id"]
        batch = http.post("/feedback/batch", json={"events": [body, {**body, "event_key": "key-2"}]}).json()
    assert again == first and batch["event_ids"][0] == first and batch["event_ids"][1] != first
    assert [i for i, _ in clicks_in_stream(redis_server)] == [first, batch["event_ids"][1]]
    ttl_ms = redis_server.client().pttl("{freshrec}:dedup:key-1")
    assert 55_000 < ttl_ms <= 60_000  # --dedup-window-s 60 reached the intake


def test_retries_across_a_redis_outage_deliver_each_event_exactly_once(server, redis_server):
    statuses: list[int] = []
    results: list[str] = []
    n_events = 40

    def send():
        with Client(server.url, timeout=5, retry=Retry(attempts=500, total_s=120, seed=1),
                    event_hooks={"response": [lambda r: statuses.append(r.status_code)]}) as fr:
            for n in range(n_events):
                results.append(fr.feedback(f"u{n % 7}", f"i{n}", "click", timestamp=1000 + n).event_id)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        wait_until(lambda: len(results) >= 10, what="10 events accepted")
        redis_server.kill()
        wait_until(lambda: 503 in statuses, what="a 503 while Redis is down")
        redis_server.restart()
    finally:
        sender.join(180)
    assert not sender.is_alive()
    assert len(results) == n_events and len(set(results)) == n_events
    stream = clicks_in_stream(redis_server)
    assert sorted(i for i, _ in stream) == sorted(results)  # each event once, every id the one answered
    assert sorted(item for _, item in stream) == sorted(f"i{n}".encode() for n in range(n_events))


def test_a_retry_after_a_lost_answer_appends_the_event_once(server, redis_server):
    """Redis stalls (SIGSTOP): the first try is taken but its answer is too late (client
    timeout), the client retries with the same event_key; the stream gets one entry and the
    client the id of that entry."""
    sent: list[httpx.Request] = []
    answer: dict = {}

    def send():
        with Client(server.url, timeout=0.5, retry=Retry(attempts=100, total_s=60, seed=2),
                    event_hooks={"request": [sent.append]}) as fr:
            answer["id"] = fr.feedback("u", "i", "click").event_id

    pid = redis_server.child.pid
    os.kill(pid, signal.SIGSTOP)
    sender = threading.Thread(target=send)
    try:
        sender.start()
        wait_until(lambda: len(sent) >= 2, what="a retry after the first try timed out")
    finally:
        os.kill(pid, signal.SIGCONT)
        sender.join(60)
    keys = {json.loads(r.content)["event_key"] for r in sent}
    assert len(keys) == 1 and uuid.UUID(keys.pop()).version == 4
    assert clicks_in_stream(redis_server) == [(answer["id"], b"i")]


# ------------------------------------------------------------------ httpx's test transport

class Recorder:
    """An httpx transport handler answering from a script of responses, recording requests."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]


class NoSleep(Client):
    """Records the waits instead of sleeping."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.waits: list[float] = []

    def _sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


def accepted(event_id: str = "1-0") -> httpx.Response:
    return httpx.Response(202, json={"event_id": event_id})


def test_calls_use_their_endpoints_and_send_the_api_key():
    rec = Recorder(httpx.Response(200, json={}))
    with Client("http://fr.test", api_key="s3cret", transport=httpx.MockTransport(rec)) as fr:
        fr.similar("a b/c", k=5)
        fr.trending(k=3, tag="drama")
        fr.trending()
        fr.delete_user("alice")
    assert [(r.method, r.url.raw_path.decode()) for r in rec.requests] == [
        ("GET", "/items/a%20b%2Fc/similar?k=5"), ("GET", "/trending?k=3&tag=drama"), ("GET", "/trending?k=10"),
        ("DELETE", "/users/alice")]
    assert {r.headers["authorization"] for r in rec.requests} == {"Bearer s3cret"}

    rec = Recorder(httpx.Response(202, json={"event_ids": ["1-0", "2-0"]}))
    with Client("http://fr.test", transport=httpx.MockTransport(rec)) as fr:
        fr.feedback_batch([{"user_id": "u", "item_id": "i", "event": "click", "event_key": "mine"},
                           {"user_id": "u", "item_id": "j", "event": "click"}])
    events = json.loads(rec.requests[0].content)["events"]
    assert events[0]["event_key"] == "mine" and uuid.UUID(events[1]["event_key"]).version == 4
    assert "authorization" not in rec.requests[0].headers


def test_503_and_429_are_retried_honouring_retry_after_with_the_same_event_key():
    date = formatdate(time.time() + 30, usegmt=True)
    rec = Recorder(httpx.Response(503, headers={"Retry-After": "2"}, json={"detail": "down"}),
                   httpx.Response(429, headers={"Retry-After": date}, json={"detail": "slow down"}),
                   httpx.Response(503, json={"detail": "down"}),
                   accepted("7-0"))
    with NoSleep("http://fr.test", retry=Retry(attempts=5, total_s=60, seed=0),
                 transport=httpx.MockTransport(rec)) as fr:
        assert fr.feedback("u", "i", "click").event_id == "7-0"
    assert fr.waits[0] == 2.0 and 28.0 < fr.waits[1] <= 30.0  # Retry-After: seconds, then an HTTP date
    assert 0.0 <= fr.waits[2] <= 0.4  # no Retry-After: jittered backoff (0.1 s doubled twice, at most)
    assert len({json.loads(r.content)["event_key"] for r in rec.requests}) == 1


def test_retries_stop_after_the_attempts_or_the_time_budget():
    rec = Recorder(httpx.Response(503, headers={"Retry-After": "1"}, json={"detail": "feedback store unavailable"}))
    with NoSleep("http://fr.test", retry=Retry(attempts=3, total_s=60), transport=httpx.MockTransport(rec)) as fr:
        with pytest.raises(Unavailable) as out:
            fr.feedback("u", "i", "click")
    assert out.value.attempts == 3 and len(rec.requests) == 3 and fr.waits == [1.0, 1.0]
    assert out.value.status_code == 503 and out.value.detail == "feedback store unavailable"

    rec = Recorder(httpx.Response(429, headers={"Retry-After": "120"}, json={"detail": "later"}))
    with NoSleep("http://fr.test", retry=Retry(attempts=10, total_s=30), transport=httpx.MockTransport(rec)) as fr:
        with pytest.raises(Unavailable) as out:
            fr.recommend("u")
    assert len(rec.requests) == 1 and fr.waits == [] and out.value.retry_after == 120.0

    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    with NoSleep("http://fr.test", retry=Retry(attempts=4, seed=0), transport=httpx.MockTransport(refuse)) as fr:
        with pytest.raises(Unavailable) as out:
            fr.model()
    assert out.value.status_code is None and isinstance(out.value.__cause__, httpx.ConnectError)
    assert len(fr.waits) == 3


def test_the_async_client_retries_like_the_sync_one():
    rec = Recorder(httpx.Response(503, headers={"Retry-After": "0"}, json={"detail": "down"}), accepted("9-0"))

    async def main():
        async with AsyncClient("http://fr.test", transport=httpx.MockTransport(rec)) as fr:
            return await fr.feedback("u", "i", "click")

    assert asyncio.run(main()).event_id == "9-0"
    assert len(rec.requests) == 2 and rec.requests[0].content == rec.requests[1].content
