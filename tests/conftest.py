import pytest

from tests.redis_proc import RedisProcess

SNAPSHOT_KEY = "test-snapshot-key"


def isolate(env: pytest.MonkeyPatch, tmp) -> None:
    """Snapshots signed with a known key, embedded data under ``tmp``, never in the working
    tree; no Redis URL, admin token, API keys, rate limit or insecure flag from outside
    (access: open by default). Module-scoped server fixtures call it in their own
    ``MonkeyPatch.context()``, then set what they need on top."""
    env.setenv("FRESHREC_SNAPSHOT_KEY", SNAPSHOT_KEY)
    env.setenv("FRESHREC_DATA_DIR", str(tmp / "freshrec-data"))
    for name in ("FRESHREC_REDIS_URL", "FRESHREC_ADMIN_TOKEN", "FRESHREC_API_KEYS", "FRESHREC_RATE_LIMIT",
                 "FRESHREC_INSECURE"):
        env.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """Every test (and every server it spawns) runs isolated (``isolate``)."""
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def redis_server(tmp_path):
    """A fresh real redis-server on a free port (never the one on 6379), killed afterwards."""
    server = RedisProcess(tmp_path / "redis").start()
    yield server
    server.kill()
