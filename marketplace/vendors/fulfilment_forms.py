"""Forms of the fulfilment pages: order filters, ship / cancel / refund, returns, review replies.

Forms check shape only (an integer is an integer, an amount has at most the currency's decimals,
no NUL characters PostgreSQL could not store); lengths, ranges and what may happen in which
state are the services' rules, and their errors are copied back onto these forms.
"""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import NumberRange, Optional, ValidationError

from marketplace.forms import MoneyField
from marketplace.orders.models import OrderItem
from marketplace.settlement.refunds import ItemRequest
from marketplace.validation import is_whole_number

# The queue's tabs: name → (label, the statuses it shows). "to_ship" is the default.
TABS: dict[str, tuple[str, tuple[str, ...]]] = {
    "to_ship": ("To ship", ("paid", "processing")),
    "shipped": ("Shipped", ("shipped",)),
    "delivered": ("Delivered", ("delivered", "completed")),
    "cancelled": ("Cancelled", ("cancelled",)),
    "refunded": ("Refunded", ("refunded",)),
    "all": ("All", ()),
}
DEFAULT_TAB = "to_ship"
ITEM_PREFIX = "qty_"


def no_nul(form: Any, field: Any) -> None:
    """PostgreSQL cannot store NUL characters: refuse them as the shape error they are."""
    if isinstance(field.data, str) and "\x00" in field.data:
        raise ValidationError("Must not contain NUL characters.")


class OrderFilterForm(FlaskForm):
    """The queue's GET parameters: tab, search text (`q`) and page."""

    class Meta:
        csrf = False

    tab = SelectField(
        "Status",
        choices=[SelectChoice(name, label) for name, (label, _) in TABS.items()],
        default=DEFAULT_TAB,
    )
    q = StringField("Order number or buyer email", validators=[no_nul])
    page = IntegerField(
        "Page", validators=[Optional(), NumberRange(min=1, max=1_000_000)], default=1
    )


class ShipForm(FlaskForm):
    carrier = StringField("Carrier", validators=[no_nul])
    tracking_number = StringField("Tracking number", validators=[no_nul])


class DeliverForm(FlaskForm):
    """Only the CSRF token: the action is the button."""


class CancelForm(FlaskForm):
    reason = StringField("Reason", validators=[no_nul])


class RefundFields(FlaskForm):
    """A refund request: either an amount, or quantities per item (inputs named
    `qty_<order_item_id>`, read by `item_requests`); both blank refunds everything left, as
    the API does.
    """

    amount = MoneyField("Amount", description="Or leave blank and give quantities per item below.")
    include_shipping = BooleanField("Also refund shipping (with items)")
    restock = BooleanField("Put refunded items back in stock", default=True)
    reason = StringField("Reason", validators=[no_nul])

    def item_requests(self, source: Any, items: list[OrderItem]) -> list[ItemRequest] | None:
        """The `qty_<id>` inputs in `source` (request.args or .form) for this VendorOrder's
        items, as ItemRequests; blank or 0 are left out, None when none was given. A quantity
        that is not a whole number goes onto `form_errors`."""
        requests: list[ItemRequest] = []
        for item in items:
            raw = (source.get(f"{ITEM_PREFIX}{item.id}") or "").strip()
            if not raw:
                continue
            if not is_whole_number(raw, max_digits=9):
                self.form_errors.append(f"{item.sku}: enter a whole number of items.")
                continue
            if int(raw):
                requests.append(ItemRequest(item.id, int(raw)))
        return requests or None

    def service_request(self, source: Any, items: list[OrderItem]) -> dict[str, Any]:
        """The keyword arguments of `refunds.preview` / `refunds.refund_vendor_order`."""
        return {
            "amount_cents": self.amount.cents,
            "items": self.item_requests(source, items),
            "include_shipping": bool(self.include_shipping.data),
            "restock": bool(self.restock.data),
        }


def quantities(source: Any) -> dict[int, str]:
    """What was typed in the `qty_<id>` inputs, by item id, to fill them in again."""
    found: dict[int, str] = {}
    for key in source:
        if key.startswith(ITEM_PREFIX) and is_whole_number(key[len(ITEM_PREFIX) :]):
            found[int(key[len(ITEM_PREFIX) :])] = str(source.get(key) or "")[:12]
    return found


class RefundPreviewForm(RefundFields):
    """The request sent by GET to the preview: it changes nothing, so it needs no CSRF token."""

    class Meta:
        csrf = False


class RefundForm(RefundFields):
    """The confirm button under the preview: the same fields, posted with a CSRF token."""


class AcceptReturnForm(FlaskForm):
    restock = BooleanField("Put the returned items back in stock", default=True)


class DeclineReturnForm(FlaskForm):
    reason = StringField("Reason", validators=[no_nul])


class ReplyForm(FlaskForm):
    body = TextAreaField("Your reply", validators=[no_nul])
    page = HiddenField()
