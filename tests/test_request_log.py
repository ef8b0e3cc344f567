"""Access log and request ids (``api.request_log``), as JSON lines from a real server
(``--log-format json``) on a real redis-server."""

import json
import time

import httpx
import pytest

from simulators.server_process import ServerProcess


def access_lines(log_path) -> list[dict]:
    lines = []
    for raw in log_path.read_text().splitlines():
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if line.get("name") == "freshrec.access":
            lines.append(line)
    return lines


def logged(log_path, request_id: str, timeout_s: float = 10.0) -> dict:
    """The access line of ``request_id`` (bounded polling: the server writes it after answering)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in access_lines(log_path):
            if line["request_id"] == request_id:
                return line
        time.sleep(0.02)
    raise AssertionError(f"no access line for request {request_id} in {log_path}")


@pytest.fixture
def server(redis_server, tmp_path):
    with ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "server.log",
                       extra_args=["--log-format", "json"]) as srv:
        yield srv


def test_a_request_id_is_echoed_and_logged_as_json_with_status_and_latency(server, tmp_path):
    log_path = tmp_path / "server.log"
    with httpx.Client(base_url=server.url, timeout=10) as http:
        r = http.post("/recommend", json={"user_id": "u", "k": 3}, headers={"X-Request-ID": "abc"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "abc"
        line = logged(log_path, "abc")
        assert line["method"] == "POST" and line["route"] == "/recommend" and line["status"] == 200
        assert 0.0 < line["latency_ms"] < 10_000.0
        assert line["levelname"] == "INFO" and line["message"] == "request" and "timestamp" in line

        bad = http.put("/items/x", json={"tags": "not a list"}, headers={"X-Request-ID": "item-put"})
        line = logged(log_path, "item-put")
        assert bad.status_code == 422 and line["status"] == 422 and line["route"] == "/items/{item_id}"

        generated = http.get("/nowhere", headers={"X-Request-ID": "has spaces and \" quotes"})
        request_id = generated.headers["x-request-id"]
        assert len(request_id) == 32 and request_id.isalnum()  # an unsafe id is replaced by a fresh one
        line = logged(log_path, request_id)
        assert line["status"] == 404 and line["route"] is None

    ids = [line["request_id"] for line in access_lines(log_path)]
    assert ids.count("abc") == 1  # one line per request
    lines = [json.loads(raw) for raw in log_path.read_text().splitlines()]  # every line is JSON
    assert len(lines) >= 4
    assert all(line["timestamp"].endswith("+00:00") for line in lines)  # ISO 8601, UTC
