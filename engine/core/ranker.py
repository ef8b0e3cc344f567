"""The final ranker: River models that learn, from the deployment's own stream, which signals
count and how much, and the one that currently ranks best serves.

Each candidate ranker ``k`` scores an item for a user with the weights of a River
``linear_model.LogisticRegression`` over the standardised features of its feature groups:

.. math::

    s_k(u, i) = \\sum_{f \\in F_k} w_{k, f} \\, \\frac{x_f(u, i) - \\mu_f}{\\sigma_f}

``x`` are the per-candidate features of ``engine.core.features``; ``mu`` and ``sigma`` come
from one River ``preprocessing.StandardScaler`` shared by all. The candidates differ by the
feature groups they may use (``FEATURE_SETS``: popularity alone, + the user's
co-occurrence and transitions, + the factor model, tags and context, + everything): a
weight that a stream cannot support costs ranking quality while it is being learned
(measured on MovieTweetings: the factor and age features cost ~1.5 points of HR@10 there),
so the choice between them is made online, on the stream, by the metric a slate is judged
by.

Learning is listwise, for every candidate at once: for a positive of user u, the list is
the candidates a slate for u would have been drawn from at that moment plus the positive.
Before the step each ranker is scored on the list (is the positive in its top 10?), into an
exponentially decayed hit rate (``hit_rate``; half-life ``SELECTION_HALF_LIFE`` lists); then
each takes one step on the softmax cross-entropy of the positive in the list (ListNet's
top-one probability, Cao et al., ICML 2007): ``grad = p @ z - z_pos`` with
``p = softmax(s_k)``, applied by its own River optimiser (AdaGrad, Duchi et al. 2011, so no
feature's scale sets the pace). The scaler learns from the positive and three list rows per
step. The serving ranker is the one with the best decayed hit rate (the earlier, simpler
one on ties). Measured on MovieTweetings against pointwise and pairwise logistic training
on sampled negatives: those learned to separate the positive from an average candidate and
ranked the top worse than a single popularity counter; the listwise step targets the top.

Serving scores hundreds of candidates at once with the model's own parameters read into
numpy vectors (``score``): equal to River's ``StandardScaler.transform_one`` followed by the
weights' dot product, to rounding (tested). Before any learning every ranker ranks by the
mean standardised popularity (the scaler starts from one pseudo-observation of mean 0 and
variance 1 per feature, the popularity weights from ``1 / columns``): "what is trending".

Args:
    groups: feature group -> column names (``engine.core.features.feature_groups``), in
        column order.
    prior: initial weight per column name (others start at 0).
    learning_rate: AdaGrad step.
    l2: L2 penalty on the weights.
"""

from __future__ import annotations

import math

import numpy as np
from river import linear_model, optim, preprocessing

FEATURE_SETS = (
    ("popularity",),
    ("popularity", "co-occurrence", "transitions", "context", "metadata"),
    ("popularity", "co-occurrence", "transitions", "factors", "context", "metadata"),
    None,  # every group
)
"""The candidate rankers' feature groups, simplest first (None: all)."""
SELECTION_HALF_LIFE = 2000.0  # lists: half-life of the decayed hit rate that picks the serving ranker
TOP = 10  # the slate size the selection judges by


class Ranker:
    """Candidate River rankers over nested feature sets, listwise learning, online selection
    and vectorised scoring."""

    def __init__(self, groups: dict[str, tuple[str, ...]], prior: dict[str, float] | None = None,
                 learning_rate: float = 0.05, l2: float = 1e-4) -> None:
        self.groups = {g: tuple(cols) for g, cols in groups.items()}
        self.names = [c for cols in self.groups.values() for c in cols]
        self.learning_rate = learning_rate
        self.l2 = l2
        prior = prior or {}
        self.scaler = preprocessing.StandardScaler()
        for name in self.names:  # one pseudo-observation: mean 0, variance 1 (raw scale at first)
            self.scaler.counts[name] = 1
            self.scaler.means[name] = 0.0
            self.scaler.vars[name] = 1.0
        self.columns: list[np.ndarray] = []
        self.models: list[linear_model.LogisticRegression] = []
        for groups_k in FEATURE_SETS:
            cols = [c for g in (groups_k or self.groups) for c in self.groups.get(g, ())]
            self.columns.append(np.array(sorted(self.names.index(c) for c in cols), dtype=np.int64))
            lr = linear_model.LogisticRegression(optimizer=optim.AdaGrad(learning_rate), l2=l2, intercept_lr=0.0)
            for c in cols:
                lr._weights[c] = float(prior.get(c, 0.0))
            self.models.append(lr)
        self.forced: int | None = None  # a candidate that serves whatever the hit rates say (experiments)
        self.reweight: dict[str, float] | None = None  # factors on the serving weights, by group (experiments)
        self.hits = np.zeros(len(self.models))  # decayed hits of each candidate
        self.mass = 0.0  # decayed number of lists
        self.examples = 0
        self._cache: dict = {}  # candidate -> parameters, "scaling" -> (means, inv)

    @property
    def serving(self) -> int:
        """Index of the candidate that serves: the best decayed hit rate (first on ties), or
        ``forced`` when set."""
        if self.forced is not None:
            return self.forced
        return int(np.argmax(self.hits)) if self.mass else 0

    def uses(self, group: str) -> bool:
        """Whether the serving candidate reads feature group ``group`` (serving skips the
        work of a group it does not read, e.g. the factor candidate source's scan)."""
        groups = self.serving_groups()
        return groups is None or group in groups

    def serving_groups(self) -> frozenset[str] | None:
        """The feature groups the serving candidate reads (None: every group). Serving
        computes only these (``engine.core.features.features``' ``groups``): the other
        columns have weight 0 in its score, so the scores are the same."""
        groups = FEATURE_SETS[self.serving]
        return None if groups is None else frozenset(groups)

    def hit_rate(self) -> list[float | None]:
        """Each candidate's decayed HR@10 on the lists learned so far (None before any)."""
        return [round(float(h / self.mass), 4) if self.mass else None for h in self.hits]

    def parameters(self, k: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(means, 1 / standard deviations (0 where the variance is 0, as River's scaler),
        weights (0 outside the candidate's columns)), each (features,), in ``names`` order,
        for candidate ``k`` (default: the serving one)."""
        k = self.serving if k is None else k
        cached = self._cache.get(k)
        if cached is None:
            means, inv = self._scaling()
            w = self.models[k]._weights
            weights = np.array([w.get(n, 0.0) for n in self.names])
            if self.reweight:
                for group, factor in self.reweight.items():
                    for c in self.groups.get(group, ()):
                        weights[self.names.index(c)] *= factor
            cached = self._cache[k] = means, inv, weights
        return cached

    def _scaling(self) -> tuple[np.ndarray, np.ndarray]:
        """The scaler's (means, 1 / standard deviations), (features,) each, shared by every
        candidate (cached with them)."""
        cached = self._cache.get("scaling")
        if cached is None:
            s = self.scaler
            means = np.array([s.means.get(n, 0.0) for n in self.names])
            var = np.array([s.vars.get(n, 0.0) for n in self.names])
            inv = np.divide(1.0, np.sqrt(var), out=np.zeros_like(var), where=var > 0)
            cached = self._cache["scaling"] = means, inv
        return cached

    def score(self, features: np.ndarray, k: int | None = None) -> np.ndarray:
        """Scores of ``features`` (n, d) by candidate ``k`` (default: the serving one): (n,)."""
        means, inv, weights = self.parameters(k)
        return ((features - means) * inv) @ weights

    def contributions(self, features: np.ndarray) -> np.ndarray:
        """Per-feature parts of the serving ranker's score (n, d) (``explain``)."""
        means, inv, weights = self.parameters()
        return (features - means) * inv * weights

    def learn_list(self, features: np.ndarray, positive: int, scaler_rows: np.ndarray, weight: float = 1.0) -> None:
        """One listwise step for every candidate: ``features`` (n, d) are the list's rows,
        ``positive`` the row acted on, ``scaler_rows`` the rows the scaler learns from,
        ``weight`` scales the gradient (and the example's share of the hit rate)."""
        names = self.names
        for r in scaler_rows.tolist():
            self.scaler.learn_one(dict(zip(names, features[r].tolist())))
        self._cache.clear()
        decay = math.exp(-math.log(2.0) / SELECTION_HALF_LIFE)
        self.hits *= decay
        self.mass = self.mass * decay + weight
        for k, (lr, cols) in enumerate(zip(self.models, self.columns)):
            means, inv, w = self.parameters(k)
            z = (features[:, cols] - means[cols]) * inv[cols]
            s = z @ w[cols]
            self.hits[k] += weight * float(np.sum(s >= s[positive]) <= TOP)  # judged before it learns; ties count against
            p = np.exp(s - s.max())
            p /= p.sum()
            grad = weight * (p @ z - z[positive]) + self.l2 * w[cols]
            lr.optimizer.step(lr._weights, {names[c]: g for c, g in zip(cols.tolist(), grad.tolist())})
        self.examples += 1
        self._cache.clear()

    def weights(self) -> dict:
        """What the ranker learned, for ``results.json`` and ``GET /model``: the serving
        candidate, every candidate's feature groups, decayed HR@10 and weights (on
        standardised features)."""
        return {"serving": self.serving, "lists": self.examples, "candidates": [
            {"groups": list(FEATURE_SETS[k] or self.groups), "hit_rate": hr,
             "weights": {self.names[c]: round(float(self.parameters(k)[2][c]), 4) for c in self.columns[k].tolist()}}
            for k, hr in enumerate(self.hit_rate())]}

    # ------------------------------------------------------------------ snapshots
    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        """Arrays and metadata that restore the ranker exactly (scaler counts, means and
        variances; each candidate's weights and AdaGrad sums; the selection's hits)."""
        s = self.scaler
        arrays = {
            "ranker_counts": np.array([s.counts.get(n, 0) for n in self.names], dtype=np.int64),
            "ranker_means": np.array([s.means.get(n, 0.0) for n in self.names]),
            "ranker_vars": np.array([s.vars.get(n, 0.0) for n in self.names]),
            "ranker_weights": np.array([[lr._weights.get(n, 0.0) for n in self.names] for lr in self.models]),
            "ranker_g2": np.array([[lr.optimizer.g2.get(n, 0.0) for n in self.names] for lr in self.models]),
            "ranker_hits": self.hits,
        }
        meta = {"groups": {g: list(c) for g, c in self.groups.items()}, "examples": self.examples,
                "mass": self.mass, "iterations": [lr.optimizer.n_iterations for lr in self.models],
                "learning_rate": self.learning_rate, "l2": self.l2}
        return arrays, meta

    @classmethod
    def from_state(cls, arrays: dict[str, np.ndarray], meta: dict) -> "Ranker":
        """Inverse of ``state``."""
        r = cls(meta["groups"], learning_rate=meta["learning_rate"], l2=meta["l2"])
        s = r.scaler
        for n, c, m, v in zip(r.names, arrays["ranker_counts"].tolist(), arrays["ranker_means"].tolist(),
                              arrays["ranker_vars"].tolist()):
            s.counts[n], s.means[n], s.vars[n] = c, m, v
        for lr, cols, w_row, g_row, it in zip(r.models, r.columns, arrays["ranker_weights"].tolist(),
                                              arrays["ranker_g2"].tolist(), meta["iterations"]):
            for c in cols.tolist():
                lr._weights[r.names[c]] = w_row[c]
                if g_row[c]:
                    lr.optimizer.g2[r.names[c]] = g_row[c]
            lr.optimizer.n_iterations = it
        r.hits = arrays["ranker_hits"].copy()
        r.mass = meta["mass"]
        r.examples = meta["examples"]
        return r
