"""``freshrec import``: a log killed (-9) half-way and re-run gives the same model as an
uninterrupted import (snapshot arrays equal), which ``/recommend`` then serves; JSON lines
of ``/feedback`` bodies; bad lines are refused with the line and the field, before anything
is appended."""

import asyncio
import json
import subprocess
import sys

import httpx
import numpy as np
import pytest
from redis.asyncio import Redis

from api import importer
from api.import_sources import load_events, source_id, source_of
from api.cli import build_parser
from engine.config import EngineConfig
from engine.core.events import Semantics, from_fields
from engine.core.guard import GuardedRecommender
from engine.storage.keys import Keys
from engine.storage.snapshot_store import SnapshotStore
from simulators.datasets import BUNDLED, load_movietweetings
from simulators.harness import project_env
from simulators.server_process import ServerProcess
from tests.conftest import SNAPSHOT_KEY
from tests.redis_proc import RedisProcess

N = 5000
KEYS = Keys()
KILLER = """
import os, signal, sys
from api import importer
from api.import_sources import load_events, source_id, source_of
from api.cli import build_parser
args = build_parser().parse_args(sys.argv[1:])
def hook(first):
    if first >= int(os.environ["KILL_AT"]):
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9 before this batch is committed
sys.exit(importer.main(args, before_batch=hook))
"""


@pytest.fixture
def log_file(tmp_path):
    path = tmp_path / "ratings.dat"
    lines = (BUNDLED / "ratings.dat").read_text().splitlines(keepends=True)[:N]
    path.write_text("".join(lines))
    return path


def freshrec(*argv, env=None, script=None):
    cmd = [sys.executable, "-c", script, *argv] if script else [sys.executable, "-m", "api.cli", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, env=project_env(**(env or {})), timeout=300)


def stream_length(redis_proc):
    client = redis_proc.client()
    try:
        return client.xlen(KEYS.feedback)
    finally:
        client.close()


def latest(redis_proc):
    async def load():
        redis = Redis.from_url(redis_proc.url)
        try:
            return await SnapshotStore(redis, KEYS, SNAPSHOT_KEY.encode()).load_latest_good()
        finally:
            await redis.aclose()

    return asyncio.run(load())


def serve(redis_proc, tmp_path, name):
    return ServerProcess(redis_url=redis_proc.url, extra_args=["--snapshot-every-events", "1000000"],
                         log_path=tmp_path / f"{name}.log").start()


def test_an_import_killed_half_way_and_rerun_equals_an_uninterrupted_one(log_file, tmp_path):
    a = RedisProcess(tmp_path / "redis-a").start()
    b = RedisProcess(tmp_path / "redis-b").start()
    try:
        server_a = serve(a, tmp_path, "a")
        killed = freshrec("import", str(log_file), "--redis-url", a.url, "--batch", "500", "--no-progress",
                          script=KILLER, env={"KILL_AT": str(N // 2)})
        assert killed.returncode == -9, killed.stderr
        assert stream_length(a) == N // 2  # exactly the committed batches
        resumed = freshrec("import", str(log_file), "--redis-url", a.url, "--batch", "500", "--no-progress", "--wait",
                           "--json", str(tmp_path / "a.json"))
        assert resumed.returncode == 0, resumed.stderr
        summary = json.loads((tmp_path / "a.json").read_text())
        assert summary["appended"] == N // 2 and summary["already_appended"] == N // 2 and summary["events"] == N
        assert summary["learned_events_per_s"] > 0 and "learned" in resumed.stdout
        again = freshrec("import", str(log_file), "--redis-url", a.url, "--no-progress")
        assert again.returncode == 0 and "0 appended now" in again.stdout
        assert stream_length(a) == N

        server_b = serve(b, tmp_path, "b")
        whole = freshrec("import", str(log_file), "--redis-url", b.url, "--no-progress", "--wait")
        assert whole.returncode == 0, whole.stderr

        ratings = load_movietweetings(log_file)
        users = [ratings[-1].user_id, ratings[0].user_id]
        slates = []
        for srv in (server_a, server_b):
            for user in users:
                r = httpx.post(srv.url + "/recommend", json={"user_id": user, "k": 10})
                assert r.status_code == 200 and len(r.json()["items"]) == 10
                slates.append([i["item_id"] for i in r.json()["items"]])
            srv.stop()  # graceful: the final snapshot holds the whole import
        assert slates[:2] == slates[2:]
        (_, arrays_a, meta_a), (_, arrays_b, meta_b) = latest(a), latest(b)
        assert meta_a["events_learned"] == meta_b["events_learned"] == N
        assert set(arrays_a) == set(arrays_b)
        for name in arrays_a:
            np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)
        reference = GuardedRecommender()  # what /feedback of the same ratings would teach a fresh server
        for event in load_events(source_of(log_file), reference.recommender.semantics):
            reference.apply(event)
        ref_arrays, _ = reference.recommender.state()
        for name, value in ref_arrays.items():
            np.testing.assert_allclose(arrays_a[name], value, rtol=0, atol=1e-12, err_msg=name)
    finally:
        a.kill()
        b.kill()


def run_import(path, url, *extra):
    args = build_parser().parse_args(["import", str(path), "--redis-url", url, "--no-progress", *extra])
    return importer.main(args)


def test_json_lines_of_feedback_bodies(redis_server, tmp_path):
    bodies = [{"user_id": "u1", "item_id": "a", "event": "click", "timestamp": 1000, "context": {"device": "tv"}},
              {"user_id": "u2", "item_id": "b", "event": "rating", "value": 9, "timestamp": 1001},
              {"user_id": "u1", "item_id": "b", "event": "impression", "recommendation_id": "old-slate"}]
    path = tmp_path / "feedback.jsonl"
    path.write_text("\n".join(json.dumps(b) for b in bodies) + "\n\n")
    assert run_import(path, redis_server.url) == 0
    client = redis_server.client()
    entries = [from_fields(eid, f) for eid, f in client.xrange(KEYS.feedback)]
    client.close()
    assert [(e.user_id, e.item_id, e.kind, e.value, e.timestamp) for e in entries] == [
        ("u1", "a", "click", None, 1000.0), ("u2", "b", "rating", 9.0, 1001.0), ("u1", "b", "impression", None, None)]
    assert entries[0].context == {"device": "tv"} and entries[2].recommendation_id == "old-slate"
    assert all(e.trust == "unvetted" and e.received_at > 0 for e in entries)


SHOP = '{"view": {"role": "positive", "weight": 0.2}, "purchase": {"role": "positive", "weight": 3}}'


def test_an_event_typed_csv_and_an_implicit_one_import_under_the_schema(redis_server, tmp_path):
    typed = tmp_path / "shop.csv"
    typed.write_text("user_id,item_id,event,timestamp\nu1,a,view,100\nu1,a,purchase,101\nu2,b,click,102\n")
    assert run_import(typed, redis_server.url, "--event-column", "event", "--engine.events", SHOP) == 0
    implicit = tmp_path / "clicks.csv"  # no rating column: every row is the --event type
    implicit.write_text("user_id,item_id,timestamp\nu3,c,103\n")
    assert run_import(implicit, redis_server.url, "--event", "click", "--engine.events", SHOP) == 0
    client = redis_server.client()
    entries = [from_fields(eid, f) for eid, f in client.xrange(KEYS.feedback)]
    client.close()
    assert [(e.user_id, e.item_id, e.kind, e.value, e.timestamp) for e in entries] == [
        ("u1", "a", "view", None, 100.0), ("u1", "a", "purchase", None, 101.0), ("u2", "b", "click", None, 102.0),
        ("u3", "c", "click", None, 103.0)]


@pytest.mark.parametrize("name,text,extra,message", [
    ("log.csv", "user_id,item_id,event,timestamp\nu,i,view,10\nu,j,teleport,11\n", ("--event-column", "event"),
     "log.csv:3: event: unknown event type 'teleport'"),
    ("log.csv", "user_id,item_id,timestamp\nu,i,10\n", ("--event", "purchase"),
     "log.csv:2: --event: unknown event type 'purchase'"),
    ("log.csv", "user_id,item_id,timestamp\nu,i,10\n", (), "has no rating column: an implicit log; say what its rows"),
    ("log.csv", "user_id,item_id,event,timestamp\nu,i,view,10\n", ("--event-column", "event", "--event", "view"),
     "--event-column and --event: give one"),
])
def test_event_types_of_a_csv_are_checked_naming_the_line_and_column(redis_server, tmp_path, capsys, name, text,
                                                                       extra, message):
    path = tmp_path / name
    path.write_text(text)
    assert run_import(path, redis_server.url, *extra, "--engine.events", SHOP.replace('"purchase"', '"other"')) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert stream_length(redis_server) == 0


@pytest.mark.parametrize("name,text,message", [
    ("log.jsonl", '{"user_id": "u", "item_id": "i", "event": "click"}\n{"user_id": "u", "item_id": "i", '
                  '"event": "rating"}\n', "log.jsonl:2: value: required when event is 'rating'"),
    ("log.jsonl", '{"user_id": "u", "item_id": "i", "event": "click"}\n{"user_id": "u", "item_id": "i"\n',
     "log.jsonl:2: body: Invalid JSON"),
    ("log.jsonl", '{"user_id": "u", "item_id": "i", "event": "click", "colour": "red"}\n',
     "log.jsonl:1: colour: Extra inputs are not permitted"),
    ("log.jsonl", '{"user_id": "", "item_id": "i", "event": "click"}\n', "log.jsonl:1: user_id:"),
    ("log.jsonl", '{"user_id": "u", "item_id": "i", "event": "purchase"}\n', "log.jsonl:1: event: unknown event type"),
    ("log.jsonl", '{"user_id": "u", "item_id": "i", "event": "rating", "value": 11}\n',
     "log.jsonl:1: value: 11 is outside 'rating''s scale 0..10"),
    ("log.csv", "user_id,item_id,rating,timestamp\nu,i,5,10\nu,j,high,11\n", "log.csv:3: rating: 'high' is not a number"),
    ("log.csv", "user_id,item_id,rating,timestamp\nu,i,5\n", "log.csv:2: timestamp: missing"),
    ("log.csv", "user,item,rating,timestamp\nu,i,5,10\n", "missing column(s) ['user_id', 'item_id']"),
    ("log.dat", "u::i::5::10\nu::i::5\n", "log.dat:2: line: expected user::item::rating::timestamp"),
    ("log.dat", "u::i::12::10\n", "log.dat:1: rating: 12 is outside 'rating''s scale 0..10"),
    ("log.csv", "user_id;item_id;rating;timestamp\nu;i;9;10\n", "(it looks semicolon-separated: pass --delimiter ';')"),
    ("log.csv", "", "log.csv: the file is empty (no header, no rows)"),
    ("log.csv", "user_id,item_id,rating,timestamp\nu,i,4.5,10\nu,j,3,11\n",
     "none of its 2 events is a positive under this deployment's schema"),  # a 1-5 log under the default 0-10
])
def test_bad_lines_are_refused_naming_the_line_and_field_and_nothing_is_appended(redis_server, tmp_path, capsys, name,
                                                                                 text, message):
    path = tmp_path / name
    path.write_text(text)
    assert run_import(path, redis_server.url) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert stream_length(redis_server) == 0


def test_a_log_read_under_another_schema_is_refused(redis_server, tmp_path, capsys):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,rating,timestamp\nu,i,4,10\n")
    assert run_import(path, redis_server.url, "--rating-scale", "1:5", "--positive-threshold", "4") == 0
    # the stream's schema is 1..5 now; this process says 1..10
    assert run_import(path, redis_server.url, "--rating-scale", "1:10", "--positive-threshold", "4") == 1
    assert "rating.max: stored 5.0, this process 10.0" in capsys.readouterr().err
    assert stream_length(redis_server) == 1


def test_the_same_file_read_with_other_options_is_another_source(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id;item_id;rating;timestamp\nu;i;4;10\n")
    one = source_id(source_of(path, "csv", delimiter=";"))
    two = source_id(source_of(path, "csv", delimiter=","))
    assert one[1] == two[1] and one[0] != two[0]  # same bytes, other event sequence: no resume across them
    auto = source_of(path, "csv", delimiter=";")  # 10: seconds by magnitude, the id of a source read as seconds
    assert auto.time_unit == "s" and source_id(auto) == one
    millis = source_of(path, "csv", delimiter=";", time_unit="ms")
    assert source_id(millis)[0] != one[0]
    assert [e.timestamp for e in load_events(millis, Semantics(EngineConfig().events))] == [0.01]
    with pytest.raises(ValueError, match="--format"):
        source_of(tmp_path / "log.txt")


def test_a_log_without_positives_is_appended_only_when_asked(redis_server, tmp_path):
    """Refused by default (the schema would be stored with a stream that teaches nothing);
    ``--allow-no-positives`` appends it (a log of impressions only, say)."""
    path = tmp_path / "impressions.csv"
    path.write_text("user_id,item_id,timestamp\nu,i,10\nu,j,11\n")
    assert run_import(path, redis_server.url, "--event", "impression") == 2
    assert stream_length(redis_server) == 0
    assert run_import(path, redis_server.url, "--event", "impression", "--allow-no-positives") == 0
    assert stream_length(redis_server) == 2


@pytest.mark.parametrize("flags,message", [(["--limit", "0"], "must be >= 1"), (["--limit", "-5"], "must be >= 1"),
                                           (["--delimiter", "ab"], "one character")])
def test_limits_below_one_and_long_delimiters_are_argument_errors(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["import", str(tmp_path / "x.csv"), *flags])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("typed", ["\\t", "tab", "\t"])
def test_a_tab_delimiter_as_typed_in_a_shell(redis_server, tmp_path, typed):
    path = tmp_path / "log.tsv"
    path.write_text("user_id\titem_id\trating\ttimestamp\nu\ti\t9\t10\n")
    assert build_parser().parse_args(["replay", str(path), "--delimiter", typed]).delimiter == "\t"
    assert run_import(path, redis_server.url, "--delimiter", typed) == 0
    assert stream_length(redis_server) == 1
