"""The forgetting guard's trust decisions survive kill -9, with real processes: two servers,
each on its own redis-server, get the same traffic (slates from /recommend, clicks on them
that join by recommendation id and vet their accounts, organic clicks, sybil bursts that the
guard rolls back). One of them is killed -9 three times, each time after a snapshot and more
events, and restarted. At the end both hold the same accounts (vetted, trusted clicks, the
weight of their next unjoined event), the same reservoir, windows, rollbacks and
quarantines, and the same model, byte for byte (final snapshots compared).

The traffic is a function of what the server answers (a user clicks the first item of its
slate that it likes), so a restarted server that lost any guard state would serve other
slates from then on and drift away from the uninterrupted one. Each batch is learned before
the next is sent, so the intake's trust decisions do not depend on timing."""

import asyncio

import httpx
import numpy as np
from redis.asyncio import Redis

from engine.core.guard_state import SECTION
from engine.storage.keys import Keys
from engine.storage.snapshot_store import SnapshotStore
from simulators.server_process import ServerProcess
from tests.conftest import SNAPSHOT_KEY
from tests.redis_proc import RedisProcess

USERS, ITEMS, ROUNDS = 40, 120, 24
KILL_AFTER_ROUNDS = (6, 12, 18)
SERVER_ARGS = ["--snapshot-every-events", "250", "--snapshot-every-s", "3600",
               "--guard.window-events", "150", "--guard.early-suspicious", "40", "--guard.min-suspicious", "8",
               "--guard.reservoir-size", "300", "--guard.quality-pairs", "60", "--guard.exposure-users", "30",
               "--guard.reference-every", "2"]


class Client:
    """One server process and the traffic sent to it; ``restart`` kills it with SIGKILL."""

    def __init__(self, redis_url: str, log_path) -> None:
        self.redis_url, self.log_path = redis_url, log_path
        self.server = self._start()
        self.http = httpx.Client(base_url=self.server.url, timeout=30)
        self.last_event = None

    def _start(self) -> ServerProcess:
        return ServerProcess(redis_url=self.redis_url, extra_args=SERVER_ARGS, log_path=self.log_path).start()

    def slate(self, user: str) -> dict:
        r = self.http.post("/recommend", json={"user_id": user, "k": 10})
        assert r.status_code == 200, r.text
        return r.json()

    def send(self, events: list[dict]) -> None:
        """Accept the batch, then wait until it is learned (so the next batch's trust is
        decided against the accounts it vetted)."""
        r = self.http.post("/feedback/batch", json={"events": events})
        assert r.status_code == 202, r.text
        self.last_event = r.json()["event_ids"][-1]
        self.wait_learned()

    def wait_learned(self) -> None:
        r = self.http.get("/model/learned", params={"event_id": self.last_event, "timeout_ms": 30_000})
        assert r.json()["learned"], r.text

    def snapshot(self) -> dict:
        """A checkpoint now (the background ones are racy to wait for); its metadata."""
        r = self.http.post("/snapshots")
        assert r.status_code == 201, r.text
        return r.json()

    def crash(self) -> None:
        """kill -9, restart on the same Redis, and wait until everything accepted is learned
        again (the snapshot restored, the stream after it replayed)."""
        self.server.kill()
        self.http.close()
        self.server = self._start()
        self.http = httpx.Client(base_url=self.server.url, timeout=30)
        self.wait_learned()

    def stop(self) -> None:
        self.http.close()
        self.server.stop()  # graceful: a final snapshot


def drive(client: Client, crash: bool) -> list[dict]:
    """The traffic (seeded): ROUNDS rounds of every user asking for a slate and clicking in
    it or organically, a sybil burst every fourth round. After KILL_AFTER_ROUNDS: a snapshot,
    20 more organic clicks, and (when ``crash``) kill -9 and restart. Returns the snapshots
    taken before the crashes."""
    rng = np.random.default_rng(5)
    tastes = {f"u{u}": sorted(rng.choice(ITEMS, 40, replace=False).tolist()) for u in range(USERS)}
    t = 1_000_000.0
    snapshots = []
    for r in range(ROUNDS):
        batch = []
        for u in rng.permutation(USERS).tolist():
            user = f"u{u}"
            t += 10
            slate = client.slate(user)
            liked = [i["item_id"] for i in slate["items"] if int(i["item_id"][1:]) in tastes[user]]
            if liked:
                batch.append({"user_id": user, "item_id": liked[0], "event": "click", "timestamp": t,
                              "recommendation_id": slate["recommendation_id"]})
            else:
                batch.append({"user_id": user, "item_id": f"i{rng.choice(tastes[user])}", "event": "click",
                              "timestamp": t})
        if r % 4 == 3:
            batch += [{"user_id": f"bot{r}-{b}", "item_id": f"i{ITEMS + b % 2}", "event": "click",
                       "timestamp": t + 1 + b} for b in range(60)]
            t += 100
        client.send(batch)
        if r in KILL_AFTER_ROUNDS:
            snapshots.append(client.snapshot())
            tail = []
            for n in range(20):  # learned after the snapshot: lost with the process, replayed from the stream
                t += 10
                tail.append({"user_id": f"u{n}", "item_id": f"i{rng.choice(tastes[f'u{n}'])}", "event": "click",
                             "timestamp": t})
            client.send(tail)
            model = client.http.get("/model").json()
            assert model["events_learned"] > snapshots[-1]["events_learned"]
            if crash:
                client.crash()
    return snapshots


def observed(client: Client) -> dict:
    """What the server says about its trust decisions."""
    model = client.http.get("/model").json()
    guard = {k: v for k, v in model["guard"].items() if k not in ("alarms", "events")}
    guard["events"] = [e for e in model["guard"]["events"] if e["kind"] != "alarm"]
    accounts = {u: client.http.get(f"/guard/accounts/{u}").json()
                for u in [f"u{n}" for n in range(USERS)] + ["bot3-0", "bot23-59", "nobody"]}
    return {"guard": guard, "accounts": accounts, "events_learned": model["events_learned"]}


async def final_snapshot(url: str):
    redis = Redis.from_url(url)
    try:
        return await SnapshotStore(redis, Keys(), SNAPSHOT_KEY.encode()).load_latest_good()
    finally:
        await redis.aclose()


def comparable(meta: dict) -> dict:
    """The guard's snapshot metadata without what differs between two runs by design: the
    slates served (a serving-path counter) and, per window entry, the acceptance time,
    stream id and recommendation id (the servers' own clocks and random slate tokens)."""
    out = {k: v for k, v in meta.items() if k != "served"}
    out["window"] = [[{k: v for k, v in fields.items() if k not in ("r", "id", "rec")}, w, s]
                     for fields, w, s in meta["window"]]
    out["events"] = [e for e in meta["events"] if e["kind"] != "alarm"]
    for point in ("good", "reference"):  # a rollback point's stream position is a stream id
        if isinstance(out[point], dict):
            out[point] = dict(out[point], meta=_without(out[point]["meta"], "last_event_id"))
    out["earlier_events"] = {k: v for k, v in meta["earlier_events"].items() if k != "alarm"}
    return out


def _without(delta: dict | None, key: str) -> dict | None:
    if not delta or "d" not in delta:
        return delta
    return dict(delta, d={k: v for k, v in delta["d"].items() if k != key})


def _paths(a, b, path=""):
    """Where two JSON values differ (for the assertion message)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for k in set(a) | set(b) for p in _paths(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [p for n, (x, y) in enumerate(zip(a, b)) for p in _paths(x, y, f"{path}[{n}]")]
    return [] if a == b else [path]


def test_trust_decisions_after_kill_9_equal_an_uninterrupted_run(redis_server, tmp_path):
    other_redis = RedisProcess(tmp_path / "redis-uninterrupted").start()
    try:
        crashed = Client(redis_server.url, tmp_path / "crashed.log")
        steady = Client(other_redis.url, tmp_path / "steady.log")
        try:
            snapshots = drive(crashed, crash=True)
            drive(steady, crash=False)
            a, b = observed(crashed), observed(steady)
        finally:
            crashed.stop()
            steady.stop()
        assert len(snapshots) == len(KILL_AFTER_ROUNDS)
        assert b["guard"]["rollbacks"] >= 2 and b["guard"]["vetted_accounts"] >= USERS - 2
        assert any(e["kind"] == "rollback" and e["at_event"] > snapshots[-1]["events_learned"]
                   for e in b["guard"]["events"])  # a restored last good model was rolled back to
        assert a == b
        assert b["accounts"]["u1"]["established"] and b["accounts"]["bot3-0"]["unjoined_weight"] == 0.25
        (_, arrays_a, meta_a), (_, arrays_b, meta_b) = (asyncio.run(final_snapshot(url))
                                                        for url in (redis_server.url, other_redis.url))
    finally:
        other_redis.kill()
    assert arrays_a.keys() == arrays_b.keys()
    for name in arrays_a:
        assert arrays_a[name].tobytes() == arrays_b[name].tobytes(), name
    ours, theirs = comparable(meta_a[SECTION]), comparable(meta_b[SECTION])
    assert ours == theirs, _paths(ours, theirs)[:10]
    assert meta_a["events_learned"] == meta_b["events_learned"]
