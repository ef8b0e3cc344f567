"""The pure learning core: events, catalogue, trend, co-occurrence, the River factor model,
ranking, the recommender, the forgetting guard and the snapshot codec.

Nothing here imports Redis, asyncio, FastAPI or ``engine.storage`` / ``engine.roles``
(``tests/test_layers.py`` and the import-linter contract in ``pyproject.toml`` check it), so
the same objects run in a server, a simulator or a notebook.
"""
