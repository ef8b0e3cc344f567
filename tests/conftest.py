import pytest

from tests.redis_proc import RedisProcess


@pytest.fixture
def redis_server(tmp_path):
    """A fresh real redis-server on a free port (never the one on 6379), killed afterwards."""
    server = RedisProcess(tmp_path / "redis").start()
    yield server
    server.kill()
