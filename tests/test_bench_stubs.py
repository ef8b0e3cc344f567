"""The benchmark's stand-in for ranking (``load/route_app.py``) must take whatever the app
passes to ``Recommender.serve``: when it did not, ``load/bench.py``'s recommend_route_only
row measured nothing but HTTP 500s."""

import importlib.util
import inspect
from pathlib import Path

from engine.config import EngineConfig
from engine.core.recommender import Recommender, Served


def load_route_app():
    path = Path(__file__).resolve().parent.parent / "load" / "route_app.py"
    spec = importlib.util.spec_from_file_location("route_app", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_constant_slate_takes_the_parameters_of_serve_and_answers_a_full_slate():
    stub = load_route_app().constant_slate
    assert list(inspect.signature(stub).parameters) == list(inspect.signature(Recommender.serve).parameters)
    rec = Recommender(EngineConfig())
    served = stub(rec, "u1", 10, (), None, None, 7, None)  # positionally, as the guard calls serve
    assert isinstance(served, Served)
    assert len(served.item_ids) == len(served.promoted) == 10
