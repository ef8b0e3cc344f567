"""Champion/challenger: a challenger model learns from the same stream in shadow, scores
the same requests without serving them, and is promoted only when the champion's own logs
say it is better.

Before the champion draws a slate, the challenger scores the request (``shadow_pool``), and
``PolicyConfig.share`` of every slot is drawn from the challenger's policy instead of the
champion's (``engine.core.mixture``): every item the challenger could show then has a
logging propensity of at least ``share`` times the challenger's probability, so its
importance weights are at most ``1 / share`` (an epsilon-greedy champion alone gives the
challenger's favourites weights of hundreds, and items outside the champion's pool none).
At every served slate the challenger gives the probability it would have put each logged
item in its slot (``engine.core.slates.target`` under its own exploration policy); the
decision log (``engine.core.decisions``) joins the rewards. ``estimates`` computes, over the
same window of complete decisions, the champion's on-policy click rate and the challenger's
off-policy one (SNIPS with ``PolicyConfig.weights``: per-slot weights by default, Li et al.
2018; prefix weights, unbiased under the cascade assumption but with an effective sample size
that collapses on 10-slot slates under light exploration, Swaminathan & Joachims 2015,
Kiyohara et al. 2022) with 95 % bootstrap intervals. The rule is Azure
Personalizer's: promote when the challenger's estimate is higher *and* the lower bound of its
interval is above the champion's lower bound, and, because that rule compares two marginal
intervals and is re-applied many times, also when the paired one-sided test of the
challenger's gain on the same slates is significant at the level this check spends of
``PolicyConfig.alpha`` (``engine.core.improvement``; with ``PolicyConfig.spending``
``"information"``, below ``alpha`` chance over all the checks of one champion that a
challenger no better than it is promoted) (``check``;
automatic every ``check_every`` complete decisions when ``auto_promote``, or on an
admin's request). Every check is kept in
``history`` with its evidence; a promotion swaps the two models (the old champion carries on
as the challenger) and ``rollback`` swaps them back.
"""

from __future__ import annotations

from engine.config import EngineConfig, PolicyConfig
from engine.core.decisions import Decision, DecisionLog
from engine.core.events import SLATE_KIND, Event
from engine.core.improvement import improvement, spent_alpha
from engine.core.ope import estimate
from engine.core.recommender import Recommender
from engine.core.mixture import ShadowPool
from engine.core.slates import new_mask, policy_of, pool_and_scores, target

CHALLENGER = "challenger"


class Arena:
    """The challenger, the decision log and the promotion history of one guarded model.

    Args:
        champion: the serving model's configuration (the challenger's overrides apply to it).
        policy: champion/challenger settings (``engine.config.PolicyConfig``).
    """

    def __init__(self, champion: EngineConfig, policy: PolicyConfig) -> None:
        self.policy = policy
        self.challenger = (Recommender(champion.model_copy(update=policy.challenger)) if policy.challenger is not None
                           else None)
        self.decisions = DecisionLog(champion.reward_window_s, policy.window)
        self.history: list[dict] = []
        self._complete_at_check = 0
        self.looks = 0  # checks with both estimates since this champion started serving
        self.spent_through = 0  # complete decisions at the last of them: alpha up to f(spent_through) is spent
        self._cache: tuple[int, dict] | None = None  # (complete decisions when computed, estimates)

    def observe(self, event: Event, weight: float, semantics, clock: float) -> str | None:
        """Learn ``event`` in the challenger, join it into the decision log; returns
        ``"promote"`` when an automatic check says to."""
        if self.challenger is not None:
            self.challenger.apply(event, weight)
        if event.kind == SLATE_KIND:
            meta = event.meta or {}
            self.decisions.served(Decision(event.recommendation_id or "", event.user_id, event.time,
                                           list(meta.get("items", ())), list(meta.get("p", ())),
                                           dict(meta.get("targets", {})), event.context))
        elif event.recommendation_id and semantics.is_positive(event.kind, event.value):
            self.decisions.reward(event.recommendation_id, event.position, event.item_id)
        self.decisions.advance(clock)
        complete = len(self.decisions.complete)
        if (self.policy.auto_promote and self.challenger is not None
                and complete - self._complete_at_check >= self.policy.check_every):
            self._complete_at_check = complete
            return "promote" if self.check("auto")["action"] == "promote" else None
        return None

    def erase(self, event: Event) -> dict:
        """Apply a ``forget`` event: the challenger erases its user (``Recommender.apply``)
        and the decision log drops the decisions served to them. Returns
        ``{"challenger": the challenger's erasure report or None, "decisions": int}``."""
        out = {"challenger": None, "decisions": self.decisions.erase(event.user_id)}
        if self.challenger is not None:
            self.challenger.apply(event)
            out["challenger"] = self.challenger.last_erasure
        self._cache = None
        return out

    def shadow_pool(self, user: str, exclude, context: dict | None) -> tuple[ShadowPool, tuple] | None:
        """The challenger's pool for a request, before the champion draws its slate: a
        ``ShadowPool`` (item ids, scores, policy, new items, ``policies.share``) for the
        champion's mixed draw (``engine.core.mixture``), and its (rows, scores) for
        ``targets``. None without a challenger."""
        ch = self.challenger
        if ch is None or len(ch.catalogue) == 0:
            return None
        policy = policy_of(ch.config)
        scored = pool_and_scores(ch, user, ch.excluded(user, exclude), context, policy.new_item_bonus)
        ids = ch.catalogue.ids
        new = new_mask(ch, scored[0]) if policy.new_item_bonus else None
        return ShadowPool([ids[r] for r in scored[0].tolist()], scored[1], policy, new, self.policy.share), scored

    def targets(self, user: str, item_ids: list[str], exclude, context: dict | None, rules=None,
                promoted: list[bool] | None = None, shadow: tuple | None = None) -> dict[str, list[float]]:
        """The challenger's per-slot probabilities of a served slate (empty without one),
        under the request's business ``rules`` (``engine.core.rules.Rules``) when it had
        any (``promoted``: the slate's per-slot flags; promoted slots get 1.0). ``shadow``:
        ``shadow_pool``'s answer for this request (computed once when given)."""
        ch = self.challenger
        if ch is None or not item_ids:
            return {}
        import numpy as np

        rows = np.array([ch.catalogue.get(i) if ch.catalogue.get(i) is not None else -1 for i in item_ids],
                        dtype=np.int64)
        compiled = None
        if rules is not None and rules.active:
            try:
                compiled = rules.compile(ch.catalogue)
            except ValueError:  # a name the challenger does not know (it learns the same stream: never in practice)
                return {}
        p, _ = target(ch, user, rows, ch.excluded(user, exclude), context, policy_of(ch.config), rules=compiled,
                      promoted=None if promoted is None else np.array(promoted, dtype=bool),
                      scored=None if compiled is not None or shadow is None else shadow[1])
        return {CHALLENGER: [round(float(x), 6) for x in p]}

    def estimates(self, fresh: bool = False) -> dict:
        """The champion's and the challenger's clicks per slate over the evaluation window
        (``Estimate.to_dict``), or ``{}`` while fewer than ``min_decisions`` are complete.
        Cached until 100 more decisions complete (a bootstrap over the window costs tens of
        ms), unless ``fresh``."""
        complete = len(self.decisions.complete)
        if not fresh and self._cache is not None and abs(complete - self._cache[0]) < 100:
            return self._cache[1]
        out = self._estimate()
        self._cache = (complete, out)
        return out

    def _estimate(self) -> dict:
        window = self.policy.window
        champion = self.decisions.logged("logging", window)
        if champion is None or champion.n < self.policy.min_decisions:
            return {}
        out = {"champion": estimate(champion, "ips", "slot", seed=0).to_dict()}
        challenger = self.decisions.logged(CHALLENGER, window)
        if challenger is not None and challenger.n >= self.policy.min_decisions:
            out["challenger"] = estimate(challenger, "snips", self.policy.weights, seed=0).to_dict()
        return out

    def check(self, by: str) -> dict:
        """Apply the promotion rule to the current window; the record (kept in ``history``)
        says ``action``: ``"promote"`` or ``"keep"``, with the evidence: both estimates and,
        once both exist, the paired test (``improvement``: look, decisions of this champion,
        difference, standard error, level spent, lower bound)."""
        est = self.estimates(fresh=True)
        a, b = est.get("champion"), est.get("challenger")
        record = {"kind": "check", "by": by, "action": "keep", "decisions": len(self.decisions.complete),
                  "estimates": est}
        if a and b:
            now = self.decisions.closed
            level = spent_alpha(self.policy.alpha, min(self.spent_through, now), now, self.policy.window,
                                self.policy.spending)
            self.looks += 1
            self.spent_through = max(self.spent_through, now)
            test = {"look": self.looks, "decisions": now}
            if level > 0:
                gain = improvement(self.decisions.logged(CHALLENGER, self.policy.window), level, "snips",
                                   self.policy.weights, seed=0)
                test.update(gain.to_dict())
            else:
                test.update(alpha=0.0, significant=False, reason="no decision completed since the last check")
            record["improvement"] = test
            if b["value"] > a["value"] and b["low"] > a["low"] and test["significant"]:
                record["action"] = "promote"
        self.history = self.history[-199:] + [record]
        return record

    def swap(self, champion: Recommender, by: str, kind: str) -> Recommender:
        """Make the challenger serve (returned) and the old ``champion`` the challenger;
        recorded in ``history`` as ``kind`` (``"promotion"`` or ``"rollback"``)."""
        new, self.challenger = self.challenger, champion
        self.history = self.history[-199:] + [{"kind": kind, "by": by, "decisions": len(self.decisions.complete)}]
        self.decisions = DecisionLog(self.decisions.reward_window_s, self.policy.window)  # a new champion's window
        self._complete_at_check = 0
        self.looks = self.spent_through = 0
        self._cache = None
        return new
