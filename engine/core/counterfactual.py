"""Counterfactual replay: what would other learning settings have done on this stream?

The feedback stream of a deployment that logs its slates (``EngineConfig.log_slates``) is an
off-policy dataset: every ``slate`` event carries the served items and the serving policy's
per-slot propensities, and the positives that name its recommendation id are its rewards.
``replay_decisions`` walks such a stream once, in order, and trains one fresh
``Recommender`` per candidate configuration on it (progressive validation: at each served
slate a candidate is asked *before* it learns anything that came after), so each decision
also carries the probability that each candidate would have put the logged item in its slot
(``engine.core.slates.target``). The decisions are the lines ``freshrec evaluate`` estimates
(IPS / SNIPS / DR, ``engine.core.ope``).

This is Azure Personalizer's offline evaluation ("counterfactual evaluation of learning
settings on the logged events"; Li et al. 2011, *Unbiased offline evaluation of
contextual-bandit-based news article recommendation algorithms*, for the replay idea; the
estimators' references are in ``engine.core.ope``). Caveat, as there: a candidate learns
from the slates the champion chose, not from the ones it would have chosen, so a feedback
loop the candidate would have created is not seen.

Example::

    >>> from engine.config import EngineConfig
    >>> from engine.core.events import Event, Semantics
    >>> cfg = EngineConfig(log_slates=True)
    >>> events = [Event("u", "a", "click", received_at=0.0), Event("v", "a", "click", received_at=1.0),
    ...           Event("v", "", "slate", received_at=2.0, recommendation_id="r1",
    ...                 meta={"items": ["a"], "p": [1.0]}),
    ...           Event("v", "a", "click", received_at=3.0, recommendation_id="r1", position=0)]
    >>> out = replay_decisions(events, Semantics(cfg.events), {"greedy": cfg}, reward_window_s=60.0)
    >>> out.open, len(out.decisions)
    (1, 0)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from engine.config import EngineConfig
from engine.core.decisions import Decision, DecisionLog
from engine.core.events import SLATE_KIND, Event, Semantics
from engine.core.recommender import Recommender
from engine.core.slates import policy_of, target


@dataclass
class Replayed:
    """What ``replay_decisions`` found.

    decisions: complete decisions (their reward window had passed by the last event), as
        decision-log lines (``simulators.evaluate``'s format), oldest first.
    open: decisions still inside their reward window at the end (left out: their rewards
        may not be final).
    events: stream entries read; slates: ``slate`` events among them.
    """

    decisions: list[dict] = field(default_factory=list)
    open: int = 0
    events: int = 0
    slates: int = 0


def candidate_targets(models: dict[str, Recommender], event: Event) -> dict[str, list[float]]:
    """Per candidate, the per-slot probability of the logged slate ``event`` (a ``slate``
    event) under that candidate's policy and its current state; an item the candidate does
    not know gets 0."""
    items = list((event.meta or {}).get("items", ()))
    out = {}
    for name, rec in models.items():
        rows = np.array([-1 if rec.catalogue.get(i) is None else rec.catalogue.get(i) for i in items], dtype=np.int64)
        p, _ = target(rec, event.user_id, rows, rec.excluded(event.user_id), event.context, policy_of(rec.config))
        out[name] = [round(float(x), 6) for x in p]
    return out


def replay_decisions(events: Iterable[Event], semantics: Semantics, candidates: dict[str, EngineConfig],
                     reward_window_s: float, window: int | None = None) -> Replayed:
    """Replay a feedback stream (``events`` in stream order) through one fresh model per
    candidate and rebuild the logged decisions with every candidate's probabilities.

    Args:
        events: the stream's events, oldest first (slates, feedback, item events).
        semantics: the deployment's event schema (which events are positives: rewards).
        candidates: name -> engine configuration to train from scratch on the stream
            (``logging`` is reserved for the serving policy). Their ``log_slates`` is forced
            on, so they learn the served slates as impressions as the champion did.
        reward_window_s: event time (s) after which a slate's rewards are final.
        window: keep only the last ``window`` complete decisions (all when None).

    Returns:
        ``Replayed``; each decision's ``targets`` hold the probabilities logged with the slate
        (e.g. a challenger's) plus one per candidate.

    Raises:
        ValueError: a candidate named ``logging``.
    """
    if "logging" in candidates:
        raise ValueError("candidate name 'logging' is reserved for the serving policy")
    models = {name: Recommender(cfg.model_copy(update={"log_slates": True})) for name, cfg in candidates.items()}
    log = DecisionLog(reward_window_s, window or 2**62)
    out = Replayed()
    clock = float("-inf")
    for event in events:
        out.events += 1
        if event.kind == SLATE_KIND:
            out.slates += 1
            meta = event.meta or {}
            targets = {k: list(v) for k, v in dict(meta.get("targets", {})).items()}
            targets.update(candidate_targets(models, event))
            log.served(Decision(event.recommendation_id or "", event.user_id, event.time, list(meta.get("items", ())),
                                list(meta.get("p", ())), targets, event.context))
        elif event.recommendation_id and semantics.is_positive(event.kind, event.value):
            log.reward(event.recommendation_id, event.position, event.item_id)
        for rec in models.values():
            rec.apply(event)
        clock = max(clock, event.time)
        log.advance(clock)
    out.open = len(log.open)
    out.decisions = log.as_dicts()
    return out
