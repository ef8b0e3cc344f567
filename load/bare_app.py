"""Bare FastAPI reference app for ``load/bench.py``: the ceiling of the web stack alone.

One ``async def`` POST endpoint (``/recommend``, so the same Locust user classes can hit it)
that returns a small constant JSON; no pydantic body model, no I/O. Served exactly like
``freshrec serve``: uvicorn, one worker, ``loop="uvloop"``, ``http="httptools"``, no access
log. Whatever rate this reaches with a given load generator is the upper bound any FastAPI
endpoint can reach on the same machine with the same generator.

    python load/bare_app.py --port 8001
"""

from __future__ import annotations

import argparse

from fastapi import FastAPI

app = FastAPI()
_ANSWER = {"recommendation_id": "bare", "model_version": 0,
           "items": [{"item_id": f"i{n}", "score": 0.0} for n in range(10)]}


@app.post("/recommend")
async def recommend() -> dict:
    """A constant 10-item slate (the size of a real k=10 answer)."""
    return _ANSWER


@app.post("/feedback", status_code=202)
async def feedback() -> dict:
    """A constant acknowledgement."""
    return {"event_id": "0-0"}


@app.get("/health")
async def health() -> dict:
    return {"status": "ok"}


def main() -> None:
    import uvicorn

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    a = p.parse_args()
    uvicorn.run(app, host=a.host, port=a.port, workers=1, loop="uvloop", http="httptools",
                access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
