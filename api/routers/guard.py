"""``GET /guard/accounts/{user_id}``: what the forgetting guard holds about one account (a
debug view of its trust decisions). Admin only: whether an account is vetted is worth
knowing to whoever runs sybils."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from api.dependencies import NodeDep, require_admin

router = APIRouter(tags=["guard"], dependencies=[Depends(require_admin)])


@router.get("/guard/accounts/{user_id}")
async def account(node: NodeDep, user_id: Annotated[str, Path(min_length=1, max_length=128)]) -> dict:
    """``{user_id, vetted, trusted_clicks, established, unjoined_weight, reservoir_pairs}``:
    whether the account has trusted history, how many trusted clicks it has (established
    from ``guard.established_clicks`` on), the weight its next event that joins no served
    slate would be learned with (a joined one weighs 1), and its pairs in the validation
    reservoir. Unknown accounts answer as unvetted."""
    return node.live.guarded.account(user_id)
