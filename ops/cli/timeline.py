"""`checkout-saga saga timeline`'s text: a checkout's timeline as aligned columns, newest last."""

from __future__ import annotations

from collections.abc import Sequence

from ops.admin.timeline import CheckoutView, TimelineEntry

_HEADER = ("TIME", "SERVICE", "DIR", "MESSAGE", "OUTCOME", "KEY", "DETAIL")


def timeline_text(view: CheckoutView) -> list[str]:
    """A summary line per part of the checkout, then one aligned line per timeline entry."""
    lines = [_headline(view)]
    lines += [
        f"order    {o.order_id}  {o.status}  {o.total} {o.currency}"
        + (f"  vendor {o.vendor_id}" if o.vendor_id else "")
        for o in view.orders
    ]
    lines += [f"stock    {r.sku} x {r.quantity}  {r.status}" for r in view.reservations]
    if view.cart is not None:
        lines.append(f"cart     {view.cart.cart_id}  {view.cart.status}")
    lines.append("")
    lines += _table([_HEADER, *(_cells(e, str(view.group_id)) for e in view.timeline)])
    return lines


def _headline(view: CheckoutView) -> str:
    saga = view.saga
    state = f"saga {saga.state.value} (version {saga.version})" if saga else "no saga"
    group = "" if view.group_id == view.checkout_id else f"  group {view.group_id}"
    return f"checkout {view.checkout_id}{group}  {state}"


def _cells(entry: TimelineEntry, group_id: str) -> tuple[str, ...]:
    # The key is shown only where it is not the group's own: a vendor order's events.
    key = "" if entry.correlation_id == group_id else entry.correlation_id
    return (
        entry.at.isoformat(timespec="milliseconds"),
        entry.service,
        entry.direction or "-",
        entry.message_type,
        entry.outcome,
        key,
        entry.detail or "",
    )


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Columns padded to their widest cell; the last column is left as it is."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join(
            [*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]
        ).rstrip()
        for row in rows
    ]
