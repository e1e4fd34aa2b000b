"""Buyer-facing forms: sign-in, registration and the catalog filters.

Forms check shape only (present, a number, one of the choices); the business rules (valid
email, password length, …) live in the services, whose errors the views copy onto the form.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
)
from wtforms.validators import EqualTo, InputRequired, Length, NumberRange, Optional

from marketplace.forms import MoneyField


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[InputRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=256)])
    next = HiddenField()


class RegisterForm(FlaskForm):
    email = EmailField("Email", validators=[InputRequired(), Length(max=254)])
    name = StringField("Name", validators=[InputRequired(), Length(max=120)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=256)])
    confirm = PasswordField(
        "Repeat the password",
        validators=[InputRequired(), EqualTo("password", message="The passwords differ.")],
    )
    role = RadioField(
        "I want to",
        choices=[SelectChoice("buyer", "Buy"), SelectChoice("vendor", "Sell (open a shop)")],
        default="buyer",
        validators=[InputRequired()],
    )


class LogoutForm(FlaskForm):
    """Empty: only carries the CSRF token of the nav bar's logout button."""


SORT_CHOICES = [
    SelectChoice("relevance", "Best match"),
    SelectChoice("newest", "Newest"),
    SelectChoice("price_asc", "Price: low to high"),
    SelectChoice("price_desc", "Price: high to low"),
    SelectChoice("rating", "Best rated"),
]


RATING_CHOICES = [SelectChoice("", "Any rating")] + [
    SelectChoice(str(stars), f"{stars} stars & up") for stars in (4, 3, 2, 1)
]


class CatalogFilterForm(FlaskForm):
    """The GET filter form of /products; choices of the selects are set by the view."""

    class Meta:
        csrf = False

    q = StringField("Search", validators=[Optional(), Length(max=200)])
    category = SelectField("Category", choices=[SelectChoice("", "All categories")], default="")
    brand = SelectField("Brand", choices=[SelectChoice("", "All brands")], default="")
    min_price = MoneyField("Min price")
    max_price = MoneyField("Max price")
    min_rating = SelectField("Rating", choices=RATING_CHOICES, default="")
    in_stock = BooleanField("In stock only")
    # Empty: best match when there are words to match, else newest.
    sort = SelectField("Sort", choices=[SelectChoice("", "Default"), *SORT_CHOICES], default="")
    page = IntegerField(
        "Page", validators=[Optional(), NumberRange(min=1, max=1_000_000)], default=1
    )
