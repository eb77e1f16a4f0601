"""Merge a guest cart into a signed-in buyer's cart, exactly once per guest token.

One transaction: lock the token's session row (a racing merge of the same token waits here,
then finds it merged), take the guest's then the buyer's cart lock, apply `plan_merge`, close
the guest cart as `merged`, end the session and keep the answer. A retry by the same buyer
answers the kept answer again; by another buyer it is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.cart import catalog, events, guests, store
from services.cart.domain import CartLine, ShoppingCart, line_changes
from services.cart.guest_rules import LeftOut, MergedLine, MergePlan, guest_buyer_id, plan_merge


class InvalidGuestTokenError(Exception):
    """The guest token to merge is unknown, or expired before it was merged."""


class MergedElsewhereError(Exception):
    """The guest token was already merged into another buyer's cart."""


@dataclass(frozen=True, slots=True)
class Merge:
    """What a merge did: the guest cart it closed, the buyer's cart now, lines taken and not."""

    guest_cart_id: uuid.UUID | None
    cart: ShoppingCart | None
    merged: tuple[MergedLine, ...]
    left_out: tuple[LeftOut, ...]


Render = Callable[[AsyncConnection, Merge], Awaitable[Any]]
"""The answer of a merge as it is kept and sent (JSON-ready), rendered in its transaction."""


async def merge_guest(
    conn: AsyncConnection, buyer_id: str, token: str, lanes: int, render: Render
) -> tuple[Any, bool]:
    """Merge the token's guest cart into the buyer's once; (answer, replayed)."""
    session = await guests.lock_for_merge(conn, token)
    if session is None:
        raise InvalidGuestTokenError("unknown guest token")
    if session.merged_by is not None:
        if session.merged_by != buyer_id:
            raise MergedElsewhereError("this guest cart was merged by another buyer")
        return session.merge_result, True
    if not session.live:
        raise InvalidGuestTokenError("the guest session expired")
    merge = await _merge(conn, guest_buyer_id(session.session_id), buyer_id, lanes)
    answer = await render(conn, merge)
    await guests.record_merge(conn, session.session_id, buyer_id, answer)
    return answer, False


async def _merge(conn: AsyncConnection, guest_id: str, buyer_id: str, lanes: int) -> Merge:
    # Guest before buyer, always: a merge is the only holder of both locks.
    await store.lock_buyer(conn, guest_id)
    guest = await store.active_cart(conn, guest_id, for_update=True)
    await store.lock_buyer(conn, buyer_id)
    cart = await store.active_cart(conn, buyer_id, for_update=True)
    lines = guest.lines if guest else ()
    offers = await catalog.get_offers(conn, {line.sku for line in lines})
    plan = plan_merge(lines, cart, offers, buyer_id)
    cart_id = await _apply(conn, buyer_id, cart, plan, lanes)
    if guest is not None and cart_id is not None:
        # The codes the guest entered and where they wanted it shipped come along.
        await store.take_coupons_and_delivery(conn, guest, cart_id)
    if guest is not None:
        await store.mark_merged(conn, guest.cart_id, cart_id)
        await _emit(conn, lanes, guest.cart_id, guest_id, lines, ())
    # What the guest already ordered is the buyer's now: their orders list shows it.
    await store.adopt_orders(conn, guest_id, buyer_id)
    after = await store.active_cart(conn, buyer_id)
    return Merge(guest.cart_id if guest else None, after, plan.merged, plan.left_out)


async def _apply(
    conn: AsyncConnection, buyer_id: str, cart: ShoppingCart | None, plan: MergePlan, lanes: int
) -> uuid.UUID | None:
    """Write the plan's lines into the buyer's cart (opened if needed); the cart's id."""
    if not plan.merged:
        return cart.cart_id if cart else None
    assert plan.currency is not None  # a merged line gives the cart its currency
    cart_id = cart.cart_id if cart else await store.open_cart(conn, buyer_id, plan.currency)
    for line in plan.merged:
        await store.put_snapshot_line(conn, cart_id, line.sku, line.quantity, line.snapshot)
    await store.touch(conn, cart_id, currency=plan.currency)
    after = await store.cart_lines(conn, cart_id)
    await _emit(conn, lanes, cart_id, buyer_id, cart.lines if cart else (), after)
    return cart_id


async def _emit(
    conn: AsyncConnection,
    lanes: int,
    cart_id: uuid.UUID,
    buyer_id: str,
    before: Sequence[CartLine],
    after: Sequence[CartLine],
) -> None:
    """The cart events of a merge: units added to the buyer's cart, lines leaving the guest's."""
    changes = line_changes(before, after)
    await events.emit(conn, lanes, events.item_events(cart_id, buyer_id, changes))
