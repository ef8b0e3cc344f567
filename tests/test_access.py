"""Access control over real HTTP (``freshrec serve`` child processes on a real redis-server):
API keys and their scopes, both key headers, the open mode's guard rail, and rate limits
shared by replicas through Redis (``api/security.py``)."""

import hashlib
import io
import json
import subprocess
import sys

import httpx
import pytest
from pydantic import ValidationError

from api import security
from api.cli import build_parser
from api.settings import Settings, from_args
from simulators.harness import free_port, project_env
from simulators.server_process import ServerProcess
from tests.conftest import isolate
from tests.redis_proc import RedisProcess

SERVE = "serve-key-4f0c2a9d81e7b3"
OTHER_SERVE = "another-serve-key-77ab01"
CATALOGUE = "catalogue-key-9be51c06d2"
ADMIN = "admin-key-0d3f8e21c7a94b"  # configured by its digest only
LEGACY = "legacy-admin-token"  # admin_token, the admin key from before api_keys
KEYS = {SERVE: ["serve"], CATALOGUE: ["catalogue"], "sha256:" + hashlib.sha256(ADMIN.encode()).hexdigest(): ["admin"]}

PROTECTED = [  # every route that takes a scope (the coming DELETE /items, /users belong here too)
    ("POST", "/recommend", {"user_id": "u"}),
    ("POST", "/feedback", {"user_id": "u", "item_id": "i", "event": "click"}),
    ("POST", "/feedback/batch", {"events": [{"user_id": "u", "item_id": "i", "event": "click"}]}),
    ("PUT", "/items/x", {"title": "X"}),
    ("GET", "/snapshots", None),
    ("POST", "/snapshots", None),
    ("POST", "/snapshots/1/restore", None),
]
OPEN = ["/health", "/model", "/metrics", "/model/learned?event_id=0-1", "/openapi.json", "/docs"]


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def x_api_key(key):
    return {"X-API-Key": key}


def call(url, method, path, body=None, headers=None):
    return httpx.request(method, url + path, json=body, headers=headers, timeout=10)


def recommend(srv, key):
    return call(srv.url, "POST", "/recommend", {"user_id": "u"}, bearer(key))


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    """One server with API keys, bound to 0.0.0.0 (keys configured: no --insecure needed)."""
    tmp = tmp_path_factory.mktemp("keyed")
    redis = RedisProcess(tmp / "redis").start()
    try:
        with pytest.MonkeyPatch.context() as env:
            isolate(env, tmp)
            env.setenv("FRESHREC_API_KEYS", json.dumps(KEYS))
            env.setenv("FRESHREC_ADMIN_TOKEN", LEGACY)
            srv = ServerProcess(redis_url=redis.url, extra_args=["--host", "0.0.0.0"],
                                log_path=tmp / "server.log").start()
        yield srv
        srv.stop()
    finally:
        redis.kill()


# ------------------------------------------------------------------ keys and scopes

@pytest.mark.parametrize("method,path,body", PROTECTED, ids=[f"{m} {p}" for m, p, _ in PROTECTED])
def test_every_protected_route_answers_401_without_a_valid_key_even_to_loopback(keyed, method, path, body):
    missing = call(keyed.url, method, path, body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "API key required" in missing.json()["detail"]
    for headers in (bearer("not-a-key-of-this-server"), x_api_key("not-a-key-of-this-server")):
        unknown = call(keyed.url, method, path, body, headers)
        assert unknown.status_code == 401 and unknown.json()["detail"] == "unknown API key"


def test_read_only_routes_stay_open_and_openapi_declares_both_schemes(keyed):
    for path in OPEN:
        assert httpx.get(keyed.url + path).status_code == 200, path
    spec = httpx.get(keyed.url + "/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    for method, path, _ in PROTECTED:
        templated = path.replace("/x", "/{item_id}").replace("/1/", "/{version}/")
        assert spec["paths"][templated][method.lower()]["security"] == [{"bearer": []}, {"apiKey": []}], path
    assert "security" not in spec["paths"]["/health"]["get"]


@pytest.mark.parametrize("as_header", [bearer, x_api_key], ids=["bearer", "x-api-key"])
def test_a_serve_key_serves_through_either_header_and_reaches_nothing_else(keyed, as_header):
    headers = as_header(SERVE)
    assert call(keyed.url, "POST", "/recommend", {"user_id": "u"}, headers).status_code == 200
    assert call(keyed.url, "POST", "/feedback", PROTECTED[1][2], headers).status_code == 202
    assert call(keyed.url, "POST", "/feedback/batch", PROTECTED[2][2], headers).status_code == 202
    for method, path, body in PROTECTED[3:]:
        r = call(keyed.url, method, path, body, headers)
        assert r.status_code == 403 and "scope" in r.json()["detail"], path


def test_two_different_keys_in_the_two_headers_are_refused(keyed):
    both = call(keyed.url, "POST", "/recommend", {"user_id": "u"}, {**bearer(SERVE), **x_api_key(CATALOGUE)})
    assert both.status_code == 401
    same = call(keyed.url, "POST", "/recommend", {"user_id": "u"}, {**bearer(SERVE), **x_api_key(SERVE)})
    assert same.status_code == 200


@pytest.mark.parametrize("as_header", [bearer, x_api_key], ids=["bearer", "x-api-key"])
def test_a_catalogue_key_writes_items_but_cannot_snapshot_or_serve(keyed, as_header):
    headers = as_header(CATALOGUE)
    assert call(keyed.url, "PUT", "/items/x", {"title": "X"}, headers).status_code == 202
    assert call(keyed.url, "POST", "/snapshots", None, headers).status_code == 403
    assert call(keyed.url, "GET", "/snapshots", None, headers).status_code == 403
    assert call(keyed.url, "POST", "/recommend", {"user_id": "u"}, headers).status_code == 403


def test_an_admin_key_has_every_scope_and_admin_token_is_one(keyed):
    for headers in (bearer(ADMIN), x_api_key(ADMIN), bearer(LEGACY), x_api_key(LEGACY)):
        assert call(keyed.url, "GET", "/snapshots", None, headers).status_code == 200
        assert call(keyed.url, "POST", "/recommend", {"user_id": "u"}, headers).status_code == 200
        assert call(keyed.url, "PUT", "/items/y", {"title": "Y"}, headers).status_code == 202
    assert call(keyed.url, "POST", "/snapshots", None, bearer(ADMIN)).status_code == 201


def test_no_key_reaches_the_log(keyed):
    call(keyed.url, "POST", "/recommend", {"user_id": "u"}, bearer(SERVE + "-wrong"))
    text = keyed.log_path.read_text()
    for key in (SERVE, CATALOGUE, ADMIN, LEGACY):
        assert key not in text


# ------------------------------------------------------------------ rate limits

def test_the_rate_limit_is_one_budget_shared_by_two_replicas(redis_server, tmp_path, monkeypatch):
    monkeypatch.setenv("FRESHREC_API_KEYS", json.dumps({SERVE: ["serve"], OTHER_SERVE: ["serve"],
                                                        CATALOGUE: ["catalogue"]}))
    monkeypatch.setenv("FRESHREC_RATE_LIMIT", json.dumps({"serve": "4/hour"}))
    a = ServerProcess(redis_url=redis_server.url, log_path=tmp_path / "a.log").start()  # API + learner
    try:
        b = ServerProcess(redis_url=redis_server.url, extra_args=["--no-learner"], log_path=tmp_path / "b.log").start()
        try:
            assert [recommend(srv, SERVE).status_code for srv in (a, b, a, b)] == [200] * 4
            for srv in (a, b):  # the fifth request is over budget on either replica
                over = recommend(srv, SERVE)
                assert over.status_code == 429
                assert 1 <= int(over.headers["retry-after"]) <= 3600
                assert "rate limit exceeded: 4 per 1 hour" in over.json()["detail"]
            assert recommend(b, OTHER_SERVE).status_code == 200  # a budget per key
            assert all(call(b.url, "PUT", f"/items/i{n}", {}, bearer(CATALOGUE)).status_code == 202
                       for n in range(6))  # the catalogue scope has no limit here
            assert httpx.get(a.url + "/health").status_code == 200  # open routes are not limited
        finally:
            b.stop()
    finally:
        a.stop()
    client = redis_server.client()
    counters = client.keys("*ratelimit*")
    client.close()
    assert counters and all(k.startswith(b"{freshrec}:ratelimit:") for k in counters)


def test_open_mode_limits_each_client_ip_and_the_limiter_fails_open_without_redis(redis_server, tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setenv("FRESHREC_RATE_LIMIT", "3/hour")  # one budget over every scoped route
    log = tmp_path / "open.log"
    with ServerProcess(redis_url=redis_server.url, log_path=log) as srv:
        assert call(srv.url, "PUT", "/items/a", {"title": "A"}).status_code == 202
        assert [call(srv.url, "POST", "/recommend", {"user_id": "u"}).status_code for _ in range(3)] == [200, 200, 429]
        redis_server.kill()
        assert [call(srv.url, "POST", "/recommend", {"user_id": "u"}).status_code for _ in range(3)] == [200] * 3
        text = log.read_text()
        assert text.count("rate limiter: Redis failed") == 1
        assert text.count("open mode (no api_keys)") == 1  # said once at start


# ------------------------------------------------------------------ the open mode's guard rail

def test_a_non_loopback_host_without_keys_refuses_to_start_unless_insecure(redis_server, tmp_path):
    cmd = [sys.executable, "-m", "api.cli", "serve", "--host", "0.0.0.0", "--port", str(free_port()),
           "--redis-url", redis_server.url]
    refused = subprocess.run(cmd, env=project_env(), capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0
    assert "refusing to serve on 0.0.0.0" in refused.stderr and "--insecure" in refused.stderr
    log = tmp_path / "insecure.log"
    with ServerProcess(redis_url=redis_server.url, extra_args=["--host", "0.0.0.0", "--insecure"],
                       log_path=log) as srv:
        assert call(srv.url, "POST", "/recommend", {"user_id": "u"}).status_code == 200
        assert call(srv.url, "GET", "/snapshots").status_code == 200  # open mode: loopback is admin...
        proxied = call(srv.url, "GET", "/snapshots", headers={"X-Forwarded-For": "203.0.113.9"})
        assert proxied.status_code == 403  # ...but not a request a proxy forwarded
        assert "open mode (no api_keys)" in log.read_text() and "(--insecure)" in log.read_text()


# ------------------------------------------------------------------ settings (no server)

def test_plain_keys_are_hashed_at_load_from_env_or_toml(monkeypatch, tmp_path):
    monkeypatch.setenv("FRESHREC_API_KEYS", json.dumps({SERVE: ["serve"], CATALOGUE: "catalogue"}))
    held = Settings.load().api_keys.get_secret_value()
    assert held == {security.digest_of(SERVE): ["serve"], security.digest_of(CATALOGUE): ["catalogue"]}
    monkeypatch.delenv("FRESHREC_API_KEYS")
    toml = tmp_path / "freshrec.toml"
    upper = "sha256:" + security.digest_of(ADMIN)[7:].upper()  # a digest in any case
    toml.write_text(f'[api_keys]\n"{SERVE}" = ["serve", "admin"]\n"{upper}" = ["admin"]\n')
    s = Settings.load(config_file=toml)
    assert s.api_keys.get_secret_value() == {security.digest_of(SERVE): ["serve", "admin"],
                                            security.digest_of(ADMIN): ["admin"]}
    assert SERVE not in repr(s) and SERVE not in json.dumps(s.redacted()) and s.redacted()["api_keys"] == "(set)"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--api-keys", "{}"])  # a secret: no flag


@pytest.mark.parametrize("value,message", [
    ({"short-key": ["serve"]}, "at least 16 characters"),
    ({SERVE: ["serve", "root"]}, "unknown scope 'root'"),
    ({SERVE: []}, "non-empty list of scopes"),
    ({"sha256:" + SERVE: ["serve"]}, "64 hex digits"),
    (f'{{"{SERVE}": ["serve"]', "not JSON"),
])
def test_bad_api_keys_fail_at_load_without_showing_a_key(monkeypatch, value, message):
    monkeypatch.setenv("FRESHREC_API_KEYS", value if isinstance(value, str) else json.dumps(value))
    with pytest.raises(ValidationError, match=message) as err:
        Settings.load()
    assert "api_keys" in str(err.value) and SERVE not in str(err.value) and "short-key" not in str(err.value)


def test_rate_limit_and_insecure_settings(monkeypatch):
    assert Settings.load().rate_limit is None and Settings.load().insecure is False
    assert Settings.load({"rate_limit": "10/second;1000/minute"}).rate_limit == "10/second;1000/minute"
    monkeypatch.setenv("FRESHREC_RATE_LIMIT", '{"serve": "100/second"}')
    assert Settings.load().rate_limit == {"serve": "100/second"}
    assert Settings.load({"rate_limit": "off"}).rate_limit is None
    for bad in ("lots", '{"everyone": "1/second"}'):
        with pytest.raises(ValidationError, match="rate_limit"):
            Settings.load({"rate_limit": bad})
    parser = build_parser()
    assert from_args(parser.parse_args(["serve", "--insecure"])).insecure is True
    assert from_args(parser.parse_args(["serve", "--insecure", "false"])).insecure is False


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("127.0.1.1", True), ("::1", True),
                                           ("localhost", True), ("0.0.0.0", False), ("::", False),
                                           ("10.1.2.3", False), ("example.org", False), ("", False)])
def test_loopback_hosts(host, loopback):
    assert security.is_loopback(host) is loopback


def test_the_digest_helper_reads_keys_from_stdin(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{SERVE}\n"))
    assert security.main() == 0
    assert capsys.readouterr().out.strip() == "sha256:" + hashlib.sha256(SERVE.encode()).hexdigest()
