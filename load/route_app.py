"""freshrec's HTTP path with the ranking taken out, for ``load/bench.py``'s ``recommend_route_only`` row.

The real app (``api.app.create_app``: middleware, request validation, slate id, impression
record for the guard's join, metrics, response serialisation, embedded Redis and the learner
task) with ``Recommender.serve`` replaced by a constant 10-item slate. Served exactly like
``freshrec serve`` (uvicorn, one worker, uvloop + httptools, no access log). The gap between
this row and ``bare_fastapi`` is what freshrec's HTTP path costs; the gap between this row
and ``recommend`` is what ranking 100k items costs.

    python load/route_app.py --port 8002 --data-dir /tmp/route-redis
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.core.recommender import Recommender, Served  # noqa: E402

_IDS = [f"i{n}" for n in range(100)]


def constant_slate(self, user_id: str, k: int = 10, exclude=(), context=None, policy=None, seed=0,
                   rules=None, shadow=None) -> Served:
    """The first ``k`` of 100 fixed items: no model read, no exclusions."""
    return Served(_IDS[:k], [0.0] * k, [1.0] * k, [False] * k, [False] * k)


def main() -> None:
    import uvicorn

    from api.app import create_app
    from api.settings import Settings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8002)
    p.add_argument("--data-dir", required=True, help="embedded Redis directory")
    a = p.parse_args()
    Recommender.serve = constant_slate
    uvicorn.run(create_app(Settings(data_dir=a.data_dir, final_snapshot=False)), host=a.host, port=a.port,
                workers=1, loop="uvloop", http="httptools", access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
