"""The replay carries the data's semantics to the server it starts, learns from a 1-5 star
log and beats popularity, refuses a server that reads ratings differently, and fails loudly
when the model learned nothing."""

import json
import subprocess
import sys

import pytest

from simulators.rating_log import generate, write_csv
from simulators.replay import failures, rating_semantics
from simulators.datasets import Rating
from simulators.server_process import ServerProcess


@pytest.fixture(scope="module")
def stars(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "stars.csv"
    write_csv(generate(n_users=150, n_items=300, n_ratings=6000, seed=1, sitting_max=30), path)
    return path


def cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "api.cli", *args], capture_output=True, text=True, timeout=timeout)


def test_a_1_to_5_log_replayed_through_the_cli_learns_and_beats_popularity(stars, tmp_path):
    out = tmp_path / "out"
    r = cli("replay", str(stars), "--format", "csv", "--positive-threshold", "4", "--out", str(out))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert res["schema"]["rating"]["min"] == 1 and res["schema"]["rating"]["positive_threshold"] == 4
    assert res["positives_learned"] > 0
    m = res["models"]
    assert m["freshrec"]["hr@10"] > m["popularity"]["hr@10"]
    assert m["freshrec"]["hr@10"] > m["random"]["hr@10"]
    assert {"batch_hourly", "batch_daily", "batch_weekly", "online_in_process"} <= set(m)
    assert m["online_in_process"]["hr@10"] == m["freshrec"]["hr@10"]  # the same engine, over HTTP and in process


def test_a_replay_refuses_a_server_that_reads_ratings_differently(stars, redis_server, tmp_path):
    with ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "s.log") as srv:  # default 0-10 scale
        r = cli("replay", str(stars), "--format", "csv", "--positive-threshold", "4", "--url", srv.url,
                "--no-batch", "--out", str(tmp_path / "out"))
    assert r.returncode != 0
    assert "reads ratings differently" in r.stderr and "--rating-scale=1:5" in r.stderr


def test_a_log_in_milliseconds_replays_as_seconds_and_a_refused_event_ends_with_the_servers_reason(tmp_path):
    log = tmp_path / "ms.csv"
    log.write_text("user_id,item_id,rating,timestamp\n" + "".join(
        f"u{n % 7},i{n % 11},{1 + n % 5},{(1_425_470_400 + 60 * n) * 1000}\n" for n in range(40)))
    ok = cli("replay", str(log), "--format", "csv", "--rating-scale", "1:5", "--positive-threshold", "4",
             "--no-batch", "--out", str(tmp_path / "ok"))
    assert "read as milliseconds" in ok.stdout
    res = json.loads((tmp_path / "ok" / "results.json").read_text())
    assert res["events"] == 40 and res["positives_learned"] > 0
    forced = cli("replay", str(log), "--format", "csv", "--rating-scale", "1:5", "--positive-threshold", "4",
                 "--no-batch", "--time-unit", "s", "--out", str(tmp_path / "forced"))
    assert forced.returncode == 2
    assert "refused POST /feedback" in forced.stderr and "timestamp" in forced.stderr
    assert "looks like milliseconds" in forced.stderr and "Traceback" not in forced.stderr


def test_a_scale_with_a_negative_minimum_reaches_the_server(tmp_path):
    log = tmp_path / "jokes.tsv"  # Jester-like: continuous ratings from -10 to 10, tab-separated, other names
    log.write_text("uid\tjoke\tscore\twhen\n" + "".join(
        f"u{n % 7}\tj{n % 11}\t{-10 + (n * 7.3) % 20:.2f}\t{1_425_470_400 + 60 * n}\n" for n in range(60)))
    r = cli("replay", str(log), "--format", "csv", "--delimiter", "\t", "--columns", "uid,joke,score,when",
            "--rating-scale=-10:10", "--positive-threshold", "5", "--no-batch", "--out", str(tmp_path / "out"))
    assert r.returncode in (0, 1), r.stderr[-2000:]  # 1: a verdict on the tiny log, not a refused start
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["schema"]["rating"]["min"] == -10 and res["schema"]["rating"]["positive_threshold"] == 5
    assert res["positives_learned"] > 0


def test_an_implicit_log_without_a_rating_column_replays_every_row_as_a_positive(tmp_path):
    log = tmp_path / "views.csv"
    log.write_text("user_id,item_id,timestamp\n" + "".join(
        f"u{n % 7},i{n % 11},{1_425_470_400 + 60 * n}\n" for n in range(40)))
    r = cli("replay", str(log), "--format", "csv", "--no-batch", "--out", str(tmp_path / "out"))
    assert "no rating column: an implicit log" in r.stdout, r.stderr[-2000:]
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    rating = res["schema"]["rating"]
    assert (rating["min"], rating["max"], rating["positive_threshold"]) == (0, 1, 1)
    assert res["positives_learned"] == 40
    refused = cli("replay", str(log), "--format", "csv", "--rating-scale", "1:5", "--out", str(tmp_path / "x"))
    assert refused.returncode != 0 and "has no rating scale" in refused.stderr


def test_a_shop_log_with_an_event_column_replays_under_the_schema_its_config_declares(tmp_path):
    log = tmp_path / "shop.csv"  # RetailRocket's layout: time in ms, visitor, event type, item
    log.write_text("timestamp,visitorid,event,itemid\n" + "".join(
        f"{(1_425_470_400 + 60 * n) * 1000},v{n % 7},{('view', 'addtocart', 'transaction')[n % 3]},i{n % 11}\n"
        for n in range(60)))
    args = ("replay", str(log), "--format", "csv", "--columns", "visitorid,itemid,timestamp", "--event-column",
            "event", "--no-batch")
    undeclared = cli(*args, "--out", str(tmp_path / "a"))
    assert undeclared.returncode != 0
    assert "['addtocart', 'transaction', 'view'] are not in the server's schema" in undeclared.stderr
    config = tmp_path / "shop.toml"
    config.write_text('[engine.events]\nview = {role = "positive", weight = 0.3}\n'
                      'addtocart = {role = "positive", weight = 1.0}\ntransaction = {role = "negative"}\n')
    r = cli(*args, "--config", str(config), "--ablation", "--out", str(tmp_path / "b"))
    assert r.returncode in (0, 1), r.stderr[-2000:]  # 1: a verdict on the tiny log, not a refusal
    res = json.loads((tmp_path / "b" / "results.json").read_text())
    assert res["schema"]["view"]["role"] == "positive" and res["schema"]["transaction"]["role"] == "negative"
    assert res["positives_learned"] == 40  # views and carts; purchases are negatives under this config
    assert res["ablation"]["all features"]["hr@10"] == res["models"]["freshrec"]["hr@10"]  # same schema in process


def test_a_log_the_replay_cannot_read_ends_with_a_message_naming_it(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("user,item,stars,ts\nu,i,4,1\n")
    r = cli("replay", str(log), "--format", "csv", "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "missing column(s) ['user_id', 'item_id', 'rating', 'timestamp']" in r.stderr and "'stars'" in r.stderr


def test_semantics_default_to_the_datas_scale_and_its_top_quarter():
    rows = [Rating("u", "i", v, 0.0) for v in (1, 3, 5)]
    assert rating_semantics(rows) == {"role": "rating", "min": 1, "max": 5, "positive_threshold": 4.0}
    with pytest.raises(SystemExit):
        rating_semantics(rows, "1:5", 9)


def test_a_model_that_learned_no_positive_fails_the_replay():
    results = {"events": 100, "positives_learned": 0, "schema": {"rating": {"positive_threshold": 8}},
               "models": {"freshrec": {"hr@10": 0.0}, "random": {"hr@10": 0.01}}}
    assert "learned no positive" in failures(results)[0]
    results.update(positives_learned=10, models={"freshrec": {"hr@10": 0.005}, "random": {"hr@10": 0.01}})
    assert "below a random slate" in failures(results)[0]
    results["models"]["freshrec"]["hr@10"] = 0.02
    assert failures(results) == []


def test_sigterm_stops_the_replay_and_the_server_and_redis_it_started(stars, tmp_path):
    """A replay stopped by SIGTERM (``timeout``, a CI runner, a supervisor) unwinds like
    Ctrl-C: it says it was interrupted, exits 130 and leaves no server or redis-server behind
    (they used to keep running, reparented to init)."""
    import signal

    import psutil

    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "replay", str(stars), "--format", "csv",
                             "--positive-threshold", "4", "--no-batch", "--out", str(tmp_path / "out")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = b""
    while b"replay:" not in seen:  # the progress bar: its server is up and events are flowing
        chunk = proc.stderr.read(1)
        assert chunk, f"the replay ended before replaying: {seen[-2000:]!r}"
        seen += chunk
    children = psutil.Process(proc.pid).children(recursive=True)
    assert any("serve" in " ".join(c.cmdline()) for c in children)
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130
    assert b"freshrec replay: interrupted" in rest and b"Traceback" not in rest
    _, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, [c.cmdline() for c in alive]


def test_a_server_that_dies_mid_replay_is_named_not_a_traceback(stars, tmp_path):
    """The replay's server killed (-9) half-way: the replay ends with exit 2 and says the
    server stopped answering and where its log is (it was a ConnectError traceback)."""
    import psutil

    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "replay", str(stars), "--format", "csv",
                             "--positive-threshold", "4", "--no-batch", "--out", str(tmp_path / "out")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = b""
    while b"replay:" not in seen:
        chunk = proc.stderr.read(1)
        assert chunk, f"the replay ended before replaying: {seen[-2000:]!r}"
        seen += chunk
    (server,) = [c for c in psutil.Process(proc.pid).children() if "serve" in " ".join(c.cmdline())]
    server.kill()
    rest = proc.stderr.read()
    for p in psutil.process_iter(["name"]):  # its embedded redis-server (daemonised) outlives a kill -9
        try:
            if p.info["name"] == "redis-server" and str(tmp_path) in p.cwd():
                p.kill()
        except psutil.Error:
            pass
    assert proc.wait(timeout=120) == 2
    assert b"the server stopped answering" in rest and b"server.log" in rest and b"Traceback" not in rest


def test_a_header_only_log_is_refused_and_repeated_rows_are_noted(stars, tmp_path):
    header = tmp_path / "header.csv"
    header.write_text("user_id,item_id,rating,timestamp\n")
    r = cli("replay", str(header), "--format", "csv")
    assert r.returncode == 2 and "header.csv: no rows to replay" in r.stderr and "Traceback" not in r.stderr
    lines = stars.read_text().splitlines()
    doubled = tmp_path / "doubled.csv"
    doubled.write_text("\n".join(lines[:1] + [x for line in lines[1:1001] for x in (line, line)]) + "\n")
    r = cli("replay", str(doubled), "--format", "csv", "--positive-threshold", "4", "--no-batch",
            "--out", str(tmp_path / "out"))
    assert "NOTE: 1,000 rows (50.0%) repeat an earlier row exactly" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
