"""Guest orders into an account: the orders of a guest checkout move to the buyer account
with the guest's email once the reader proves, with the receipt link, that they are theirs
(docs/checkout.md). Reviews the guest wrote stay signed by the guest."""

from __future__ import annotations

from sqlalchemy import select, update

from marketplace.accounts import guests
from marketplace.accounts.models import User
from marketplace.accounts.services import new_session_token
from marketplace.db import db, transaction
from marketplace.orders.models import Order, ReturnRequest


def attach_orders(account_id: int, token: str, order_id: int) -> list[int]:
    """Move the guest's orders (with their return requests) into the buyer account that
    has the guest's email, given the receipt link of one of them; the guest is closed, so
    its links and sessions stop working. Returns the ids of the orders moved.

    :raises GuestLinkInvalid: forged, mangled, for another order, or attached already.
    :raises GuestLinkExpired: older than LINK_MAX_AGE.
    :raises GuestOrderNotYours: see `guests.attachable`.
    """
    with transaction():
        guest = guests.open_link(token, order_id)
        locked = {
            user.id: user
            for user in db.session.scalars(
                select(User)
                .where(User.id.in_([account_id, guest.id]))
                .order_by(User.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        }
        account, guest = locked.get(account_id), locked[guest.id]
        if account is None:
            raise guests.GuestOrderNotYours()
        guests.attachable(token, order_id, account)  # again, on the locked rows
        moved = list(
            db.session.scalars(
                select(Order.id).where(Order.buyer_id == guest.id).order_by(Order.id)
            )
        )
        for model in (Order, ReturnRequest):
            db.session.execute(
                update(model).where(model.buyer_id == guest.id).values(buyer_id=account.id)
            )
        guest.active = False
        guest.session_token = new_session_token()
    return moved
