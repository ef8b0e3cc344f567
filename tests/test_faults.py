"""The fault matrix (issue 14): each test injects one fault into real processes (a real
redis-server on a free port, a real ``freshrec serve`` / ``freshrec learner``) and checks
that no accepted event is lost (the 202s against ``events_learned``), that learning goes on,
or that ``/health/ready`` says why within 5 s and recovers within 5 s of the fault ending.

Faults are real: raw XADDs of poison entries, ``CONFIG SET maxmemory`` (OOM), ``REPLICAOF``
a master that is not there (READONLY), a full tmpfs under Redis's AOF (MISCONF), a restart
on a slowly loading dataset (LOADING), a key of the wrong type, Redis absent at start, a
replica with another snapshot key, client clocks a year and 30 minutes off. No sleeps as
synchronisation: bounded polling on a condition (``until``).
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from simulators.harness import Child, free_port
from simulators.server_process import ServerProcess
from tests.redis_proc import RedisProcess

FEEDBACK = "{freshrec}:feedback"
DEAD = "{freshrec}:dead"
WITHIN_S = 5.0  # the bound: ready says why / recovers / learns within 5 s


def until(condition, timeout_s: float = WITHIN_S, what: str = "condition"):
    """Poll ``condition()`` (exceptions count as not yet) until it returns a truthy value;
    returns it, or fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        try:
            value = condition()
            if value:
                return value
            last = value
        except Exception as exc:  # noqa: BLE001 - not yet
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout_s:g} s (last: {last!r})")
        time.sleep(0.02)  # bounded polling of a condition, not synchronisation by sleeping


def ready(url: str) -> tuple[int, dict]:
    r = httpx.get(url + "/health/ready", timeout=5)
    return r.status_code, r.json()


def not_ready_because(url: str, *words: str):
    """The readiness reasons once /health/ready answers 503 naming all ``words``."""
    def check():
        code, body = ready(url)
        text = " ".join(body.get("reasons", []))
        return body["reasons"] if code == 503 and all(w in text for w in words) else None
    return check


def is_ready(url: str):
    return lambda: ready(url)[0] == 200


def model(url: str) -> dict:
    return httpx.get(url + "/model", timeout=10).json()


def click(url: str, user: str = "u", item: str = "i", **extra) -> httpx.Response:
    return httpx.post(url + "/feedback", json={"user_id": user, "item_id": item, "event": "click", **extra},
                      timeout=10)


def learned(url: str, event_id: str, timeout_s: float = WITHIN_S) -> bool:
    r = httpx.get(url + "/model/learned", params={"event_id": event_id, "timeout_ms": int(timeout_s * 1000)},
                  timeout=timeout_s + 5)
    return r.json()["learned"]


class Ledger:
    """The 202s a test got, to count against ``events_learned`` (nothing accepted is lost)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ids: list[str] = []

    def send(self, n: int = 1, prefix: str = "u") -> list[str]:
        events = [{"user_id": f"{prefix}{k}", "item_id": f"i{k % 7}", "event": "click"} for k in range(n)]
        r = httpx.post(self.url + "/feedback/batch", json={"events": events}, timeout=10)
        assert r.status_code == 202, r.text
        self.ids += r.json()["event_ids"]
        return r.json()["event_ids"]

    def all_learned(self) -> None:
        assert learned(self.url, self.ids[-1]), "the last accepted event was not learned within 5 s"
        assert model(self.url)["events_learned"] == len(self.ids)


@pytest.fixture
def serve(redis_server, tmp_path):
    """Start ``freshrec serve`` processes on the test's Redis; all stopped afterwards."""
    started = []

    def start(*args: str, redis_url: str | None = None, name: str | None = None) -> ServerProcess:
        log = tmp_path / f"{name or f'server{len(started)}'}.log"
        server = ServerProcess(redis_url=redis_url or redis_server.url, extra_args=list(args), log_path=log)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def xadd(client, fields: dict) -> str:
    return client.xadd(FEEDBACK, fields).decode()


# ---------------------------------------------------------------- poison entries


def poison_entries(now: float) -> dict[str, tuple[dict, str]]:
    """kind -> (raw fields, the dead letter's stage)."""
    r = repr(now)
    return {
        "missing field": ({"i": "x", "k": "click", "r": r}, "decode"),
        "bad UTF-8": ({"u": b"\xff\xfe\xfd", "i": "x", "k": "click", "r": r}, "decode"),
        "non-numeric value": ({"u": "p", "i": "x", "k": "rating", "v": "high", "r": r}, "decode"),
        "non-numeric time": ({"u": "p", "i": "x", "k": "click", "t": "noon", "r": r}, "decode"),
        "malformed meta JSON": ({"u": "", "i": "x", "k": "item", "m": "{not json", "r": r}, "decode"),
        "malformed context JSON": ({"u": "p", "i": "x", "k": "click", "c": "[1,", "r": r}, "decode"),
        "context not an object": ({"u": "p", "i": "x", "k": "click", "c": "[1, 2]", "r": r}, "decode"),
        "NaN value": ({"u": "p", "i": "x", "k": "rating", "v": "nan", "r": r}, "decode"),
        "infinite time": ({"u": "p", "i": "x", "k": "click", "t": "inf", "r": r}, "decode"),
        "infinite acceptance time": ({"u": "p", "i": "x", "k": "click", "r": "-inf"}, "decode"),
        "unknown event type": ({"u": "p", "i": "x", "k": "purchase", "r": r}, "check"),
        "rating without value": ({"u": "p", "i": "x", "k": "rating", "r": r}, "check"),
        "event time 1 day ahead of acceptance": ({"u": "p", "i": "x", "k": "click", "t": repr(now + 86400),
                                                  "r": r}, "check"),
        "acceptance time 1 year after its stream id": ({"u": "p", "i": "x", "k": "click",
                                                        "r": repr(now + 365 * 86400)}, "check"),
    }


def test_poison_entries_are_dead_lettered_and_learning_goes_on(serve, redis_server):
    a = serve(name="learner")
    b = serve("--no-learner", name="replica")
    ledger = Ledger(a.url)
    ledger.send(3, "before")
    client = redis_server.client()
    poison = poison_entries(time.time())
    ids = {kind: xadd(client, fields) for kind, (fields, _) in poison.items()}
    r = click(a.url, "after", "z")
    assert r.status_code == 202
    ledger.ids.append(r.json()["event_id"])
    ledger.all_learned()  # the ordinary event after them is learned within 5 s
    m = model(a.url)
    assert m["dead_letters"] == len(poison) and m["stream_lag"] == 0
    assert ready(a.url)[0] == 200
    dead = {i.decode(): f for i, f in client.xrange(DEAD, "-", "+")}
    for kind, (fields, stage) in poison.items():
        letter = dead[ids[kind]]  # under its original id
        assert letter[b"stage"] == stage.encode(), kind
        assert letter[b"error"], kind
        for name, value in fields.items():
            assert letter[f"raw.{name}".encode()] == (value if isinstance(value, bytes) else value.encode()), kind
    assert client.xinfo_groups(FEEDBACK)[0]["pending"] == 0  # every entry, poison too, acknowledged
    # the replica skipped (and counted) the same entries and holds the same model
    assert learned(b.url, ledger.ids[-1])
    assert model(b.url)["dead_letters"] == len(poison)
    assert model(b.url)["events_learned"] == len(ledger.ids)
    # a replay after a crash dead-letters the same entries, once
    a.kill()
    a2 = serve(name="learner-again")
    assert learned(a2.url, ledger.ids[-1])
    assert model(a2.url)["events_learned"] == len(ledger.ids)
    assert client.xlen(DEAD) == len(poison)
    assert {i.decode() for i, _ in client.xrange(DEAD, "-", "+")} == set(ids.values())
    client.close()


def test_an_entry_that_crashes_the_learner_restarts_it_then_is_dead_lettered(serve, redis_server):
    """``meta.tags`` that is not a list makes the catalogue's tag index raise TypeError
    inside ``apply``: not a bad entry the learner knows, so the role restarts (from the
    newest snapshot, replaying after it); on the second crash on the same entry it is
    quarantined and dead-lettered (stage crash), and learning goes on."""
    a = serve("--log-level", "info")
    ledger = Ledger(a.url)
    ledger.send(5, "before")
    ledger.all_learned()
    client = redis_server.client()
    bad = xadd(client, {"u": "", "i": "crasher", "k": "item", "m": json.dumps({"tags": 5}), "r": repr(time.time())})
    ledger.send(5, "after")
    ledger.all_learned()
    m = model(a.url)
    assert m["roles"]["learner"]["restarts"] == 2 and m["roles"]["learner"]["state"] == "running"
    assert "TypeError" in m["roles"]["learner"]["last_error"]
    letter = client.xrange(DEAD, bad, bad)[0][1]
    assert letter[b"stage"] == b"crash" and b"TypeError" in letter[b"error"]
    until(is_ready(a.url), what="ready after the restarts")
    client.close()
    assert "Traceback" in Path(a.log_path).read_text()  # logged with its traceback
    metrics = httpx.get(a.url + "/metrics").text
    assert 'freshrec_role_restarts_total{role="learner"} 2.0' in metrics
    assert "freshrec_dead_letters_total 1.0" in metrics


# ------------------------------------------------------------------ failures


def test_a_role_that_keeps_failing_is_failed_and_ready_says_so(serve, redis_server):
    """The stream key overwritten with a string: XREADGROUP answers WRONGTYPE, which retrying
    will not cure. After ``ops.max_failures`` restarts the learner is failed: /health/ready
    503 naming it, /health/live still 200, /recommend still serving."""
    a = serve("--ops.max-failures", "3")
    Ledger(a.url).send(2)
    client = redis_server.client()
    client.delete(FEEDBACK)
    client.set(FEEDBACK, "not a stream")
    reasons = until(not_ready_because(a.url, "learner failed", "WRONGTYPE"), what="learner failed")
    assert any("learner failed" in r for r in reasons)
    assert httpx.get(a.url + "/health/live").status_code == 200
    assert httpx.post(a.url + "/recommend", json={"user_id": "u"}).status_code == 200
    assert model(a.url)["roles"]["learner"]["consecutive_failures"] == 3
    client.close()


def test_freshrec_learner_exits_non_zero_when_its_role_fails(redis_server, tmp_path):
    log = tmp_path / "learner.log"
    learner = Child([sys.executable, "-m", "api.cli", "learner", "--redis-url", redis_server.url,
                     "--ops.max-failures", "3"], log)
    try:
        client = redis_server.client()
        until(lambda: client.xinfo_groups(FEEDBACK), 30, "learner group created")
        client.delete(FEEDBACK)
        client.set(FEEDBACK, "not a stream")
        until(lambda: not learner.running(), 30, "learner exited")
        client.close()
        assert learner.proc.returncode == 1
        assert "learner failed 3 times in a row" in log.read_text()
    finally:
        learner.stop()


# ------------------------------------------------------------ misconfiguration


@pytest.mark.parametrize("role", ["replica", "learner"])
def test_a_process_whose_snapshot_key_verifies_no_snapshot_exits_with_a_message(serve, redis_server, tmp_path,
                                                                                 monkeypatch, role):
    a = serve(name="owner")
    Ledger(a.url).send(3)
    assert httpx.post(a.url + "/snapshots").status_code == 201
    if role == "learner":
        a.stop()
    monkeypatch.setenv("FRESHREC_SNAPSHOT_KEY", "another-key")
    other = ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "other.log",
                          extra_args=["--no-learner"] if role == "replica" else [])
    with pytest.raises(RuntimeError, match="exited with 3"):
        other.start(timeout_s=30)
    text = (tmp_path / "other.log").read_text()
    assert "none of the 2 stored snapshots" in text or "none of the 1 stored snapshots" in text
    assert "FRESHREC_SNAPSHOT_KEY" in text


def test_redis_that_may_evict_keys_is_refused_at_start(redis_server, tmp_path):
    client = redis_server.client()
    client.config_set("maxmemory-policy", "allkeys-lru")
    client.close()
    server = ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "s.log")
    with pytest.raises(RuntimeError, match="exited with 3"):
        server.start(timeout_s=30)
    assert "maxmemory-policy allkeys-lru" in (tmp_path / "s.log").read_text()
    assert "noeviction" in (tmp_path / "s.log").read_text()


def test_redis_down_at_start_then_up_the_server_becomes_ready(tmp_path):
    redis = RedisProcess(tmp_path / "redis")  # port chosen, not started yet
    log = tmp_path / "s.log"
    server = ServerProcess(redis_url=redis.url, log_path=log, extra_args=["--ops.redis-wait-s", "30"])
    server.child = Child([sys.executable, "-m", "api.cli", "serve", "--port", str(server.port), "--redis-url",
                          redis.url, "--ops.redis-wait-s", "30"], log)
    try:
        until(lambda: "retrying for up to" in log.read_text(), 30, "server waiting for Redis")
        redis.start()
        until(is_ready(server.url), 10, "ready once Redis is up")
        r = click(server.url)
        assert r.status_code == 202 and learned(server.url, r.json()["event_id"])
    finally:
        server.stop()
        redis.kill()


def test_redis_absent_for_the_whole_wait_exits_non_zero_with_a_message(tmp_path):
    redis = RedisProcess(tmp_path / "redis")  # never started
    log = tmp_path / "s.log"
    child = Child([sys.executable, "-m", "api.cli", "serve", "--port", "0", "--redis-url", redis.url,
                   "--ops.redis-wait-s", "2"], log)
    until(lambda: not child.running(), 30, "server exited")
    child.stop()
    assert child.proc.returncode != 0
    assert f"Redis at {redis.url} did not answer for 2 s" in log.read_text()


# ------------------------------------------------------------- Redis faults


def test_oom_feedback_503_and_checkpoints_and_trimming_recover_once_memory_frees(serve, redis_server):
    a = serve("--snapshots.every-s", "1.5", "--snapshots.every-events", "1000000")
    ledger = Ledger(a.url)
    client = redis_server.client()
    for n in range(4):  # four snapshots at four positions: trimming is active
        version = (model(a.url)["last_snapshot"] or {}).get("version", 0)
        ledger.send(10, f"r{n}-")
        ledger.all_learned()
        until(lambda: (model(a.url)["last_snapshot"] or {}).get("version", 0) > version, 10, "a new snapshot")
    first_before = client.xrange(FEEDBACK, "-", "+", count=1)[0][0]
    ledger.send(10, "unsnapshotted-")
    ledger.all_learned()
    client.config_set("maxmemory", "1")  # every write that allocates is refused (noeviction)
    try:
        r = click(a.url, "oom", "x")
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        until(not_ready_because(a.url, "checkpointer outage", "OOM"), WITHIN_S + 1.5, "ready says OOM")
        assert httpx.post(a.url + "/recommend", json={"user_id": "u"}).status_code == 200
    finally:
        client.config_set("maxmemory", "0")
    until(is_ready(a.url), WITHIN_S, "ready after memory frees")
    m = model(a.url)
    assert m["last_snapshot"]["events_learned"] == len(ledger.ids)  # the checkpoint went through by itself
    first_after = client.xrange(FEEDBACK, "-", "+", count=1)[0][0]
    assert tuple(map(int, first_after.split(b"-"))) > tuple(map(int, first_before.split(b"-")))  # trimmed again
    ledger.send(3, "after-")
    ledger.all_learned()
    client.close()


def test_readonly_redis_pauses_learning_ready_says_why_and_recovers(serve, redis_server):
    a = serve()
    ledger = Ledger(a.url)
    ledger.send(3)
    ledger.all_learned()
    client = redis_server.client()
    client.replicaof("127.0.0.1", str(free_port()))  # a master that is not there: data kept, writes refused
    try:
        until(not_ready_because(a.url, "learner outage"), what="ready says READONLY")
        assert click(a.url).status_code == 503
        assert httpx.post(a.url + "/recommend", json={"user_id": "u"}).json()["stale"] is True
    finally:
        client.replicaof("NO", "ONE")
    t0 = time.monotonic()
    until(is_ready(a.url), what="ready after REPLICAOF NO ONE")
    assert time.monotonic() - t0 <= WITHIN_S
    ledger.send(3, "after-")
    ledger.all_learned()
    client.close()


def test_redis_killed_ready_says_why_and_recovers_after_restart(serve, redis_server):
    a = serve()
    ledger = Ledger(a.url)
    ledger.send(3)
    ledger.all_learned()
    redis_server.kill()
    until(not_ready_because(a.url, "redis"), what="ready says Redis is down")
    assert click(a.url).status_code == 503
    redis_server.restart()
    until(is_ready(a.url), what="ready after Redis restarts")
    ledger.send(3, "after-")
    ledger.all_learned()


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 4 MB tmpfs (needs root / CAP_SYS_ADMIN; the test is skipped otherwise)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()}): MISCONF needs a full filesystem")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_misconf_disk_full_under_the_aof_pauses_learning_and_recovers(small_tmpfs, tmp_path):
    redis = RedisProcess(tmp_path / "redis").start("--dir", str(small_tmpfs))
    server = ServerProcess(redis_url=redis.url, log_path=tmp_path / "s.log").start()
    filler = small_tmpfs / "filler"
    try:
        ledger = Ledger(server.url)
        ledger.send(3)
        ledger.all_learned()
        with contextlib.suppress(OSError), open(filler, "wb") as f:  # fill the file system
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        client = redis.client()

        def misconf():  # the next write's AOF append fails (ENOSPC): Redis refuses writes
            r = click(server.url, "disk", "full")
            if r.status_code == 202:
                ledger.ids.append(r.json()["event_id"])  # accepted before Redis noticed: must not be lost
            return r.status_code == 503 and "ResponseError" in r.text

        until(misconf, what="MISCONF on /feedback")
        until(not_ready_because(server.url, "MISCONF"), what="ready says MISCONF")
        filler.unlink()  # the disk frees
        t0 = time.monotonic()
        until(is_ready(server.url), what="ready after the disk frees")
        assert time.monotonic() - t0 <= WITHIN_S
        ledger.send(3, "after-")
        ledger.all_learned()
        assert client.info("persistence")["aof_last_write_status"] == "ok"
        client.close()
    finally:
        server.stop()
        redis.kill()


def test_loading_redis_after_a_restart_ready_says_why_and_recovers(serve, redis_server):
    a = serve()
    ledger = Ledger(a.url)
    ledger.send(5)
    ledger.all_learned()
    client = redis_server.client()
    client.config_set("rdbcompression", "no")  # > 2 MB of RDB: Redis answers clients while it loads
    client.execute_command("DEBUG", "POPULATE", "50000", "filler", "200")
    client.bgrewriteaof()  # the AOF gets an RDB preamble, whose loading key-load-delay slows (~6 s)
    until(lambda: client.info("persistence")["aof_rewrite_in_progress"] == 0
          and client.info("persistence")["aof_rewrite_scheduled"] == 0, 30, "AOF rewritten")
    client.close()
    redis_server.restart("--key-load-delay", "50", wait=False)
    probe = redis.Redis.from_url(redis_server.url, socket_timeout=20, retry=Retry(NoBackoff(), 0))
    until(not_ready_because(a.url, "redis"), what="not ready while Redis restarts")
    until(lambda: probe.info("persistence")["loading"] == 1, 10, "Redis loading")
    # Redis answers while it loads only between 2 MB chunks (~every 2.5 s here): then it says LOADING
    until(not_ready_because(a.url, "LOADING"), 10, "ready names LOADING")
    until(lambda: probe.info("persistence")["loading"] == 0, 60, "Redis loaded")
    t0 = time.monotonic()
    until(is_ready(a.url), what="ready after loading")
    assert time.monotonic() - t0 <= WITHIN_S
    probe.close()
    ledger.send(3, "after-")
    ledger.all_learned()


# ------------------------------------------------------------------- clocks


def test_client_clocks_a_year_off_and_30_minutes_off(serve, redis_server):
    """Event times from clients whose clocks are off: in the past (a year, 30 min) they are
    accepted and learned; in the future beyond ``max_clock_skew_s`` (300 s) the answer is 422
    naming ``timestamp``; the model's event clock never moves past now + skew."""
    a = serve()
    ledger = Ledger(a.url)
    now = time.time()
    for offset in (-365 * 86400, -1800):
        r = click(a.url, f"past{offset}", "x", timestamp=now + offset)
        assert r.status_code == 202, r.text
        ledger.ids.append(r.json()["event_id"])
    for offset in (365 * 86400, 1800):
        r = click(a.url, f"future{offset}", "x", timestamp=now + offset)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "timestamp", r.text
    r = click(a.url, "near", "x", timestamp=now + 60)  # within the skew: accepted
    assert r.status_code == 202
    ledger.ids.append(r.json()["event_id"])
    batch = httpx.post(a.url + "/feedback/batch", json={"events": [
        {"user_id": "b", "item_id": "x", "event": "click"},
        {"user_id": "b", "item_id": "y", "event": "click", "timestamp": now + 365 * 86400}]})
    assert batch.status_code == 422 and "timestamp" in batch.text  # all or nothing
    ledger.all_learned()
    m = model(a.url)
    assert math.isfinite(m["event_clock"]) and m["event_clock"] <= time.time() + 300
    assert ready(a.url)[0] == 200


# ------------------------------------------------------------------- lag


def test_stream_lag_over_the_threshold_makes_a_replica_not_ready_and_costs_one_bounded_read(redis_server):
    """A replica that follows nothing yet sees 1,500 entries waiting: with
    ``ops.max_lag_events`` 100 the probe reads at most 101 of them and readiness says why."""
    import asyncio

    from engine.config import OpsConfig
    from engine.core.events import Event
    from engine.roles.node import Node

    async def scenario():
        node = await Node.open(redis_server.url, None, snapshot_key="k", follower=True,
                               ops=OpsConfig(max_lag_events=100))
        try:
            await node.log.append([Event(f"u{n}", "i", "click", received_at=time.time()) for n in range(1500)])
            await node.start()
            calls = (await node.redis.info("commandstats")).get("cmdstat_xrange", {}).get("calls", 0)
            reasons = await node.readiness()
            again = await node.readiness()  # within a second: the same look, no new read
            lag = await node.stream_lag()
            after = (await node.redis.info("commandstats"))["cmdstat_xrange"]["calls"]
            return reasons, again, lag, after - calls
        finally:
            await node.close(final_snapshot=False)

    reasons, again, lag, xranges = asyncio.run(scenario())
    assert any("stream lag: more than 100 entries" in r for r in reasons) and again == reasons
    assert lag.events == 101 and lag.capped and lag.oldest_ms is not None
    assert xranges == 1


@pytest.fixture
def skewable_clock(tmp_path, monkeypatch):
    """The spec file of a libfaketime clock for the server processes started after it (the
    ``libfaketime`` wheel's library, preloaded; monotonic time untouched, the file re-read
    on every call, so a test can move the server's wall clock while it runs). Redis, started
    before, keeps the real clock."""
    libfaketime = pytest.importorskip("libfaketime", reason="libfaketime (dev dependency) moves a server's clock")
    lib = Path(libfaketime.__file__).parent / "vendor" / "libfaketime" / "src"
    if not (lib / "libfaketime.so.1").exists():
        pytest.skip("libfaketime's library is not built for this platform")
    spec = tmp_path / "faketime.rc"
    spec.write_text("+0\n")
    for name, value in {"LD_LIBRARY_PATH": str(lib), "LD_PRELOAD": "libfaketime.so.1", "DONT_FAKE_MONOTONIC": "1",
                        "FAKETIME_NO_CACHE": "1", "FAKETIME_TIMESTAMP_FILE": str(spec)}.items():
        monkeypatch.setenv(name, value)
    return spec


@pytest.mark.parametrize("offset", ["+365d", "-365d"])
def test_server_clock_a_year_off_refuses_feedback_says_why_and_recovers(redis_server, serve, skewable_clock, offset):
    """The server's own wall clock jumps a year (Redis's does not): it would stamp acceptance
    times a year off, which the learner would dead-letter after their 202. So the intake
    answers 503 and /health/ready names the clock within 5 s; once the clock is back, both
    recover within 5 s and nothing accepted is lost."""
    a = serve()
    ledger = Ledger(a.url)
    ledger.send(3)
    ledger.all_learned()
    skewable_clock.write_text(f"{offset}\n")
    until(not_ready_because(a.url, "clock", "ahead of" if offset.startswith("+") else "behind"), what="clock named")
    r = click(a.url, "skewed", "x")
    assert r.status_code == 503 and "ClockSkewed" in r.text
    assert httpx.post(a.url + "/recommend", json={"user_id": "u"}).status_code == 200
    skewable_clock.write_text("+0\n")
    until(is_ready(a.url), what="ready once the clock is back")
    ledger.send(3, "after-")
    ledger.all_learned()
    assert model(a.url)["dead_letters"] == 0
