"""The engine's parameters: three plain models, every field with its unit and meaning.

``EngineConfig`` (what the model learns and how it ranks), ``GuardConfig`` (the forgetting
guard), ``SnapshotConfig`` (checkpoints and their retention) and ``OpsConfig`` (supervision,
readiness and start-up of the roles). They are data only:
nothing here reads the environment or a file. ``api.settings.Settings`` nests them as its
``engine``, ``guard``, ``snapshots`` and ``ops`` sections and fills them from flags, ``FRESHREC_*``
variables and a TOML file; in-process users (simulators, benchmarks, tests) build them
directly, e.g. ``EngineConfig(n_factors=32)``.

Each field's ``json_schema_extra["unit"]`` names its unit ("" when it is a count or a
switch); ``api.settings.settings_table`` turns the fields into README's settings table.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def setting(default, unit: str, description: str, **kw):
    """A documented field: its default, unit (for the settings table; "" for counts of
    nothing in particular and switches) and meaning; ``kw`` are pydantic constraints."""
    return Field(default, description=description, json_schema_extra={"unit": unit}, **kw)



INTERNAL_KINDS = ("item", "slate", "forget")
"""Stream entry kinds that are not feedback (``engine.core.events.ITEM_KIND``, ``SLATE_KIND``,
``FORGET_KIND``): no event type may take these names."""


class EventType(BaseModel):
    """What one event type of a deployment means to the model (``engine.core.events``).

    role:
        ``positive`` (a click, a purchase, a like: counts towards popularity and
        co-occurrence with ``weight``, and teaches the factor model and the ranker),
        ``negative`` (a dislike, a skip: the factor model learns a 0, the item leaves the
        user's slates), ``exposure`` (an impression: it becomes a negative when no positive
        on that item by that user follows within ``reward_window_s``), or ``rating`` (an
        explicit ``value`` on the scale ``min``..``max``: a positive when ``value >=
        positive_threshold``, a negative below; or, with ``values``, the weight of each
        value: > 0 positive with that weight, < 0 negative, 0 only marks the item seen).
    """

    model_config = ConfigDict(extra="forbid")

    role: Literal["positive", "negative", "exposure", "rating"]
    weight: float = Field(1.0, gt=0, description="strength of a positive / negative of this type")
    min: float | None = Field(None, description="rating scale: lowest value")
    max: float | None = Field(None, description="rating scale: highest value")
    positive_threshold: float | None = Field(None, description="rating: a value >= this is a positive")
    values: dict[str, float] | None = Field(None, description="rating: value -> weight (instead of a threshold)")

    @model_validator(mode="after")
    def _rating_needs_a_rule(self) -> "EventType":
        if self.role == "rating":
            if self.min is None or self.max is None or self.min >= self.max:
                raise ValueError("a rating type declares its scale: min < max")
            if (self.positive_threshold is None) == (self.values is None):
                raise ValueError("a rating type declares either positive_threshold or values")
            if self.positive_threshold is not None and not self.min <= self.positive_threshold <= self.max:
                raise ValueError(f"positive_threshold {self.positive_threshold} is outside the scale "
                                 f"{self.min}..{self.max}")
            if self.values is not None:
                for key in self.values:
                    if not self.min <= float(key) <= self.max:
                        raise ValueError(f"rating value {key} is outside the scale {self.min}..{self.max}")
        return self


DEFAULT_EVENTS: dict[str, dict] = {
    "click": {"role": "positive"},
    "impression": {"role": "exposure"},
    "rating": {"role": "rating", "min": 0.0, "max": 10.0, "positive_threshold": 8.0},
}
"""Event types every deployment has unless it redefines them (a 0-10 rating scale: declare
yours, e.g. ``--rating-scale 1:5 --positive-threshold 4``)."""


class EngineConfig(BaseModel):
    """What the model learns and how it ranks (``engine.core.recommender``).

    Model: ``n_factors``, ``learning_rate``, ``l2``, ``negatives_per_positive`` and ``seed``
    parameterise River's ``reco.BiasedMF`` learned online from positives and sampled
    negatives (drawn from the last 4,096 positives, so popularity-proportional over that
    window; Rendle & Freudenthaler, WSDM 2014). ``seed`` seeds latent initialisation per id
    and negative sampling per stream position, so learning is a function of the event order.

    Scoring: ``score(u, i) = log(trend_i + eps) + cooc_weight * cooc(last cooc_history
    positives of u, i) + mf_weight * (b_i + <p_u, q_i>)``; ``cooc_neighbours`` (K) bounds
    the co-occurrence table at 8 * K bytes per item.

    Events: ``events`` (the deployment's event schema: ``EventType`` per name, merged onto
    ``DEFAULT_EVENTS``) and ``reward_window_s`` (see ``engine.core.events``).
    """

    model_config = ConfigDict(extra="forbid")

    n_factors: int = setting(16, "", "latent factors per user and per item (River reco.BiasedMF)", ge=1, le=512)
    learning_rate: float = setting(0.05, "", "SGD step size of biases and latent factors", gt=0)
    l2: float = setting(0.01, "", "L2 regularisation of biases and latent factors", ge=0)
    negatives_per_positive: int = setting(4, "events", "implicit negatives sampled per positive (from the last 4,096 "
                                     "positives)", ge=0, le=64)
    seed: int = setting(42, "", "seeds latent initialisation (per id) and negative sampling (per stream position)")

    trend_half_life_h: float = setting(36.0, "h", "half-life of the decayed-popularity trend, event time", gt=0)
    cooc_weight: float = setting(6.0, "", "weight of the item-to-item co-occurrence score", ge=0)
    cooc_history: int = setting(10, "events", "most recent positives of a user that feed co-occurrence", ge=1, le=1000)
    cooc_neighbours: int = setting(256, "items", "co-occurrence neighbours kept per item (Space-Saving; 8 B each)",
                              ge=1, le=65536)
    mf_weight: float = setting(1.0, "", "weight of the BiasedMF score", ge=0)
    transition_neighbours: int = setting(64, "items", "next items kept per item in the table of transitions "
                                         "between a user's consecutive positives (8 B each)", ge=1, le=65536)

    ranker: Literal["learned", "blend"] = setting(
        "learned", "", "learned: a River logistic regression orders candidates by features it weighs from the "
        "stream; blend: the fixed trend + co-occurrence + BiasedMF blend over the whole catalogue")
    popularity_half_lives_h: tuple[float, ...] = setting(
        (1.0, 24.0, 168.0, 720.0), "h", "half-lives of the time-clock popularity columns the ranker weighs "
        "(hour, day, week, month)")
    popularity_half_lives_events: tuple[float, ...] = setting(
        (256.0, 4096.0, 65536.0), "events", "half-lives of the event-clock popularity columns, in positives "
        "(the same whatever the stream's time unit)")
    ranker_sample: float = setting(0.25, "", "share of organic positives (not a click on a shown item) the "
                                   "ranker learns from, chosen by stream position so replays repeat; clicks on "
                                   "shown items are always learned", ge=0, le=1)
    ranker_learning_rate: float = setting(0.05, "", "AdaGrad step of the ranker's listwise learning", gt=0)
    ranker_list: int = setting(256, "items", "rows of a training list at most (the positive and a uniform "
                               "sample of its candidates)", ge=2)
    candidates_per_source: int = setting(100, "items", "candidates per source (co-occurrence, factors, new "
                                         "items) for the learned ranker", ge=1)
    trending_candidates: int = setting(64, "items", "items kept in each popularity column's head (trending "
                                       "candidates)", ge=1)
    full_scan_items: int = setting(2000, "items", "catalogues up to this size are ranked whole", ge=0)
    train_factor_rows: int = setting(20000, "items", "rows the factor-model source of a training list scores at "
                                     "most (a sample of larger catalogues, drawn by stream position): the "
                                     "learner's cost per positive stops growing with the catalogue", ge=1)
    context_buckets: int = setting(32, "", "hash buckets of context key=value pairs (per-context popularity; "
                                   "4 B per item each)", ge=1, le=1024)
    ranker_ablate: tuple[Literal["popularity", "co-occurrence", "transitions", "factors", "age", "history",
                                 "context", "metadata"], ...] = setting(
        (), "", "feature groups the ranker may not use (ablation studies; freshrec replay --ablation)")

    events: dict[str, EventType] = setting(
        {name: EventType(**spec) for name, spec in DEFAULT_EVENTS.items()}, "",
        "the event schema: event type name -> {role: positive|negative|exposure|rating, weight, min, max, "
        "positive_threshold, values}; merged onto the defaults click (positive), impression (exposure), rating "
        "(0-10, positive from 8)")
    reward_window_s: float = setting(1800.0, "s", "an impression with no click on that item within this much event "
                                "time becomes a negative", gt=0)
    hide_ignored: bool = setting(True, "", "an impression that becomes a negative also hides its item from that "
                                 "user's later slates (each slate moves on to items not yet shown: exploration by "
                                 "elimination); off: only the negative is learned and the item stays a candidate "
                                 "(a shop that may show an item again)")
    max_clock_skew_s: float = setting(300.0, "s", "an event time more than this far in the future of its "
                                      "acceptance time is refused at intake (422 naming timestamp) and "
                                      "dead-lettered by the learner, so no clock jumps ahead", gt=0)

    explore: Literal["none", "epsilon", "softmax"] = setting(
        "none", "", "exploration of served slates: none (greedy), epsilon (per slot, a uniform pick from the "
        "remaining candidates with probability explore_epsilon), softmax (Plackett-Luce over score / "
        "explore_temperature); per request: RecommendRequest.explore")
    explore_epsilon: float = setting(0.05, "", "epsilon: per-slot exploration probability", ge=0, le=1)
    explore_pool: int = setting(50, "items", "exploration draws from the ranker's best this many candidates (a "
                                "uniform pick among them has probability epsilon / explore_pool, which bounds "
                                "off-policy weights)", ge=1)
    explore_temperature: float = setting(1.0, "", "softmax: temperature (score units; lower is greedier)", ge=1e-6)
    explore_new_bonus: float = setting(0.0, "", "score bonus of items with fewer than explore_new_impressions "
                                       "impressions (cold-start exploration)", ge=0)
    explore_new_impressions: int = setting(20, "events", "items shown fewer times than this are new", ge=0)
    log_slates: bool = setting(False, "", "every served slate goes into the stream: its items become impressions "
                               "(a slot not clicked within reward_window_s is a negative) without the client "
                               "sending any, and it is a logged decision (propensities, challenger probabilities) "
                               "for freshrec evaluate and champion/challenger; for live traffic (a replay's users "
                               "never saw our slates, and the slates carry the server's clock)")

    user_ttl_s: float = setting(0.0, "s", "a user inactive this long (event time) is forgotten with their history "
                                "(0: never)", ge=0)
    max_users: int = setting(0, "users", "users kept at most; the least recently active go first (0: no cap)", ge=0)
    max_items: int = setting(0, "items", "catalogue size at most; events on new items beyond it are counted and "
                             "not learned (0: no cap)", ge=0)
    items_from_feedback: bool = setting(True, "", "feedback on an unknown item adds it to the catalogue; false: only "
                                        "PUT /items does (other feedback on it is counted and not learned)")

    @field_validator("events", mode="before")
    @classmethod
    def _merge_onto_defaults(cls, value):
        """Declared types are merged field by field onto the default ones of the same name
        (``{"rating": {"min": 1, "max": 5, "positive_threshold": 4}}`` keeps its role);
        other names are new types."""
        if not isinstance(value, dict):
            return value
        merged = {name: dict(spec) for name, spec in DEFAULT_EVENTS.items()}
        for name, spec in value.items():
            spec = spec.model_dump(exclude_unset=True) if isinstance(spec, EventType) else dict(spec)
            base = merged.get(name, {})
            if "role" in spec and spec["role"] != base.get("role"):
                base = {}  # a different role: the default's other fields do not apply
            if "values" in spec:
                base.pop("positive_threshold", None)
            if "positive_threshold" in spec:
                base.pop("values", None)
            merged[name] = {**base, **spec}
        return merged

    @field_validator("events", mode="after")
    @classmethod
    def _no_internal_kinds(cls, value):
        """The stream's internal kinds (catalogue upserts, served slates, erasures) cannot be
        feedback types: a ``/feedback`` of kind ``forget`` must never erase a user."""
        taken = sorted(set(value) & set(INTERNAL_KINDS))
        if taken:
            raise ValueError(f"event type name(s) {', '.join(taken)} are reserved for the stream's internal "
                             f"kinds ({', '.join(INTERNAL_KINDS)})")
        return value


class GuardConfig(BaseModel):
    """The forgetting guard (``engine.core.guard``): trust from the impression join, damping
    of untrusted events, validation-gated promotion with rollback, and the ADWIN alarm."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = setting(True, "", "False makes the guard a pass-through (no damping, no validation)")
    validate_windows: bool = setting(True, "", "False keeps the damping but never validates or rolls back "
                                "(read-only replicas take the learner's decisions from its snapshots)")
    untrusted_weight: float = setting(0.25, "", "influence on shared item parameters of events that join no served "
                                 "impression, from accounts with no trusted history", gt=0, le=1)
    vetted_untrusted_weight: float = setting(1.0, "", "influence of unjoined events from vetted accounts (an "
                                             "established user's search and browsing)", gt=0, le=1)
    window_events: int = setting(2000, "events", "events per validation window", ge=1)
    early_suspicious: int = setting(300, "events", "a window is validated early once it holds this many suspicious "
                               "positives", ge=1)
    reservoir_size: int = setting(2000, "events", "trusted (user, item) positives kept for validation", ge=1)
    quality_pairs: int = setting(400, "events", "reservoir pairs one validation scores on both models", ge=1)
    exposure_users: int = setting(300, "users", "established users one validation scores for exposure", ge=1)
    established_clicks: int = setting(3, "events", "trusted clicks that make a user established", ge=1)
    quality_drop: float = setting(0.15, "", "relative quality drop against the last good model that fails a window",
                             ge=0, le=1)
    cumulative_drop: float = setting(0.25, "", "relative quality drop against the reference model that fails a window",
                                ge=0, le=1)
    reference_every: int = setting(5, "windows", "validation windows between reference models", ge=1)
    exposure_jump: float = setting(0.08, "", "increase in the share of established users one item reaches that "
                              "fails a window", ge=0, le=1)
    min_suspicious: int = setting(20, "events", "suspicious positives a window must carry before it can fail", ge=0)
    join_window_s: float = setting(3600.0, "s", "impression join window (a click this long after its slate still joins)",
                              gt=0)
    seed: int = setting(7, "", "seeds the reservoir and the validation samples")


class SnapshotConfig(BaseModel):
    """Checkpoints (``engine.roles.checkpointer``) and their retention
    (``engine.storage.retention``)."""

    model_config = ConfigDict(extra="forbid")

    every_events: int = setting(10_000, "events", "checkpoint after this many learned events", ge=1)
    every_s: float = setting(60.0, "s", "... or after this long (processing time), whichever comes first", gt=0)
    recent: int = setting(10, "snapshots", "retention: the newest snapshots always kept", ge=1)
    hours: float = setting(25.0, "h", "retention: also the newest snapshot of every hour for this long", ge=0)
    max_bytes: int = setting(2 * 1024**3, "bytes", "retention: byte budget of all kept snapshots", ge=1)
    write_mb_s: float = setting(100.0, "MB/s", "pace of snapshot writes to Redis (0 = unpaced)", ge=0)
    resync_s: float = setting(5.0, "s", "a read-only replica adopts the learner's newest snapshot this often", gt=0)


class PolicyConfig(BaseModel):
    """Champion/challenger (``engine.core.champion``): a challenger learns in shadow and is
    evaluated off-policy on the champion's logged decisions."""

    model_config = ConfigDict(extra="forbid")

    challenger: dict | None = setting(None, "", "EngineConfig overrides that make the challenger (e.g. "
                                      '{"ranker": "blend"} or {"explore": "softmax"}); unset: no challenger')
    auto_promote: bool = setting(False, "", "promote the challenger by itself when the rule says so (else: POST "
                                 "/policies/promote)")
    window: int = setting(20_000, "decisions", "complete decisions the estimates are computed over", ge=10)
    min_decisions: int = setting(2_000, "decisions", "complete decisions needed before a policy is estimated", ge=1)
    check_every: int = setting(1_000, "decisions", "complete decisions between automatic checks", ge=1)
    alpha: float = setting(0.05, "", "chance of promoting a challenger no better than the champion: the paired "
                           "one-sided test of the challenger's gain on the same slates (engine.core.improvement)",
                           gt=0, lt=1)
    spending: Literal["information", "none"] = setting(
        "information", "", "how alpha is spent over a champion's repeated checks: information (a check after n "
        "decisions, the previous after m, tests at f(n) - f(m), f(n) = alpha * n / (n + window): below alpha over "
        "all of them, whatever the schedule) or none (every check at alpha: sooner, with no bound over many checks)")
    share: float = setting(0.05, "", "probability that a slot of a served slate is drawn from the challenger's "
                           "policy (given the slots above) instead of the champion's, so the challenger's per-slot "
                           "weights stay below 1 / share (engine.core.mixture; 0: the champion's policy alone)",
                           ge=0, lt=1)
    weights: Literal["slot", "prefix"] = setting(
        "slot", "", "the challenger's SNIPS weights: per slot (target / logged probability of each slot given the "
        "logged slots above it: support where the policies agree slot by slot) or prefix (the product over the "
        "slots above: unbiased for the whole ranking, but its effective sample size collapses on 10-slot slates "
        "under light exploration)")
class OpsConfig(BaseModel):
    """How the roles run and report (``engine.roles.supervisor``, ``engine.roles.health``,
    ``engine.roles.node``): start-up retries, restarts, readiness thresholds."""

    model_config = ConfigDict(extra="forbid")

    redis_wait_s: float = setting(30.0, "s", "at start, retry an unreachable (or loading) Redis with backoff for "
                                  "this long, then exit non-zero", ge=0)
    max_failures: int = setting(5, "failures", "consecutive unexpected failures after which a role is failed "
                                "(freshrec learner exits non-zero; /health/ready answers 503)", ge=1)
    max_lag_events: int = setting(1000, "events", "/health/ready answers 503 while more stream entries than this "
                                  "wait to be learned (counted with one XRANGE of at most this many + 1 entries)",
                                  ge=1, le=10_000)
    probe_timeout_s: float = setting(1.0, "s", "/health/ready counts Redis as not answering when its PING and lag "
                                     "count take longer than this", gt=0, le=60)
    max_snapshot_age_s: float = setting(300.0, "s", "learner: /health/ready answers 503 once learned events have "
                                        "waited longer than this for a snapshot", gt=0)
