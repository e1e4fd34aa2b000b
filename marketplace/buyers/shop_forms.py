"""Forms of the cart, checkout and order pages (shape only; rules live in the services)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, Optional, Regexp

from marketplace.validation import MAX_ID


class AddToCartForm(FlaskForm):
    variant_id = IntegerField("Variant", validators=[InputRequired(), NumberRange(1, MAX_ID)])
    quantity = IntegerField(
        "Quantity", default=1, validators=[InputRequired(), NumberRange(1, 100)]
    )


class QuantityForm(FlaskForm):
    quantity = IntegerField("Quantity", validators=[InputRequired(), NumberRange(0, 100)])


class CheckoutForm(FlaskForm):
    idempotency_key = HiddenField(validators=[InputRequired(), Length(max=255)])
    # The total of the quote the buyer was shown: the order is not placed if it differs.
    quoted_total = HiddenField(validators=[Optional(), Regexp(r"^\d{1,12}$")])
    name = StringField("Full name", validators=[InputRequired(), Length(max=200)])
    line1 = StringField("Address", validators=[InputRequired(), Length(max=200)])
    line2 = StringField("Address line 2", validators=[Optional(), Length(max=200)])
    city = StringField("City", validators=[InputRequired(), Length(max=200)])
    state = StringField("State / region", validators=[Optional(), Length(max=200)])
    postal_code = StringField("Postal code", validators=[InputRequired(), Length(max=200)])
    country = StringField(
        "Country (2 letters, e.g. US)", default="US", validators=[InputRequired(), Length(2, 2)]
    )
    coupon_code = StringField("Coupon code", validators=[Optional(), Length(max=40)])
    vat_number = StringField(
        "EU VAT number (businesses: VAT reverse charged)",
        validators=[Optional(), Length(max=40)],
    )


class CouponForm(FlaskForm):
    """The cart's coupon field: "Apply" keeps the code for the cart and checkout, "Remove"
    forgets it."""

    coupon_code = StringField("Coupon code", validators=[Optional(), Length(max=40)])


class ConfirmForm(FlaskForm):
    """A bare form: a button with its CSRF token."""


class ReviewForm(FlaskForm):
    rating = IntegerField("Rating (1–5)", validators=[InputRequired(), NumberRange(1, 5)])
    body = TextAreaField("Your review", validators=[Optional(), Length(max=5000)])


class ReturnForm(FlaskForm):
    quantity = IntegerField(
        "Quantity", default=1, validators=[InputRequired(), NumberRange(1, 100)]
    )
    reason = StringField("Reason", validators=[InputRequired(), Length(max=500)])
