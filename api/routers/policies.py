"""``/policies``: champion/challenger. The estimates of both policies over the window of
logged decisions, the history of checks, promotions and rollbacks, and the admin calls that
promote the challenger or roll a promotion back."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from api.dependencies import NodeDep, require_admin

router = APIRouter(tags=["policies"])


@router.get("/policies")
async def policies(node: NodeDep) -> dict:
    """Whether a challenger runs, both policies' estimates (champion on-policy IPS,
    challenger SNIPS with policies.weights (per slot by default), 95 % bootstrap intervals, over the same window),
    the checks this champion has spent alpha on (``looks``) and the history of checks (each with both estimates
    and the paired test of the challenger's gain: difference, level spent, lower bound) and swaps, newest last; ``warning`` when a challenger runs
    but ``engine.log_slates`` is off (nothing to evaluate it on)."""
    arena = node.live.guarded.arena
    out = {"challenger": node.policies.challenger, "auto_promote": node.policies.auto_promote,
           "decisions": {"open": len(arena.decisions.open), "complete": len(arena.decisions.complete)},
           "estimates": arena.estimates(), "looks": arena.looks, "history": arena.history[-50:]}
    if node.policies.challenger is not None and not node.engine.log_slates:
        out["warning"] = ("engine.log_slates is off: served slates are not logged as decisions, so neither "
                          "policy is estimated and a check never promotes (POST /policies/promote still swaps)")
    return out


@router.post("/policies/check", dependencies=[Depends(require_admin)])
async def check(node: NodeDep) -> dict:
    """Apply the promotion rule now and promote when it says so; the check's record."""
    async with node.live.lock:
        record = _arena(node).check("admin")
        if record["action"] == "promote":
            node.live.guarded.promote("admin")
    return record


@router.post("/policies/promote", dependencies=[Depends(require_admin)])
async def promote(node: NodeDep) -> dict:
    """Make the challenger serve now, whatever the estimates say (the old champion becomes
    the challenger)."""
    async with node.live.lock:
        _arena(node)
        return node.live.guarded.promote("admin")


@router.post("/policies/rollback", dependencies=[Depends(require_admin)])
async def rollback(node: NodeDep) -> dict:
    """Swap back: the previous champion serves again."""
    async with node.live.lock:
        _arena(node)
        return node.live.guarded.rollback_promotion("admin")


def _arena(node):
    arena = node.live.guarded.arena
    if arena.challenger is None:
        raise HTTPException(status_code=409, detail="policies.challenger: no challenger configured")
    return arena
