"""Synthetic click world with known ground truth, driving the in-process engine.

Unlike the replays (which go through the HTTP API), this simulator calls
``engine.guard.GuardedRecommender`` directly: ``recommend(user, 10)`` serves a slate, the
simulated user answers with impressions and clicks, and every event goes through
``apply``. Because the world's true preferences are known, the model can be scored
against the truth (recall@10), and attacks / shifts can be injected with a known dose.

World model (all randomness from seeded ``numpy.random.Generator``s)
-------------------------------------------------------------------
``G`` genres (default 20) with random unit centres ``c_g`` in R^d (d = 16), plus one
extra "new" genre ``g*`` (the cohort scenario's taste).

* item i: genre ``g_i`` (``new_genre_items`` = 8 % of items are in ``g*``, the rest
  uniform over the G genres); latent ``y_i = c_{g_i} + sigma_item * n_i / sqrt(d)``
  (n_i ~ N(0, I), sigma_item = 0.6) and a popularity ``q_i ~ N(0, 1)``;
* user u: primary genre ``g_u`` (uniform over the G genres, never ``g*``) and secondary
  genre ``h_u`` (``g*`` with 1/5 the weight of the others);
  ``x_u = w_1 c_{g_u} + w_2 c_{h_u} + sigma_user * n_u / sqrt(d)`` (w_1 = 1, w_2 = 0.5,
  sigma_user = 0.5);
* true affinity ``aff(u, i) = <x_u, y_i> + beta * q_i`` (beta = 0.25);
* click probability of item i shown to u in slot r (0-based)::

      p(click | u, i, r) = sigmoid(a * aff(u, i) + b) / log2(r + 2)      (a = 5, b = -7.5)

  i.e. ~0.08 for a same-genre item of average popularity in the top slot, ~0.001 for an
  unrelated item; the resulting slate CTR is ~2-3 %;
* user activity: the user of each request is drawn with probability proportional to a
  log-normal activity weight (sigma 0.5).

One step = one slate request and ``step_s`` seconds of event time (default 60 s, so 2,000
users each come back every ~33 h on average): an active user u is drawn,
``slate = engine.recommend(u, 10)``, an ``impression`` event is applied for every slate
item (timestamp = the step's event time t, the slate's ``recommendation_id``), then a click
is drawn per slot with the probability above and applied as a ``click`` at t + 1 s with
the same ``recommendation_id``. With probability ``organic_rate`` (0.3) the same user also
finds one item outside the slates (search / browsing) and clicks it (at t + 2 s, no
``recommendation_id``); that item is drawn with
``P(i | u) ~ exp(organic_skew * q_i) * sigmoid(a * aff(u, i) + b)`` (organic_skew = 0.5):
a popular item the user likes. This makes popularity real for the engine's trend signal
and gives items the slates never show a chance. Impressions without a click become
negatives inside the engine after its ``reward_window_s`` (30 min of event time).
Before the first step every item is registered through ``apply`` (``item`` events), so the
whole catalogue is recommendable from the start.

Timeline (one step = one slate request = ``step_s`` s of event time)
--------------------------------------------------------------------
1. established period: ``established_events`` = 15,000 slate requests from established
   users (~165,000 applied events, 10.4 days of event time); ``recall_before`` and the
   reference recalls are measured at its end. Longer periods are not better here: the
   engine excludes every item a user was ever shown, so after ~20,000 requests users run
   out of unseen items of their own genre (50 per genre) and recall@10 declines even in
   ``stationary``; 15,000 sits on the plateau;
2. change period: ``change_steps`` = 3,000 steps (50 h) for every scenario but
   ``bot_burst``, whose change period is the burst (``burst_steps`` = 30 steps = 30 min);
3. recovery period: ``recovery_steps`` = 200 steps (3.3 h, ~2,200 events) of normal
   traffic; ``recall_after`` and every other final metric is measured at its end.

Scenarios
---------
``stationary``   nothing changes.
``bot_burst N``  N clicks from ``ceil(N / clicks_per_sybil)`` (4) fresh sybil accounts
                 (ids ``s<k>``) on ``n_targets`` (10) target items drawn from the least
                 popular 10 % of the catalogue; each sybil clicks distinct targets (in random
                 order), with no ``recommendation_id`` (never served). The clicks are spread
                 evenly in event time over the ``burst_steps`` steps (N = 4,000: 4,000 clicks
                 in 30 min, ~2.2 clicks/s), each step also carrying its normal slate request
                 (so 30 established requests interleave the burst).
``cohort``       ``cohort_users`` (300) new users (ids ``c<k>``) whose primary taste is the
                 new genre ``g*`` use the app through served slates from the change period
                 on; each has ``cohort_activity`` (3) x the mean established activity, so
                 they make ~30 % of the requests.
``viral_trend``  one item of median popularity gets ``q_v += viral_boost`` (3.0): many
                 established users now truly like it. Besides slate clicks, every step has
                 probability ``viral_organic_rate`` (0.3) of an organic (unserved) look at it
                 by a random established user, who clicks with probability
                 sigmoid(a * aff + b).
``drift``        the established users whose primary genre is ``drift_genre`` (~5 % of
                 them) move for good: ``x_u += w_1 (c_{g'} - c_{g_u})`` with g' = g_u + 1.

Calibration (seed 0, guard off, default world): the model's established recall@10 is ~4x
the popularity reference, and 4,000 bot clicks cost ~0.6 of it with ~0.95 target exposure.
Two properties of the engine drive the bot-burst numbers: (1) a user's score of a target
has no co-occurrence term, so the targets only displace the user's legitimate items when
their trend term beats trend + 6 x co-occurrence of the user's 10th item; this needs the
dose to be large against the legitimate clicks of one half-life (36 h = 2,160 steps here,
~1,000 clicks: hence the low CTR and ``step_s`` = 60 s); (2) the attack never reorders
legitimate items, it only takes slots, so the recall loss is at most the share of top-10
slots the targets take: losing >= 50 % needs >= ~7 targets per top-10, hence 10 targets.

Metrics (pure numpy against the ground truth; read-only engine calls)
---------------------------------------------------------------------
* recall@10 of a user = |model top-10 ∩ true top-10| / 10, where the model top-10 is the
  live engine's ranking (``GuardedRecommender.recommender.recommend``: excludes items the
  user has interacted with and creates no state; not ``GuardedRecommender.recommend``, so
  measuring does not feed the guard's impression join) and the true top-10 is the top-10
  by ``aff(u, .)`` over the items the user has NOT interacted with
  (``recommender.seen[u]`` mapped through ``recommender.catalogue.ids``);
* established recall: mean over a fixed seeded sample of ``sample_users`` (300)
  established users; ``recall_loss = max(0, (before - after) / before)``;
* ``ctr`` (extra): clicks / impressions over the last ``ctr_window`` (1,000) slates served
  to established users (``ctr_before``: same at the end of the established period);
* ``target_exposure``: share of sampled established users with any target item in their
  model top-10 (bot_burst only): final value in the row; ``target_exposure_max`` (extra)
  is the max over checkpoints every ``burst_steps / 4`` steps during the burst, every
  ``min(measure_every_change, recovery_steps / 4)`` steps after it, and the end;
* ``cohort_recall``: recall@10 of (up to 300) cohort users at the end;
* ``segment_recall``: recall@10 of (up to 300) drifted users against their new tastes;
* ``trend_recall``: share of sampled established users with the viral item in their model
  top-10 divided by the share with it in their true top-10 (capped at 1; None when no
  sampled user truly has it in the top-10); ``viral_share`` (extra) has both shares at the
  end. The ratio saturates: by the end most users who like the item have been shown it
  (so it is excluded from both top-10s), hence also ``viral_share_at_change`` (share of
  sampled users with it in their true top-10 right after the change) and
  ``viral_fans_clicked`` (share of those who clicked it by the end, slate or organic);
* ``references`` (extra; at the end of the established period, same users): ``random`` (a
  random unseen top-10), ``popularity`` (top-10 by true popularity = mean click
  probability over established users, excluding seen), ``oracle`` (= 1.0 by definition);
* ``rollbacks`` / ``false_rollbacks`` from ``guard_events`` (in bot_burst a rollback is
  false when the guard marks it ``"false": True``; in every other scenario every rollback
  is false); ``rollbacks_before_change`` (extra) counts rollbacks at or before the change;
  ``validation_windows`` from the guard;
* ``events_per_s``: events applied / wall seconds spent inside ``recommend`` + ``apply``;
* ``series`` (extra): ``(event_index, established_recall, scenario_metric)`` every
  ``measure_every`` (2,000) steps in the established period, every
  ``measure_every_change`` (500) steps after it, and at every checkpoint;
  ``event_index`` counts every ``apply`` call (item registrations included), like the
  guard's ``at_event``.

One default-size run (guard off) takes ~5 s of wall time on the 2-core dev machine
(~50,000 events/s through the engine).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
from tqdm import tqdm

from engine.config import EngineConfig, GuardConfig, PolicyConfig
from engine.core.events import ITEM_KIND, Event
from engine.core.guard import GuardedRecommender

SCENARIOS = ("stationary", "bot_burst", "cohort", "viral_trend", "drift")
K = 10
T0 = 1_700_000_000.0  # event time of step 0, unix s
ROW_KEYS = ("scenario", "dose", "guard", "seed", "recall_before", "recall_after", "recall_loss",
            "target_exposure", "cohort_recall", "segment_recall", "trend_recall", "rollbacks",
            "false_rollbacks", "validation_windows", "events_per_s")


@dataclass
class WorldConfig:
    """Size, taste structure, click model and timeline of the synthetic world.

    Sizes: ``n_users`` established users, ``n_items`` items, ``n_genres`` genres (+1 new
    genre for the cohort), latent dimension ``dim``.
    Tastes: ``w_primary`` / ``w_secondary`` genre weights of a user, ``sigma_user`` /
    ``sigma_item`` idiosyncratic noise, ``new_genre_items`` share of items in the new
    genre, ``new_genre_secondary`` probability that an established user's secondary genre
    is the new genre (relative to the others' uniform share), ``activity_sigma`` log-normal
    sigma of user activity.
    Clicks: ``a``, ``b`` (logit slope/offset), ``beta`` (popularity weight in the affinity),
    ``organic_rate`` (probability per step of an organic click, outside the slates, on an
    item drawn with P(i | u) ~ exp(organic_skew * q_i) * sigmoid(a * aff(u, i) + b)).
    Timeline (steps; one step = one slate request = ``step_s`` s of event time):
    ``established_events`` (slate requests in the established period), ``change_steps``,
    ``recovery_steps``, ``measure_every`` / ``measure_every_change`` (time-series spacing in
    the established period / after it), ``ctr_window``.
    Scenarios: ``n_targets``, ``clicks_per_sybil``, ``burst_steps``, ``cohort_users``,
    ``cohort_activity``, ``viral_boost``, ``viral_organic_rate``, ``drift_genre``.
    Metrics: ``sample_users`` (fixed sample size of established users).
    Variants (the same world otherwise):
    ``time_scale`` multiplies every event time offset (0.01: 100x compressed, 100: 100x
    stretched; the engine sees only the times);
    ``feedback = "implicit"``: slates arrive as ``view`` events (exposure), clicks as
    ``click`` (positive) and a clicked item is bought (``purchase``, positive of weight 3,
    ``IMPLICIT_EVENTS``) with probability ``sigmoid(a * aff + b + purchase_offset)``;
    ``context_effect`` > 0: tastes differ by time of day: each item gets a per-daypart
    affinity term ``context_effect * m_{i,d}`` (m ~ N(0, 1), its own generator), the day
    (``day_s`` of event time, unscaled) has ``dayparts`` parts, every request and event
    carries ``context = {"daypart": "d<k>"}`` when ``use_context``, and recall is measured
    against each sampled user's true top-10 in a daypart of their own (user k: daypart
    k mod dayparts).
    """

    n_users: int = 2000
    n_items: int = 1000
    n_genres: int = 20
    dim: int = 16
    w_primary: float = 1.0
    w_secondary: float = 0.5
    sigma_user: float = 0.5
    sigma_item: float = 0.6
    new_genre_items: float = 0.08
    new_genre_secondary: float = 0.2
    activity_sigma: float = 0.5
    a: float = 5.0
    b: float = -7.5
    beta: float = 0.25
    organic_rate: float = 0.3
    organic_skew: float = 0.5
    step_s: float = 60.0
    established_events: int = 15_000
    change_steps: int = 3_000
    recovery_steps: int = 200
    measure_every: int = 2_000
    measure_every_change: int = 500
    ctr_window: int = 1_000
    n_targets: int = 10
    clicks_per_sybil: int = 4
    burst_steps: int = 30
    cohort_users: int = 300
    cohort_activity: float = 3.0
    viral_boost: float = 3.0
    viral_organic_rate: float = 0.3
    drift_genre: int = 0
    sample_users: int = 300
    time_scale: float = 1.0
    feedback: str = "clicks"
    purchase_offset: float = 2.0
    context_effect: float = 0.0
    dayparts: int = 4
    day_s: float = 86400.0
    use_context: bool = True


IMPLICIT_EVENTS = {"view": {"role": "exposure"}, "click": {"role": "positive"},
                   "purchase": {"role": "positive", "weight": 3.0}}
"""The event schema of the implicit-feedback variant (views, clicks, purchases; no ratings)."""


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class World:
    """Ground truth: genre centres, item latents ``Y`` / popularity ``q``, user latents ``X``
    (rows: established users first, then cohort users), activity weights; the world's
    generator ``rng`` and a separate ``metric_rng`` (sampling for metrics only, so measuring
    more or less often never changes the traffic)."""

    def __init__(self, cfg: WorldConfig, seed: int) -> None:
        self.cfg = cfg
        self.rng = np.random.default_rng([seed, 0])          # the world's choices
        self.metric_rng = np.random.default_rng([seed, 1])   # metric sampling only
        rng, c = self.rng, cfg
        G = c.n_genres
        centres = rng.normal(size=(G + 1, c.dim))
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        self.new_genre = G
        n_new = int(round(c.new_genre_items * c.n_items))
        item_genre = np.concatenate([np.full(n_new, G), rng.integers(0, G, c.n_items - n_new)])
        self.item_genre = rng.permutation(item_genre)
        self.Y = self.centres[self.item_genre] + c.sigma_item * rng.normal(size=(c.n_items, c.dim)) / math.sqrt(c.dim)
        self.q = rng.normal(size=c.n_items)
        self.item_ids = [f"i{j}" for j in range(c.n_items)]
        self.item_index = {s: j for j, s in enumerate(self.item_ids)}
        # established users
        self.user_ids: list[str] = []
        self.X = np.zeros((0, c.dim))
        self.primary = np.zeros(0, dtype=np.int64)
        self.activity = np.zeros(0)
        prim = rng.integers(0, G, c.n_users)
        sec_p = np.full(G + 1, 1.0)
        sec_p[G] = c.new_genre_secondary
        sec = rng.choice(G + 1, size=c.n_users, p=sec_p / sec_p.sum())
        self._add_users([f"u{k}" for k in range(c.n_users)], prim, sec,
                        rng.lognormal(0.0, c.activity_sigma, c.n_users))
        self.established = np.arange(c.n_users)
        # per (item, daypart) taste, from a generator of its own (the rest of the world is unchanged)
        self.daypart_affinity = (c.context_effect * np.random.default_rng([seed, 2]).normal(size=(c.n_items, c.dayparts))
                                 if c.context_effect else None)

    def _add_users(self, ids, prim, sec, activity) -> np.ndarray:
        c = self.cfg
        X = (c.w_primary * self.centres[prim] + c.w_secondary * self.centres[sec]
             + c.sigma_user * self.rng.normal(size=(len(ids), c.dim)) / math.sqrt(c.dim))
        start = len(self.user_ids)
        self.user_ids.extend(ids)
        self.X = np.vstack([self.X, X])
        self.primary = np.concatenate([self.primary, prim])
        self.activity = np.concatenate([self.activity, activity])
        return np.arange(start, start + len(ids))

    def add_cohort(self, n: int, activity: float) -> np.ndarray:
        prim = np.full(n, self.new_genre)
        sec = self.rng.integers(0, self.cfg.n_genres, n)
        mean_act = float(self.activity[self.established].mean())
        return self._add_users([f"c{k}" for k in range(n)], prim, sec, np.full(n, activity * mean_act))

    def affinity(self, rows, items=None, daypart: int | None = None) -> np.ndarray:
        """aff(u, i) for user rows (array) x items (array or all), in a daypart (context world)."""
        if items is None:
            out = self.X[rows] @ self.Y.T + self.cfg.beta * self.q
        else:
            out = self.X[rows] @ self.Y[items].T + self.cfg.beta * self.q[items]
        if daypart is not None and self.daypart_affinity is not None:
            out = out + (self.daypart_affinity[:, daypart] if items is None else self.daypart_affinity[items, daypart])
        return out

    def click_prob(self, rows, items=None, daypart: int | None = None, offset: float = 0.0) -> np.ndarray:
        c = self.cfg
        return _sigmoid(c.a * self.affinity(rows, items, daypart) + c.b + offset)


class Simulation:
    """Drives one ``GuardedRecommender`` with the world's users; collects metrics."""

    def __init__(self, world: World, guard: bool, engine: dict | None = None,
                 policies: PolicyConfig | None = None) -> None:
        self.w = world
        self.cfg = world.cfg
        config = dict(engine or {})
        if self.cfg.feedback == "implicit":
            config.setdefault("events", IMPLICIT_EVENTS)
        self.g = GuardedRecommender(EngineConfig(**config), GuardConfig(enabled=guard),
                                    policies=policies or PolicyConfig())
        self.exposure_kind = "view" if self.cfg.feedback == "implicit" else "impression"
        self.step_no = 0
        self.events = 0
        self.engine_s = 0.0
        self.pos_bias = 1.0 / np.log2(np.arange(K) + 2.0)
        # per-step log of established-user slates (impressions, clicks) for the CTR
        self.est_imps: list[int] = []
        self.est_clicks: list[int] = []
        self._organic_w = None
        self.watch: int | None = None          # a world item whose clickers are recorded
        self.watch_clickers: set[str] = set()
        self.refresh_popularity()
        for item in world.item_ids:
            self._apply(Event(user_id="", item_id=item, kind=ITEM_KIND, timestamp=T0, received_at=T0))

    # ------------------------------------------------------------------ event plumbing
    @property
    def now(self) -> float:
        return self.at(0.0)

    def at(self, offset_s: float) -> float:
        """Event time of ``offset_s`` seconds into the current step, on the world's time scale."""
        return T0 + (self.step_no * self.cfg.step_s + offset_s) * self.cfg.time_scale

    def daypart(self) -> int | None:
        """The current step's part of the (unscaled) day, in the context world."""
        c = self.cfg
        if self.w.daypart_affinity is None:
            return None
        return int((self.step_no * c.step_s % c.day_s) // (c.day_s / c.dayparts))

    def context(self, daypart: int | None) -> dict | None:
        """What the engine is told of a request in ``daypart`` (None when it is not told)."""
        return {"daypart": f"d{daypart}"} if daypart is not None and self.cfg.use_context else None

    def _apply(self, event: Event) -> None:
        t = time.perf_counter()
        self.g.apply(event)
        self.engine_s += time.perf_counter() - t
        self.events += 1

    def refresh_popularity(self) -> None:
        """Popularity weights exp(organic_skew * q_i) of organic clicks (call when q changes)."""
        z = self.cfg.organic_skew * self.w.q
        self._organic_w = np.exp(z - z.max())

    def slate_step(self, row: int, established: bool) -> None:
        """One served slate for user ``row`` (impressions + position-biased clicks)."""
        w, rng = self.w, self.w.rng
        user = w.user_ids[row]
        daypart = self.daypart()
        context = self.context(daypart)
        t = time.perf_counter()
        slate = self.g.recommend(user, K, context=context)
        self.engine_s += time.perf_counter() - t
        now = self.now
        items = np.fromiter((w.item_index[i] for i in slate.item_ids), dtype=np.int64, count=len(slate.item_ids))
        for item in slate.item_ids:
            self._apply(Event(user_id=user, item_id=item, kind=self.exposure_kind, timestamp=now,
                              received_at=now, recommendation_id=slate.recommendation_id, context=context))
        p = w.click_prob(row, items, daypart) * self.pos_bias[: len(items)]
        clicked = rng.random(len(items)) < p
        click_t = self.at(1.0)
        for j in np.flatnonzero(clicked).tolist():
            if items[j] == self.watch:
                self.watch_clickers.add(user)
            self._apply(Event(user_id=user, item_id=slate.item_ids[j], kind="click", timestamp=click_t,
                              received_at=click_t, recommendation_id=slate.recommendation_id, context=context))
            if self.cfg.feedback == "implicit":
                self._maybe_purchase(row, user, int(items[j]), daypart, context, slate.recommendation_id)
        if established:
            self.est_imps.append(len(items))
            self.est_clicks.append(int(clicked.sum()))
        if rng.random() < self.cfg.organic_rate:
            p = self._organic_w * w.click_prob(row, None, daypart)
            j = int(np.searchsorted(np.cumsum(p), rng.random() * p.sum()))
            self.organic_click(user, min(j, self.cfg.n_items - 1), self.at(2.0), context)

    def _maybe_purchase(self, row: int, user: str, item: int, daypart: int | None, context: dict | None,
                        rid: str | None) -> None:
        """Implicit feedback: a clicked item is bought with probability
        sigmoid(a * aff + b + purchase_offset)."""
        p = float(self.w.click_prob(row, np.array([item]), daypart, self.cfg.purchase_offset)[0])
        if self.w.rng.random() < p:
            t = self.at(1.5)
            self._apply(Event(user_id=user, item_id=self.w.item_ids[item], kind="purchase", timestamp=t,
                              received_at=t, recommendation_id=rid, context=context))

    def organic_click(self, user: str, item: int, t: float, context: dict | None = None) -> None:
        if item == self.watch:
            self.watch_clickers.add(user)
        self._apply(Event(user_id=user, item_id=self.w.item_ids[item], kind="click", timestamp=t, received_at=t,
                          context=context))

    def draw_users(self, rows: np.ndarray, n: int) -> np.ndarray:
        p = self.w.activity[rows]
        return rows[self.w.rng.choice(len(rows), size=n, p=p / p.sum())]

    def normal_traffic(self, n: int, rows: np.ndarray, bar=None, on_step=None) -> None:
        """``n`` steps of slate requests from ``rows`` (population), one request per step."""
        users = self.draw_users(rows, n)
        n_est = self.cfg.n_users
        for row in users.tolist():
            self.slate_step(row, row < n_est)
            if on_step is not None:
                on_step()
            self.step_no += 1
            if bar is not None:
                bar.update(1)

    # ------------------------------------------------------------------ metrics
    def seen_items(self, user: str) -> np.ndarray:
        """World item indices the engine considers seen by ``user``."""
        rec = self.g.recommender
        seen = rec.seen.get(user)
        if not seen:
            return np.zeros(0, dtype=np.int64)
        ids = rec.catalogue.ids
        idx = self.w.item_index
        return np.fromiter((idx[ids[r]] for r in seen), dtype=np.int64, count=len(seen))

    def model_topk(self, user: str, daypart: int | None = None) -> list[int]:
        """The engine's current top-10 for ``user`` (in ``daypart``, context world; read-only:
        creates no engine state)."""
        idx = self.w.item_index
        return [idx[r.item_id] for r in self.g.recommender.recommend(user, K, context=self.context(daypart))]

    def snapshot(self, rows: np.ndarray, references: bool = False) -> dict:
        """Model vs true top-10 for user ``rows``: per-user recall, model/true top-10 sets.
        In the context world user ``rows[k]`` is measured in daypart ``rows[k] % dayparts``."""
        w = self.w
        contextual = w.daypart_affinity is not None
        aff = w.affinity(rows)
        if contextual:
            aff = aff + w.daypart_affinity[:, np.asarray(rows) % self.cfg.dayparts].T
        model, true_sets, recalls = [], [], []
        pop = w.click_prob(w.established).mean(axis=0) if references else None
        ref_rand, ref_pop = [], []
        for k, row in enumerate(rows.tolist()):
            user = w.user_ids[row]
            seen = self.seen_items(user)
            s = aff[k].copy()
            s[seen] = -np.inf
            true = set(np.argpartition(-s, K)[:K].tolist())
            top = self.model_topk(user, row % self.cfg.dayparts if contextual else None)
            model.append(set(top))
            true_sets.append(true)
            recalls.append(len(true & set(top)) / K)
            if references:
                unseen = np.setdiff1d(np.arange(len(s)), seen)
                rand = w.metric_rng.choice(unseen, size=min(K, len(unseen)), replace=False)
                ref_rand.append(len(true & set(rand.tolist())) / K)
                ps = pop.copy()
                ps[seen] = -np.inf
                ref_pop.append(len(true & set(np.argpartition(-ps, K)[:K].tolist())) / K)
        out = {"recall": float(np.mean(recalls)) if recalls else None, "model": model, "true": true_sets}
        if references:
            out["references"] = {"random": float(np.mean(ref_rand)), "popularity": float(np.mean(ref_pop)),
                                 "oracle": 1.0}
        return out

    def ctr(self) -> float | None:
        n = self.cfg.ctr_window
        imps = sum(self.est_imps[-n:])
        return sum(self.est_clicks[-n:]) / imps if imps else None


def _exposure(snap: dict, targets: set[int]) -> float:
    return float(np.mean([bool(m & targets) for m in snap["model"]]))


def _sample(rng: np.random.Generator, rows: np.ndarray, n: int) -> np.ndarray:
    return np.sort(rng.choice(rows, size=min(n, len(rows)), replace=False))


def run_scenario(scenario: str, dose: int | None = None, guard: bool = False, seed: int = 0,
                 n_users: int = 2000, n_items: int = 1000, established_events: int | None = None,
                 progress: bool = True, engine: dict | None = None, **world: object) -> dict:
    """Run one scenario in a fresh world + engine and return its result row.

    Args:
        scenario: one of ``SCENARIOS``.
        dose: number of sybil clicks (``bot_burst`` only; default 4,000).
        guard: build the engine with ``GuardConfig(enabled=guard)``.
        seed: seeds the world (tastes, traffic, clicks) and the metric samples.
        n_users, n_items: world size (established users, items).
        established_events: slate requests (steps) in the established period
            (default ``WorldConfig.established_events``).
        progress: show a tqdm bar (steps).
        engine: ``EngineConfig`` overrides of the engine under test (e.g. ``{"ranker":
            "blend", "trend_half_life_h": 12}``; the implicit variant adds its schema).
        **world: overrides of any other ``WorldConfig`` field (e.g. ``recovery_steps``).

    Returns:
        a dict with exactly the keys ``ROW_KEYS`` (fields that do not apply are None) plus
        ``"extra"``: references, target_exposure_max, ctr, series (list of
        ``(event_index, established_recall, scenario_metric)``), guard_events, timings.

    Raises:
        ValueError: unknown scenario or a bad dose.
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    if scenario == "bot_burst":
        dose = 4000 if dose is None else int(dose)
        if dose <= 0:
            raise ValueError("dose must be > 0")
    else:
        dose = None
    cfg = WorldConfig(n_users=n_users, n_items=n_items)
    if established_events is not None:
        cfg.established_events = int(established_events)
    unknown = set(world) - {f.name for f in fields(WorldConfig)}
    if unknown:
        raise ValueError(f"unknown world parameters: {sorted(unknown)}")
    cfg = replace(cfg, **world)
    wall0 = time.perf_counter()
    w = World(cfg, seed)
    sim = Simulation(w, guard, engine)
    est_sample = _sample(w.metric_rng, w.established, cfg.sample_users)
    series: list[tuple[int, float, float | None]] = []
    extra: dict = {"world": asdict(cfg), "checkpoints": []}

    change_steps = cfg.burst_steps if scenario == "bot_burst" else cfg.change_steps
    total = cfg.established_events + change_steps + cfg.recovery_steps
    bar = tqdm(total=total, desc=f"{scenario}{'' if dose is None else f' {dose}'} guard={'on' if guard else 'off'}",
               unit="step", disable=not progress, mininterval=1.0, leave=False)

    scenario_metric = lambda snap: None  # noqa: E731  (replaced per scenario below)

    def measure(tag: str | None = None) -> dict:
        snap = sim.snapshot(est_sample)
        m = scenario_metric(snap)
        series.append((sim.events, snap["recall"], m))
        if tag is not None:
            extra["checkpoints"].append({"at": tag, "event": sim.events, "step": sim.step_no,
                                         "recall": snap["recall"], "metric": m})
        return snap

    def periodic() -> None:
        if (sim.step_no + 1) % cfg.measure_every == 0:  # called before step_no advances
            measure()

    # ---------------- established period
    sim.normal_traffic(cfg.established_events, w.established, bar, periodic)
    before = sim.snapshot(est_sample, references=True)
    extra["references"] = before["references"]
    extra["ctr_before"] = sim.ctr()
    series.append((sim.events, before["recall"], None))
    change_event = sim.events
    extra["change_at_event"] = change_event

    row = dict.fromkeys(ROW_KEYS)
    row.update(scenario=scenario, dose=dose, guard="on" if guard else "off", seed=seed)
    population = w.established

    # ---------------- change period
    if scenario == "bot_burst":
        low = np.argsort(w.q)[: max(cfg.n_targets, cfg.n_items // 10)]
        targets = np.sort(w.rng.choice(low, size=cfg.n_targets, replace=False))
        target_set = set(targets.tolist())
        extra["targets"] = [w.item_ids[j] for j in targets]
        scenario_metric = lambda snap: _exposure(snap, target_set)  # noqa: E731
        n_sybils = math.ceil(dose / cfg.clicks_per_sybil)
        clicks: list[tuple[str, int]] = []
        for s in range(n_sybils):
            order = list(w.rng.permutation(targets).tolist())
            while len(order) < cfg.clicks_per_sybil:
                order.append(int(w.rng.choice(targets)))
            clicks.extend((f"s{s}", j) for j in order[: cfg.clicks_per_sybil])
        clicks = clicks[:dose]
        per_step = np.array_split(np.arange(len(clicks)), cfg.burst_steps)
        users = sim.draw_users(population, cfg.burst_steps)
        exposures = []
        check = max(1, cfg.burst_steps // 4)
        for b, row_u in enumerate(users.tolist()):
            sim.slate_step(row_u, True)  # event time now .. now + 2 s
            chunk = per_step[b].tolist()
            for k, c in enumerate(chunk):  # sybil clicks spread over the rest of the step
                sim.organic_click(clicks[c][0], clicks[c][1], sim.at(3.0 + (cfg.step_s - 4.0) * k / len(chunk)))
            sim.step_no += 1
            bar.update(1)
            if (b + 1) % check == 0:
                measure(f"burst+{b + 1}")
                exposures.append(series[-1][2])
        extra["sybils"] = n_sybils
        extra["burst_end_event"] = sim.events

        def recovery_check() -> None:
            if (sim.step_no + 1) % max(1, min(cfg.measure_every_change, cfg.recovery_steps // 4)) == 0:
                measure(f"step {sim.step_no + 1}")
                exposures.append(series[-1][2])

        sim.normal_traffic(cfg.recovery_steps, population, bar, recovery_check)
    else:
        if scenario == "cohort":
            cohort = w.add_cohort(cfg.cohort_users, cfg.cohort_activity)
            population = np.concatenate([w.established, cohort])
            cohort_sample = _sample(w.metric_rng, cohort, cfg.sample_users)
            scenario_metric = lambda snap: sim.snapshot(cohort_sample)["recall"]  # noqa: E731
        elif scenario == "viral_trend":
            mid = np.argsort(w.q)[cfg.n_items // 2 - 5: cfg.n_items // 2 + 5]
            viral = int(w.rng.choice(mid))
            w.q[viral] += cfg.viral_boost
            sim.refresh_popularity()
            extra["viral_item"] = w.item_ids[viral]
            sim.watch = viral

            def trend_share(snap: dict) -> float | None:
                truth = float(np.mean([viral in t for t in snap["true"]]))
                model = float(np.mean([viral in m for m in snap["model"]]))
                extra["viral_share"] = {"true_top10": truth, "model_top10": model}
                if "fans" not in extra:  # sampled users with the item in their true top-10 at the change
                    extra["fans"] = [w.user_ids[r] for r, t in zip(est_sample.tolist(), snap["true"]) if viral in t]
                return None if truth == 0 else min(1.0, model / truth)

            scenario_metric = trend_share
        elif scenario == "drift":
            seg = w.established[w.primary[w.established] == cfg.drift_genre]
            new_genre = (cfg.drift_genre + 1) % cfg.n_genres
            w.X[seg] += cfg.w_primary * (w.centres[new_genre] - w.centres[cfg.drift_genre])
            seg_sample = _sample(w.metric_rng, seg, cfg.sample_users)
            extra["segment_users"] = int(len(seg))
            scenario_metric = lambda snap: sim.snapshot(seg_sample)["recall"]  # noqa: E731

        measure("change")  # the scenario metric right after the change, before any new traffic

        def change_hook() -> None:  # after every step of the change + recovery periods
            if (sim.step_no + 1 - cfg.established_events) % cfg.measure_every_change == 0:
                measure()
            if scenario == "viral_trend" and w.rng.random() < cfg.viral_organic_rate:
                r = int(w.rng.choice(w.established))
                if w.rng.random() < float(w.click_prob(r, np.array([viral]))[0]):
                    sim.organic_click(w.user_ids[r], viral, sim.at(3.0))

        sim.normal_traffic(change_steps + cfg.recovery_steps, population, bar, change_hook)
    bar.close()

    # ---------------- final measurements
    after = measure("end")
    rb, ra = before["recall"], after["recall"]
    row["recall_before"], row["recall_after"] = rb, ra
    row["recall_loss"] = max(0.0, (rb - ra) / rb) if rb else 0.0
    final_metric = series[-1][2]
    if scenario == "bot_burst":
        row["target_exposure"] = final_metric
        extra["target_exposure_max"] = max(exposures + [final_metric])
    elif scenario == "cohort":
        row["cohort_recall"] = final_metric
    elif scenario == "viral_trend":
        row["trend_recall"] = final_metric
        fans = extra.pop("fans", [])
        extra["viral_share_at_change"] = {"true_top10": len(fans) / len(est_sample)}
        extra["viral_fans_clicked"] = (sum(u in sim.watch_clickers for u in fans) / len(fans)) if fans else None
    elif scenario == "drift":
        row["segment_recall"] = final_metric
    gev = [dict(e) for e in sim.g.guard_events]
    rollbacks = [e for e in gev if e.get("kind") == "rollback"]
    row["rollbacks"] = len(rollbacks)
    row["false_rollbacks"] = (sum(1 for e in rollbacks if e.get("false") is True) if scenario == "bot_burst"
                              else len(rollbacks))
    # rollbacks that cannot be about the scenario's change (diagnostic; the row uses the flag)
    extra["rollbacks_before_change"] = sum(1 for e in rollbacks if e.get("at_event", 0) <= change_event)
    row["validation_windows"] = int(sim.g.validation_windows)
    row["events_per_s"] = sim.events / sim.engine_s if sim.engine_s else None
    extra.update(ctr=sim.ctr(), series=series, guard_events=gev, events=sim.events, steps=sim.step_no,
                 wall_s=time.perf_counter() - wall0, engine_s=sim.engine_s)
    row["extra"] = extra
    return row


def format_row(row: dict) -> str:
    """One human-readable line for a result row."""
    def f(v, p=3):
        return "-" if v is None else (f"{v:.{p}f}" if isinstance(v, float) else str(v))
    x = row.get("extra", {})
    parts = [f"{row['scenario']}{'' if row['dose'] is None else ' ' + str(row['dose'])} guard={row['guard']}",
             f"recall {f(row['recall_before'])}->{f(row['recall_after'])} (loss {f(row['recall_loss'])})"]
    for key in ("target_exposure", "cohort_recall", "segment_recall", "trend_recall"):
        if row[key] is not None:
            parts.append(f"{key} {f(row[key])}")
    if x.get("target_exposure_max") is not None:
        parts.append(f"exposure_max {f(x['target_exposure_max'])}")
    if "references" in x:
        r = x["references"]
        parts.append(f"refs rand {f(r['random'])} pop {f(r['popularity'])}")
    parts.append(f"rollbacks {row['rollbacks']} (false {row['false_rollbacks']})")
    parts.append(f"{f(row['events_per_s'], 0)} ev/s")
    return " | ".join(parts)
