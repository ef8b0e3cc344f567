"""Item tags (``PUT /items/{id}`` metadata) and each user's taste for them, so an item with
tags a user likes can rank before its first click.

A user's profile counts the tags of the items they acted on (a positive of weight w adds w
to each of the item's tags, at most ``MAX_ITEM_TAGS`` per item); the ranker's feature
``tag_affinity`` of item i for user u is the share of u's tag mass on i's tags:

.. math::

    a(u, i) = \\frac{\\sum_{t \\in tags(i)} n_u(t)}{1 + \\sum_t n_u(t)}

Memory: ``MAX_ITEM_TAGS`` int32 per item, and per user at most ``MAX_USER_TAGS`` tags (the
lightest is dropped when a new one arrives).
"""

from __future__ import annotations

import numpy as np

from engine.core.arrays import ensure_capacity
from engine.core.steps import ROWS_PER_STEP, Steps, run

MAX_ITEM_TAGS = 8
MAX_USER_TAGS = 32


class TagProfiles:
    """The tag vocabulary, the tags of every item, and per-user tag counts."""

    def __init__(self) -> None:
        self.vocabulary: dict[str, int] = {}
        self.names: list[str] = []
        self.item_tags = np.full((0, MAX_ITEM_TAGS), -1, dtype=np.int32)
        self.users: dict[str, dict[int, float]] = {}
        self.n = 0

    def grow(self, n: int) -> None:
        if n > self.n:
            self.item_tags = ensure_capacity(self.item_tags, n, fill=-1)
            self.n = n

    def set_item(self, idx: int, tags: list[str] | None) -> None:
        """The item's tags (the first ``MAX_ITEM_TAGS`` distinct ones)."""
        self.grow(idx + 1)
        ids = []
        for tag in dict.fromkeys(tags or ()):
            if len(ids) == MAX_ITEM_TAGS:
                break
            if tag not in self.vocabulary:
                self.vocabulary[tag] = len(self.names)
                self.names.append(tag)
            ids.append(self.vocabulary[tag])
        self.item_tags[idx] = -1
        self.item_tags[idx, : len(ids)] = ids

    def on_positive(self, user: str, idx: int, weight: float = 1.0) -> None:
        """Count the item's tags in the user's profile (nothing for untagged items)."""
        if idx >= self.n:
            return
        tags = self.item_tags[idx]
        tags = tags[tags >= 0]
        if not len(tags):
            return
        profile = self.users.setdefault(user, {})
        for t in tags.tolist():
            if t not in profile and len(profile) >= MAX_USER_TAGS:
                del profile[min(profile, key=profile.get)]
            profile[t] = profile.get(t, 0.0) + weight

    def affinity(self, user: str, items: np.ndarray) -> np.ndarray:
        """``tag_affinity`` of ``items`` for ``user`` (0 without a profile): (len(items),)."""
        profile = self.users.get(user)
        if not profile or not self.n:
            return np.zeros(len(items))
        weights = np.zeros(len(self.names) + 1)  # the last slot: "no tag" (-1)
        weights[list(profile)] = list(profile.values())
        tags = self.item_tags[np.minimum(items, self.n - 1)]
        tags = np.where(items[:, None] < self.n, tags, -1)
        return weights[tags].sum(axis=1) / (1.0 + sum(profile.values()))

    def state(self, user_rows: dict[str, int]) -> tuple[dict[str, np.ndarray], dict]:
        """Arrays + metadata for a snapshot; profiles as (user row, tag, weight) triples in
        insertion order (``user_rows``: user id -> row of the factor model's users)."""
        users, tags, weights = [], [], []
        for u, profile in self.users.items():
            row = user_rows[u]
            for t, w in profile.items():
                users.append(row)
                tags.append(t)
                weights.append(w)
        return ({"tags_items": self.item_tags[: self.n], "tags_user": np.array(users, dtype=np.int64),
                 "tags_tag": np.array(tags, dtype=np.int32), "tags_weight": np.array(weights)},
                {"names": self.names})

    def load(self, arrays: dict[str, np.ndarray], meta: dict, user_ids: list[str]) -> None:
        """Restore from ``state`` (``user_ids``: the factor model's users, by row)."""
        run(self.load_steps(arrays, meta, user_ids))

    def load_steps(self, arrays: dict[str, np.ndarray], meta: dict, user_ids: list[str]) -> Steps[None]:
        """``load`` as cooperative steps (``engine.core.steps``)."""
        self.__init__()
        for name in meta["names"]:
            self.vocabulary[name] = len(self.names)
            self.names.append(name)
        self.grow(len(arrays["tags_items"]))
        self.item_tags[: len(arrays["tags_items"])] = arrays["tags_items"]
        rows, tags, weights = arrays["tags_user"], arrays["tags_tag"], arrays["tags_weight"]
        for start in range(0, len(rows), ROWS_PER_STEP):
            end = start + ROWS_PER_STEP
            for row, t, w in zip(rows[start:end].tolist(), tags[start:end].tolist(), weights[start:end].tolist()):
                self.users.setdefault(user_ids[row], {})[t] = w
            yield
