import pytest

from tests.redis_proc import RedisProcess

SNAPSHOT_KEY = "test-snapshot-key"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """Every test (and every server it spawns) signs snapshots with a known key and keeps
    any embedded data under its own tmp dir, never in the working tree."""
    monkeypatch.setenv("FRESHREC_SNAPSHOT_KEY", SNAPSHOT_KEY)
    monkeypatch.setenv("FRESHREC_DATA_DIR", str(tmp_path / "freshrec-data"))
    monkeypatch.delenv("FRESHREC_REDIS_URL", raising=False)
    monkeypatch.delenv("FRESHREC_ADMIN_TOKEN", raising=False)
    for name in ("FRESHREC_API_KEYS", "FRESHREC_RATE_LIMIT", "FRESHREC_INSECURE"):  # access: open by default
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def redis_server(tmp_path):
    """A fresh real redis-server on a free port (never the one on 6379), killed afterwards."""
    server = RedisProcess(tmp_path / "redis").start()
    yield server
    server.kill()
